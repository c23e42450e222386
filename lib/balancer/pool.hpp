// The endpoint pool behind a Balancer: membership, health, passive outlier
// detection and panic mode -- everything except the choice of an endpoint,
// which belongs to the policies (policy.hpp).
//
// Endpoints live in slots that are reused after removal; a slot's generation
// counts its occupants so that stale EndpointRefs are recognised. The pool
// keeps the list of slots a pick may choose from ("eligible": available ones,
// or every endpoint in panic mode), sorted by slot, and reports every change
// to it so that the policy can rebuild its own structures.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "portico/balancer.hpp"

namespace portico::detail {

inline constexpr std::uint32_t kNoSlot = UINT32_MAX;

struct EndpointState {
  std::string_view id;  // the key of the pool's id index, stable while live
  std::uint32_t weight = 1;
  std::uint32_t generation = 0;  // 0 = never occupied
  std::uint32_t in_flight = 0;
  std::uint32_t consecutive_failures = 0;
  std::uint32_t times_ejected = 0;
  bool live = false;
  bool healthy = true;
  bool ejected = false;
  bool eligible = false;
  TimePoint ejected_until{};
  TimePoint returned_at{};  // when the latest ejection ended
};

class Pool {
 public:
  Pool(double panic_threshold, const OutlierConfig& outlier) noexcept;

  // Membership; `spec` has been validated and its id is not present.
  // Allocates. The eligible list is stale until recompute_eligible(), so
  // that filling a pool of n endpoints costs O(n), not O(n^2).
  std::uint32_t add(const EndpointSpec& spec);
  void remove(std::uint32_t slot);
  std::uint32_t find(std::string_view id) const noexcept;  // kNoSlot if absent

  bool is_current(EndpointRef ref) const noexcept {
    return ref.slot < slots_.size() && slots_[ref.slot].live &&
           slots_[ref.slot].generation == ref.generation;
  }
  EndpointRef ref(std::uint32_t slot) const noexcept { return {slot, slots_[slot].generation}; }
  const EndpointState& at(std::uint32_t slot) const noexcept { return slots_[slot]; }
  std::uint32_t slot_count() const noexcept { return static_cast<std::uint32_t>(slots_.size()); }
  std::uint32_t live_count() const noexcept { return live_; }
  std::uint32_t available_count() const noexcept { return available_; }
  bool panic() const noexcept { return panic_; }
  const std::vector<std::uint32_t>& eligible() const noexcept { return eligible_; }

  // Live slots in ascending id order, so that structures built from them
  // do not depend on the order in which endpoints were added.
  template <class Fn>
  void for_each_by_id(Fn&& fn) const {
    for (const auto& [id, slot] : by_id_)
      fn(slot);
  }

  void request_started(std::uint32_t slot) noexcept;
  void request_ended(std::uint32_t slot) noexcept;

  // Each returns true when the eligible list changed. end_due_ejections
  // runs on every pick: its common case stays inline.
  bool end_due_ejections(TimePoint now) noexcept {
    if (ejected_ == 0 || now < next_ejection_end_) return false;
    return end_ejections_until(now);
  }
  bool set_healthy(std::uint32_t slot, bool healthy) noexcept;
  bool record_outcome(std::uint32_t slot, RequestOutcome outcome, TimePoint now) noexcept;
  bool recompute_eligible() noexcept;

 private:
  bool end_ejections_until(TimePoint now) noexcept;
  bool ejection_allowed() const noexcept;
  void eject(EndpointState& endpoint, TimePoint now) noexcept;

  std::vector<EndpointState> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::vector<std::uint32_t> eligible_;
  std::map<std::string, std::uint32_t, std::less<>> by_id_;
  double panic_threshold_;
  OutlierConfig outlier_;
  std::uint32_t live_ = 0;
  std::uint32_t available_ = 0;
  std::uint32_t ejected_ = 0;
  TimePoint next_ejection_end_ = TimePoint::max();
  bool panic_ = false;
};

}  // namespace portico::detail

#include "pool.hpp"

#include <algorithm>
#include <limits>

#include "../common/time_math.hpp"

namespace portico::detail {

Pool::Pool(double panic_threshold, const OutlierConfig& outlier) noexcept
    : panic_threshold_(panic_threshold), outlier_(outlier) {}

std::uint32_t Pool::add(const EndpointSpec& spec) {
  std::uint32_t slot;
  if (free_slots_.empty()) {
    slots_.emplace_back();
    slot = static_cast<std::uint32_t>(slots_.size() - 1);
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
  }
  const auto [node, inserted] = by_id_.emplace(spec.id, slot);
  (void)inserted;  // the caller has checked that the id is new
  EndpointState& endpoint = slots_[slot];
  const std::uint32_t generation = endpoint.generation + 1;
  endpoint = EndpointState{};
  endpoint.id = node->first;
  endpoint.weight = spec.weight;
  endpoint.generation = generation;
  endpoint.live = true;
  ++live_;
  // Reserve now so that later changes of the eligible list never allocate.
  eligible_.reserve(slots_.size());
  return slot;
}

void Pool::remove(std::uint32_t slot) {
  EndpointState& endpoint = slots_[slot];
  if (endpoint.ejected) --ejected_;
  const auto node = by_id_.find(endpoint.id);
  endpoint.live = false;
  endpoint.ejected = false;
  endpoint.id = {};
  by_id_.erase(node);
  free_slots_.push_back(slot);
  --live_;
}

std::uint32_t Pool::find(std::string_view id) const noexcept {
  const auto node = by_id_.find(id);
  return node == by_id_.end() ? kNoSlot : node->second;
}

void Pool::request_started(std::uint32_t slot) noexcept {
  std::uint32_t& in_flight = slots_[slot].in_flight;
  if (in_flight != UINT32_MAX) ++in_flight;
}

void Pool::request_ended(std::uint32_t slot) noexcept {
  std::uint32_t& in_flight = slots_[slot].in_flight;
  if (in_flight != 0) --in_flight;
}

bool Pool::end_ejections_until(TimePoint now) noexcept {
  TimePoint next = TimePoint::max();
  for (EndpointState& endpoint : slots_) {
    if (!endpoint.live || !endpoint.ejected) continue;
    if (endpoint.ejected_until <= now) {
      endpoint.ejected = false;
      endpoint.returned_at = endpoint.ejected_until;
      endpoint.consecutive_failures = 0;
      --ejected_;
    } else {
      next = std::min(next, endpoint.ejected_until);
    }
  }
  next_ejection_end_ = next;
  return recompute_eligible();
}

bool Pool::set_healthy(std::uint32_t slot, bool healthy) noexcept {
  if (slots_[slot].healthy == healthy) return false;
  slots_[slot].healthy = healthy;
  return recompute_eligible();
}

bool Pool::record_outcome(std::uint32_t slot, RequestOutcome outcome, TimePoint now) noexcept {
  EndpointState& endpoint = slots_[slot];
  if (outcome == RequestOutcome::cancelled || outlier_.consecutive_failures == 0) return false;
  // Answers to requests sent before the ejection say nothing new.
  if (endpoint.ejected) return false;
  if (outcome == RequestOutcome::success) {
    endpoint.consecutive_failures = 0;
    return false;
  }
  if (endpoint.consecutive_failures != UINT32_MAX) ++endpoint.consecutive_failures;
  if (endpoint.consecutive_failures < outlier_.consecutive_failures) return false;
  // Over the cap the count stays at the threshold, so the next failure
  // tries again once another endpoint has returned.
  if (!ejection_allowed()) return false;
  eject(endpoint, now);
  return recompute_eligible();
}

bool Pool::ejection_allowed() const noexcept {
  if (outlier_.max_ejection_percent == 0) return false;
  const std::uint64_t cap =
      std::max<std::uint64_t>(1, std::uint64_t{live_} * outlier_.max_ejection_percent / 100);
  return ejected_ < cap;
}

void Pool::eject(EndpointState& endpoint, TimePoint now) noexcept {
  const Duration base = outlier_.base_ejection_time;
  // Forgive one past ejection per full base period spent back in rotation.
  if (endpoint.times_ejected > 0 && now > endpoint.returned_at) {
    const auto forgiven = static_cast<std::uint64_t>((now - endpoint.returned_at) / base);
    endpoint.times_ejected = forgiven >= endpoint.times_ejected
                                 ? 0
                                 : endpoint.times_ejected - static_cast<std::uint32_t>(forgiven);
  }
  // Past this many, the duration is at the cap anyway; stopping here keeps
  // base * times from overflowing. Counted in 64 bits: max / base reaches
  // 3 x 10^16 (365 days over 1 ns), far beyond the 32-bit count it bounds.
  const std::uint64_t times_at_cap =
      std::min<std::uint64_t>(static_cast<std::uint64_t>(outlier_.max_ejection_time / base) + 1,
                              std::numeric_limits<std::uint32_t>::max());
  endpoint.times_ejected = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::uint64_t{endpoint.times_ejected} + 1, times_at_cap));
  const Duration duration = std::min(base * endpoint.times_ejected, outlier_.max_ejection_time);
  endpoint.ejected = true;
  endpoint.ejected_until = saturating_add(now, duration);
  endpoint.consecutive_failures = 0;
  ++ejected_;
  next_ejection_end_ = std::min(next_ejection_end_, endpoint.ejected_until);
}

bool Pool::recompute_eligible() noexcept {
  std::uint32_t available = 0;
  for (const EndpointState& endpoint : slots_) {
    if (endpoint.live && endpoint.healthy && !endpoint.ejected) ++available;
  }
  available_ = available;
  // Strictly below, as Envoy: at exactly the threshold the available ones
  // still carry the load.
  panic_ = static_cast<double>(available) < panic_threshold_ * static_cast<double>(live_);
  bool changed = false;
  eligible_.clear();  // capacity was reserved in add(): no allocation below
  for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
    EndpointState& endpoint = slots_[slot];
    const bool eligible = endpoint.live && (panic_ || (endpoint.healthy && !endpoint.ejected));
    changed |= eligible != endpoint.eligible;
    endpoint.eligible = eligible;
    if (eligible) eligible_.push_back(slot);
  }
  return changed;
}

}  // namespace portico::detail

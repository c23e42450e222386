// Weighted least-request: the eligible endpoint with the fewest requests in
// flight per unit of weight wins; among equally loaded ones, earliest
// deadline first (EDF) on virtual time spreads the picks in proportion to
// weight. When requests finish before the next pick (low load) this is
// weighted round robin; under load it follows the in-flight counts exactly.
//
// Unlike NGINX's least_conn, which scans every peer, the endpoints sit in a
// binary heap ordered by (in_flight / weight, deadline), re-sifted when a
// count changes: O(log n) per pick and per request start or end. Each heap
// entry carries the fields it is ordered by, so a comparison reads no other
// memory.
#include <algorithm>

#include "policy.hpp"

namespace portico::detail {
namespace {

constexpr std::uint32_t kNotInHeap = UINT32_MAX;
// Virtual time grows by about 1 / total weight per pick; past this value it
// is shifted back to zero so that deadlines keep their resolution.
constexpr double kRenormalizeAt = 4294967296.0;

struct Entry {
  double deadline;  // virtual time of its next turn
  double step;      // 1 / weight: how far a pick moves the deadline
  std::uint32_t in_flight;
  std::uint32_t weight;
  std::uint32_t slot;
};

// True when `a` should be picked before `b`.
bool before(const Entry& a, const Entry& b) noexcept {
  // in_flight_a / weight_a < in_flight_b / weight_b, exactly.
  const std::uint64_t load_a = std::uint64_t{a.in_flight} * b.weight;
  const std::uint64_t load_b = std::uint64_t{b.in_flight} * a.weight;
  if (load_a != load_b) return load_a < load_b;
  if (a.deadline != b.deadline) return a.deadline < b.deadline;
  return a.slot < b.slot;
}

class LeastRequest final : public PickPolicy {
 public:
  std::uint32_t pick(const Pool& /*pool*/, std::uint64_t /*hash*/,
                     TimePoint /*now*/) noexcept override {
    Entry& top = heap_.front();
    const std::uint32_t slot = top.slot;
    virtual_time_ = std::max(virtual_time_, top.deadline);
    top.deadline = virtual_time_ + top.step;
    sift_down(0);
    if (virtual_time_ > kRenormalizeAt) renormalize();
    return slot;
  }

  void membership_changed(const Pool& pool) override {
    const std::uint32_t slots = pool.slot_count();
    heap_.reserve(slots);
    position_.resize(slots, kNotInHeap);
    deadline_by_slot_.resize(slots, 0.0);
    generation_.resize(slots, 0);
    for (std::uint32_t slot = 0; slot < slots; ++slot) {
      const EndpointState& endpoint = pool.at(slot);
      if (!endpoint.live || generation_[slot] == endpoint.generation) continue;
      // A newcomer joins the schedule now, not at virtual time zero, or it
      // would take every tie until it caught up.
      generation_[slot] = endpoint.generation;
      deadline_by_slot_[slot] = virtual_time_ + 1.0 / endpoint.weight;
    }
  }

  void eligible_changed(const Pool& pool) noexcept override {
    for (const Entry& entry : heap_) {
      deadline_by_slot_[entry.slot] = entry.deadline;
      position_[entry.slot] = kNotInHeap;
    }
    heap_.clear();
    for (const std::uint32_t slot : pool.eligible()) {
      const EndpointState& endpoint = pool.at(slot);
      // An endpoint left out for a while has an old deadline; it returns at
      // the present instead of taking every tie.
      const double deadline = std::max(deadline_by_slot_[slot], virtual_time_);
      position_[slot] = static_cast<std::uint32_t>(heap_.size());
      heap_.push_back(
          Entry{deadline, 1.0 / endpoint.weight, endpoint.in_flight, endpoint.weight, slot});
    }
    heapify();
  }

  bool tracks_load() const noexcept override { return true; }

  void load_changed(const Pool& pool, std::uint32_t slot) noexcept override {
    const std::uint32_t position = position_[slot];
    if (position == kNotInHeap) return;
    heap_[position].in_flight = pool.at(slot).in_flight;
    sift_up(position);
    sift_down(position_[slot]);
  }

 private:
  void place(std::size_t position, const Entry& entry) noexcept {
    heap_[position] = entry;
    position_[entry.slot] = static_cast<std::uint32_t>(position);
  }

  void sift_up(std::size_t position) noexcept {
    const Entry entry = heap_[position];
    while (position > 0) {
      const std::size_t parent = (position - 1) / 2;
      if (!before(entry, heap_[parent])) break;
      place(position, heap_[parent]);
      position = parent;
    }
    place(position, entry);
  }

  void sift_down(std::size_t position) noexcept {
    const Entry entry = heap_[position];
    const std::size_t size = heap_.size();
    for (;;) {
      std::size_t child = 2 * position + 1;
      if (child >= size) break;
      if (child + 1 < size && before(heap_[child + 1], heap_[child])) ++child;
      if (!before(heap_[child], entry)) break;
      place(position, heap_[child]);
      position = child;
    }
    place(position, entry);
  }

  void heapify() noexcept {
    for (std::size_t i = heap_.size() / 2; i-- > 0;)
      sift_down(i);
  }

  void renormalize() noexcept {
    for (Entry& entry : heap_)
      entry.deadline -= virtual_time_;
    for (double& deadline : deadline_by_slot_)
      deadline -= virtual_time_;
    virtual_time_ = 0.0;
    // Rounding may have made two deadlines equal; restore the heap order.
    heapify();
  }

  std::vector<Entry> heap_;                // the eligible endpoints
  std::vector<std::uint32_t> position_;    // by slot: index in heap_
  std::vector<double> deadline_by_slot_;   // kept while an endpoint is out of the heap
  std::vector<std::uint32_t> generation_;  // by slot: whose deadline deadline_by_slot_ holds
  double virtual_time_ = 0.0;
};

}  // namespace

std::unique_ptr<PickPolicy> make_least_request() {
  return std::make_unique<LeastRequest>();
}

}  // namespace portico::detail

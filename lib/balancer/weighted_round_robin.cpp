// Smooth weighted round robin, NGINX's algorithm (ngx_http_upstream_round_robin.c):
// on each pick every eligible endpoint's `current` grows by its weight, the
// largest wins and gives back the total weight. Over any run of total-weight
// picks each endpoint is chosen exactly `weight` times, and the heavy ones
// are interleaved with the light ones instead of coming in bursts.
//
// The scan is O(n) per pick; it walks dense arrays of the eligible endpoints
// (16 bytes each) with the running maximum in registers, so the compiler can
// keep it branch-free.
#include <algorithm>

#include "policy.hpp"

namespace portico::detail {
namespace {

class WeightedRoundRobin final : public PickPolicy {
 public:
  std::uint32_t pick(const Pool& /*pool*/, std::uint64_t /*hash*/,
                     TimePoint /*now*/) noexcept override {
    std::int64_t* current = current_.data();
    const std::int64_t* weight = weight_.data();
    const std::size_t size = current_.size();
    std::int64_t best_current = current[0] + weight[0];
    std::size_t best = 0;
    current[0] = best_current;
    for (std::size_t i = 1; i < size; ++i) {
      const std::int64_t value = current[i] + weight[i];
      current[i] = value;
      // Strictly greater: ties go to the lowest slot, as in NGINX.
      if (value > best_current) {
        best_current = value;
        best = i;
      }
    }
    current[best] -= total_;
    return slot_[best];
  }

  void membership_changed(const Pool& pool) override {
    current_.reserve(pool.slot_count());
    weight_.reserve(pool.slot_count());
    slot_.reserve(pool.slot_count());
    current_by_slot_.resize(pool.slot_count(), 0);
  }

  void eligible_changed(const Pool& pool) noexcept override {
    for (std::size_t i = 0; i < slot_.size(); ++i)
      current_by_slot_[slot_[i]] = current_[i];
    current_.clear();
    weight_.clear();
    slot_.clear();
    total_ = 0;
    for (std::uint32_t slot = 0; slot < pool.slot_count(); ++slot) {
      const EndpointState& endpoint = pool.at(slot);
      if (!endpoint.eligible) {
        // An endpoint that comes back starts afresh rather than with
        // credit or debt from another configuration of the pool.
        current_by_slot_[slot] = 0;
        continue;
      }
      current_.push_back(current_by_slot_[slot]);
      weight_.push_back(endpoint.weight);
      slot_.push_back(slot);
      total_ += endpoint.weight;
    }
  }

 private:
  // The eligible endpoints in slot order, one array per field.
  std::vector<std::int64_t> current_;
  std::vector<std::int64_t> weight_;
  std::vector<std::uint32_t> slot_;
  std::vector<std::int64_t> current_by_slot_;  // carries values across a rebuild
  std::int64_t total_ = 0;
};

}  // namespace

std::unique_ptr<PickPolicy> make_weighted_round_robin() {
  return std::make_unique<WeightedRoundRobin>();
}

}  // namespace portico::detail

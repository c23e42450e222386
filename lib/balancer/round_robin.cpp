// Round robin over the eligible endpoints, ignoring weights.
//
// The policy walks the pool's eligible list rather than every endpoint, so a
// pick is O(1) however many endpoints are unhealthy: the cost of skipping
// them is paid once, when the list changes, instead of on every pick.
#include <algorithm>

#include "policy.hpp"

namespace portico::detail {
namespace {

class RoundRobin final : public PickPolicy {
 public:
  explicit RoundRobin(std::uint64_t seed) noexcept : seed_(seed) {}

  std::uint32_t pick(const Pool& pool, std::uint64_t /*hash*/,
                     TimePoint /*now*/) noexcept override {
    const std::vector<std::uint32_t>& eligible = pool.eligible();
    if (next_ >= eligible.size()) next_ = 0;
    last_ = eligible[next_++];
    return last_;
  }

  void membership_changed(const Pool& /*pool*/) override {}

  void eligible_changed(const Pool& pool) noexcept override {
    const std::vector<std::uint32_t>& eligible = pool.eligible();
    if (last_ == kNoSlot) {
      // Start where the seed says, so that event loops sharing a
      // configuration do not all send their first requests to one endpoint.
      next_ = eligible.empty()
                  ? 0
                  : reduce_high(mix64(seed_), static_cast<std::uint32_t>(eligible.size()));
      return;
    }
    // Carry on after the endpoint picked last, as if the list had always
    // been this one.
    next_ = static_cast<std::size_t>(std::upper_bound(eligible.begin(), eligible.end(), last_) -
                                     eligible.begin());
  }

 private:
  std::uint64_t seed_;
  std::size_t next_ = 0;  // position in the eligible list
  std::uint32_t last_ = kNoSlot;
};

}  // namespace

std::unique_ptr<PickPolicy> make_round_robin(std::uint64_t seed) {
  return std::make_unique<RoundRobin>(seed);
}

}  // namespace portico::detail

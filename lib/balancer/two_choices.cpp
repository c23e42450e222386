// The power of two random choices (Mitzenmacher, "The Power of Two Choices
// in Randomized Load Balancing", IEEE TPDS 2001): draw two candidates, keep
// the better one. O(1) per pick, and nearly as good as scanning for the
// best. Two policies share the draw and differ in what "better" means:
//
//   power_of_two_choices  fewer requests in flight per unit of weight;
//   peak_ewma             lower latency estimate x (in flight + 1): Finagle's
//                         Peak EWMA, which reacts at once to a slow response
//                         and forgets it over ewma_decay_time.
//
// Candidates are drawn in proportion to weight. On a tie the first draw
// wins, so at idle the picks follow the weights exactly.
#include <cmath>

#include "policy.hpp"

namespace portico::detail {
namespace {

// Draws two distinct positions of the eligible list and returns the one
// `better(a, b)` prefers; `better` returns true when `b` beats `a`.
template <class Better>
std::uint32_t best_of_two(const Pool& pool, const WeightedSampler& sampler, SplitMix64& rng,
                          Better&& better) noexcept {
  const std::vector<std::uint32_t>& eligible = pool.eligible();
  const auto size = static_cast<std::uint32_t>(eligible.size());
  if (size == 1) return eligible.front();
  const std::uint32_t first = sampler.draw(rng);
  std::uint32_t second = sampler.draw(rng);
  if (second == first) {
    // Comparing a candidate with itself wastes the pick (a quarter of them
    // with two endpoints); take a uniform other one instead.
    second = first + 1 + reduce_high(rng.next(), size - 1);  // < 2 x size: no division
    if (second >= size) second -= size;
  }
  const std::uint32_t a = eligible[first];
  const std::uint32_t b = eligible[second];
  return better(a, b) ? b : a;
}

class TwoChoices final : public PickPolicy {
 public:
  explicit TwoChoices(std::uint64_t seed) noexcept : rng_(seed) {}

  std::uint32_t pick(const Pool& pool, std::uint64_t /*hash*/,
                     TimePoint /*now*/) noexcept override {
    return best_of_two(pool, sampler_, rng_, [&pool](std::uint32_t a, std::uint32_t b) {
      // in_flight_b / weight_b < in_flight_a / weight_a, exactly.
      return std::uint64_t{pool.at(b).in_flight} * pool.at(a).weight <
             std::uint64_t{pool.at(a).in_flight} * pool.at(b).weight;
    });
  }

  void membership_changed(const Pool& pool) override { sampler_.reserve(pool.slot_count()); }
  void eligible_changed(const Pool& pool) noexcept override { sampler_.rebuild(pool); }

 private:
  WeightedSampler sampler_;
  SplitMix64 rng_;
};

// Finagle ranks an endpoint with requests in flight but no answer yet above
// any real latency, so that a newcomer gets one probe, not a flood.
constexpr double kUnmeasuredPenaltyNs = 1e15;

class PeakEwma final : public PickPolicy {
 public:
  PeakEwma(std::uint64_t seed, Duration decay_time) noexcept
      : rng_(seed), decay_ns_(static_cast<double>(decay_time.count())) {}

  std::uint32_t pick(const Pool& pool, std::uint64_t /*hash*/, TimePoint now) noexcept override {
    return best_of_two(pool, sampler_, rng_, [&](std::uint32_t a, std::uint32_t b) {
      return cost(pool, b, now) < cost(pool, a, now);
    });
  }

  void membership_changed(const Pool& pool) override {
    sampler_.reserve(pool.slot_count());
    estimates_.resize(pool.slot_count());
    for (std::uint32_t slot = 0; slot < pool.slot_count(); ++slot) {
      const EndpointState& endpoint = pool.at(slot);
      if (endpoint.live && estimates_[slot].generation != endpoint.generation) {
        estimates_[slot] = Estimate{};
        estimates_[slot].generation = endpoint.generation;
      }
    }
  }

  void eligible_changed(const Pool& pool) noexcept override { sampler_.rebuild(pool); }

  bool tracks_latency() const noexcept override { return true; }

  // A sample above the (decayed) estimate replaces it: the "peak" that
  // makes the policy leave a slowing endpoint at once. A sample below it
  // pulls the estimate down with weight 1 - e^(-elapsed / decay time), so
  // that a burst of fast answers in the same instant cannot erase a peak.
  void latency_sampled(std::uint32_t slot, Duration latency, TimePoint now) noexcept override {
    Estimate& estimate = estimates_[slot];
    const double sample = static_cast<double>(std::max(latency.count(), Duration::rep{0}));
    const double decay = decay_factor(estimate, now);
    const double current = estimate.measured ? estimate.latency_ns * decay : 0.0;
    estimate.latency_ns = sample > current ? sample : current * decay + sample * (1.0 - decay);
    estimate.stamp = std::max(estimate.stamp, now);
    estimate.measured = true;
  }

 private:
  struct Estimate {
    double latency_ns = 0.0;
    TimePoint stamp{};
    std::uint32_t generation = 0;
    bool measured = false;
  };

  double decay_factor(const Estimate& estimate, TimePoint now) const noexcept {
    if (now <= estimate.stamp) return 1.0;
    return std::exp(-static_cast<double>((now - estimate.stamp).count()) / decay_ns_);
  }

  double cost(const Pool& pool, std::uint32_t slot, TimePoint now) const noexcept {
    const Estimate& estimate = estimates_[slot];
    const std::uint32_t in_flight = pool.at(slot).in_flight;
    if (!estimate.measured) return in_flight == 0 ? 0.0 : kUnmeasuredPenaltyNs + in_flight;
    return estimate.latency_ns * decay_factor(estimate, now) * (in_flight + 1.0);
  }

  WeightedSampler sampler_;
  SplitMix64 rng_;
  std::vector<Estimate> estimates_;  // by slot
  double decay_ns_;
};

}  // namespace

std::unique_ptr<PickPolicy> make_power_of_two_choices(std::uint64_t seed) {
  return std::make_unique<TwoChoices>(seed);
}

std::unique_ptr<PickPolicy> make_peak_ewma(std::uint64_t seed, Duration decay_time) {
  return std::make_unique<PeakEwma>(seed, decay_time);
}

}  // namespace portico::detail

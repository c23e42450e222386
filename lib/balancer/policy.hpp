// The picking policies behind a Balancer, one small vtable: the pool
// (pool.hpp) decides which endpoints may be picked, a policy decides which
// of those is. One implementation file per policy.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../common/mix.hpp"
#include "pool.hpp"

namespace portico::detail {

class PickPolicy {
 public:
  virtual ~PickPolicy() = default;

  // Returns one slot of pool.eligible(), which is not empty. Never
  // allocates.
  virtual std::uint32_t pick(const Pool& pool, std::uint64_t hash, TimePoint now) noexcept = 0;

  // Endpoints came or went (or the pool was first filled). May allocate,
  // and must reserve whatever eligible_changed needs so that it does not.
  virtual void membership_changed(const Pool& pool) = 0;

  // pool.eligible() changed: health, ejection, panic or membership.
  virtual void eligible_changed(const Pool& pool) noexcept = 0;

  // The in-flight count of `slot` changed. Called only when tracks_load().
  virtual void load_changed(const Pool& /*pool*/, std::uint32_t /*slot*/) noexcept {}
  virtual bool tracks_load() const noexcept { return false; }

  // A successful request on `slot` took `latency`. Called only when
  // tracks_latency().
  virtual void latency_sampled(std::uint32_t /*slot*/, Duration /*latency*/,
                               TimePoint /*now*/) noexcept {}
  virtual bool tracks_latency() const noexcept { return false; }
};

std::unique_ptr<PickPolicy> make_round_robin(std::uint64_t seed);
std::unique_ptr<PickPolicy> make_weighted_round_robin();
std::unique_ptr<PickPolicy> make_least_request();
std::unique_ptr<PickPolicy> make_power_of_two_choices(std::uint64_t seed);
std::unique_ptr<PickPolicy> make_peak_ewma(std::uint64_t seed, Duration decay_time);
std::unique_ptr<PickPolicy> make_maglev(std::uint32_t table_size);

// Maps the top 32 bits of `h` onto [0, n) by multiplication (Lemire), which
// avoids a division; the bias, n / 2^32, is negligible here.
constexpr std::uint32_t reduce_high(std::uint64_t h, std::uint32_t n) noexcept {
  return static_cast<std::uint32_t>(((h >> 32) * n) >> 32);
}
constexpr std::uint32_t reduce_low(std::uint64_t h, std::uint32_t n) noexcept {
  return static_cast<std::uint32_t>(((h & 0xffffffffULL) * n) >> 32);
}

// Draws a position in pool.eligible() with probability proportional to its
// endpoint's weight, in O(1): Walker's alias method, built with Vose's
// linear-time construction ("A linear algorithm for generating random
// numbers with a given distribution", IEEE TSE 1991) in exact integer
// arithmetic. With equal weights it skips the table.
class WeightedSampler {
 public:
  void reserve(std::size_t n);
  void rebuild(const Pool& pool) noexcept;  // within reserved capacity
  std::uint32_t draw(SplitMix64& rng) const noexcept {
    const std::uint64_t x = rng.next();
    const std::uint32_t bucket = reduce_high(x, size_);
    if (uniform_) return bucket;
    return reduce_low(x, total_) < threshold_[bucket] ? bucket : alias_[bucket];
  }

 private:
  std::vector<std::uint64_t> threshold_;  // accept the bucket itself below this
  std::vector<std::uint32_t> alias_;
  std::vector<std::uint64_t> scaled_;  // construction scratch
  std::vector<std::uint32_t> small_;
  std::vector<std::uint32_t> large_;
  std::uint32_t size_ = 0;
  std::uint32_t total_ = 0;
  bool uniform_ = true;
};

}  // namespace portico::detail

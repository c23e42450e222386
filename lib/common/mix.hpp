// Bit mixing and a small seeded generator, shared by the primitives that
// hash or draw at random (the limiter's key hash, the balancer's policies),
// so that there is one copy of the constants to get right.
#pragma once

#include <cstdint>

namespace portico::detail {

// 2^64 / golden ratio: the increment of splitmix64's Weyl sequence, and a
// handy odd constant for stepping a hash to an unrelated one.
inline constexpr std::uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

// The splitmix64 finalizer (Steele, Lea, Flood: "Fast splittable
// pseudorandom number generators", OOPSLA 2014): a bijective 64-bit mix.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// splitmix64 as a generator: one word of state, fast, and good enough to
// choose candidates or expand one seed into several independent-looking
// words; seeded so that tests and benchmarks are reproducible.
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(std::uint64_t seed) noexcept : state_(seed) {}
  constexpr std::uint64_t next() noexcept {
    state_ += kGoldenGamma;
    return mix64(state_);
  }

 private:
  std::uint64_t state_;
};

}  // namespace portico::detail

// Small helpers shared by the micro-benchmarks: a monotonic timer, a sink the
// optimiser cannot see through, the median of repeated runs, and a count of
// heap allocations (every benchmark reports allocations next to time).
//
// A benchmark that includes this header must link the allocation counter
// (tests/support) so that operator new is counted.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include "alloc_counter.hpp"

namespace portico::bench {

// Number of calls to operator new since the program started.
inline std::uint64_t allocation_count() noexcept {
  return portico::test::allocation_count();
}

template <class T>
inline void do_not_optimize(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0);
}

// What one measured loop cost.
struct Sample {
  double ns_per_op;
  double allocs_per_op;
};

// Runs `body(iterations)` `runs` times and returns the median ns per op and
// the allocations per op of the median run. `body` must perform exactly
// `iterations` operations.
template <class Body>
Sample measure(std::size_t runs, std::size_t iterations, Body&& body) {
  std::vector<double> ns;
  std::vector<double> allocs;
  body(iterations / 10 + 1);  // warm caches and lazy state
  for (std::size_t r = 0; r < runs; ++r) {
    const std::uint64_t a0 = allocation_count();
    const std::int64_t t0 = now_ns();
    body(iterations);
    const std::int64_t t1 = now_ns();
    const std::uint64_t a1 = allocation_count();
    ns.push_back(static_cast<double>(t1 - t0) / static_cast<double>(iterations));
    allocs.push_back(static_cast<double>(a1 - a0) / static_cast<double>(iterations));
  }
  return Sample{median(ns), median(allocs)};
}

// True when the program was asked for a short smoke run (CI uses this to
// check that benchmarks still run without spending minutes on them).
inline bool quick_mode(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--quick") return true;
  }
  return false;
}

}  // namespace portico::bench

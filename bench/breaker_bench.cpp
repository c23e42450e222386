// Circuit breaker micro-benchmark: the cost the breaker adds to each request
// in the states a gateway spends its time in, and the allocations per op
// (which must be zero). Exits non-zero if the breaker misbehaves while being
// measured or allocates.
#include <cstdio>
#include <cstdlib>

#include "bench.hpp"
#include "portico/breaker.hpp"

namespace {

using portico::BreakerAdmission;
using portico::BreakerConfig;
using portico::BreakerPermit;
using portico::BreakerState;
using portico::CircuitBreaker;
using portico::Duration;
using portico::TimePoint;
namespace bench = portico::bench;

// Requests arrive 1 µs apart in simulated time, so the 10 s window rolls
// through its buckets during a run as it would under steady traffic.
constexpr Duration kRequestGap = std::chrono::microseconds(1);

bool g_failed = false;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "breaker_bench: %s\n", what);
    g_failed = true;
  }
}

CircuitBreaker make(const BreakerConfig& config) {
  auto created = CircuitBreaker::create(config);
  if (!created) {
    std::fprintf(stderr, "breaker_bench: %s\n", created.error().message.c_str());
    std::exit(1);
  }
  return std::move(created).value();
}

void report(const char* name, const bench::Sample& s) {
  std::printf("breaker %-44s %7.2f ns/op  %.3f allocs/op\n", name, s.ns_per_op, s.allocs_per_op);
  expect(s.allocs_per_op == 0.0, "the request path allocated");
}

// Closed, every request succeeds: the common case, window and all.
void bench_closed_success(std::size_t runs, std::size_t iterations) {
  CircuitBreaker breaker = make(BreakerConfig{});
  TimePoint now{std::chrono::hours(1000)};
  std::uint64_t admitted = 0;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      now += kRequestGap;
      const BreakerPermit permit = breaker.try_acquire(now);
      admitted += permit.admitted();
      breaker.on_success(permit, now);
    }
  });
  report("closed: try_acquire + on_success", s);
  expect(admitted == breaker.counters().admitted, "admissions miscounted");
  expect(breaker.counters().admitted == breaker.counters().successes,
         "closed: a request was refused");
  expect(breaker.state(now) == BreakerState::closed, "closed: the breaker tripped on successes");
}

// Closed with one request in ten failing: below both default triggers, so it
// must stay closed while the failure path and the ratio check are exercised.
void bench_closed_mixed(std::size_t runs, std::size_t iterations) {
  CircuitBreaker breaker = make(BreakerConfig{});
  TimePoint now{std::chrono::hours(1000)};
  std::uint64_t i_total = 0;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i, ++i_total) {
      now += kRequestGap;
      const BreakerPermit permit = breaker.try_acquire(now);
      if (i_total % 10 == 9) {
        breaker.on_failure(permit, now);
      } else {
        breaker.on_success(permit, now);
      }
    }
  });
  report("closed, 10% failures: try_acquire + on_*", s);
  expect(breaker.counters().trips == 0, "closed 10%: the breaker tripped below its thresholds");
  expect(breaker.counters().failures == breaker.counters().admitted / 10,
         "closed 10%: outcomes miscounted");
}

// Open: every request is refused without reaching the upstream.
void bench_open_rejection(std::size_t runs, std::size_t iterations) {
  BreakerConfig config;
  config.consecutive_failures = 1;
  config.open_duration = std::chrono::hours(24);
  config.max_open_duration = config.open_duration;
  CircuitBreaker breaker = make(config);
  TimePoint now{std::chrono::hours(1000)};
  breaker.on_failure(breaker.try_acquire(now), now);
  std::uint64_t admitted = 0;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      now += kRequestGap;
      const BreakerPermit permit = breaker.try_acquire(now);
      admitted += permit.admitted();
      bench::do_not_optimize(permit);
    }
  });
  report("open: try_acquire (rejected)", s);
  expect(admitted == 0, "open: a request was admitted");
  expect(breaker.state(now) == BreakerState::open, "open: the breaker left the open state");
}

// The proxy's wait for a connection, with a threshold configured.
void bench_pending(std::size_t runs, std::size_t iterations) {
  BreakerConfig config;
  config.max_pending = 1024;
  CircuitBreaker breaker = make(config);
  std::uint64_t refused = 0;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      refused += breaker.try_enter_pending() != BreakerAdmission::admitted;
      breaker.leave_pending();
    }
  });
  report("try_enter_pending + leave_pending", s);
  expect(refused == 0 && breaker.pending() == 0, "pending: miscounted");
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::quick_mode(argc, argv);
  const std::size_t runs = quick ? 3 : 15;
  const std::size_t iterations = quick ? 100'000 : 10'000'000;
  std::printf("breaker: %zu ops/run, median of %zu runs\n", iterations, runs);
  bench_closed_success(runs, iterations);
  bench_closed_mixed(runs, iterations);
  bench_open_rejection(runs, iterations);
  bench_pending(runs, iterations);
  std::printf("breaker sizeof(CircuitBreaker) %zu bytes, sizeof(BreakerPermit) %zu bytes\n",
              sizeof(CircuitBreaker), sizeof(BreakerPermit));
  if (g_failed) {
    std::fprintf(stderr, "breaker_bench: FAILED\n");
    return 1;
  }
  return 0;
}

// Rate limiter micro-benchmark: ns per check for one hot key and for
// 1,000,000 distinct keys (GCRA and both quotas), two threads contending on
// one key, bytes per key, and allocations per check (which must be zero).
// Each figure is printed with its target. Exits non-zero if a decision count
// differs from what GCRA permits or the request path allocates.
//
// Time is simulated: each check advances `now` by a fixed gap, chosen so that
// a steady share of checks is denied and both branches are measured.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bench.hpp"
#include "portico/limiter.hpp"

namespace {

using portico::ConcurrentFixedWindowQuota;
using portico::ConcurrentKeyedLimiter;
using portico::Duration;
using portico::FixedWindowQuota;
using portico::Gcra;
using portico::GcraConfig;
using portico::KeyedLimiter;
using portico::TimePoint;
namespace bench = portico::bench;

// 1,000,000 per second (T = 1 µs), burst 10; requests every 700 ns ask for
// more than the rate, so about 30% are denied once the burst is spent.
const GcraConfig kRate{1'000'000, std::chrono::seconds(1), 10};
constexpr Duration kGap{700};
const TimePoint kStart{std::chrono::hours(1000)};

bool g_failed = false;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "limiter_bench: %s\n", what);
    g_failed = true;
  }
}

template <class T>
T unwrap(portico::Result<T>&& result) {
  if (!result) {
    std::fprintf(stderr, "limiter_bench: %s\n", result.error().message.c_str());
    std::exit(1);
  }
  return std::move(result).value();
}

void report_time(const char* name, const bench::Sample& s, double target_ns) {
  if (target_ns > 0) {
    std::printf("limiter %-46s %8.2f ns/check   (target < %.0f ns: %s)\n", name, s.ns_per_op,
                target_ns, s.ns_per_op < target_ns ? "met" : "MISSED");
  } else {
    std::printf("limiter %-46s %8.2f ns/check\n", name, s.ns_per_op);
  }
  std::printf("limiter %-46s %8.3f allocs/check (target 0)\n", name, s.allocs_per_op);
  expect(s.allocs_per_op == 0.0, "a check allocated");
}

// What GCRA permits a single key for `checks` requests `gap` apart.
std::uint64_t gcra_permits(std::size_t checks, Duration gap) {
  const Gcra gcra = unwrap(Gcra::create(kRate));
  std::int64_t tat = 0;
  std::uint64_t allowed = 0;
  TimePoint now = kStart;
  for (std::size_t i = 0; i < checks; ++i) {
    now += gap;
    allowed += gcra.check(tat, now).allowed;
  }
  return allowed;
}

std::vector<std::string> make_keys(std::size_t count) {
  std::vector<std::string> keys;
  keys.reserve(count);
  for (std::size_t i = 0; i < count; ++i)
    keys.push_back("user-" + std::to_string(i));
  return keys;
}

void bench_gcra_core(std::size_t runs, std::size_t iterations) {
  const Gcra gcra = unwrap(Gcra::create(kRate));
  std::int64_t tat = 0;
  TimePoint now = kStart;
  std::uint64_t allowed = 0;
  std::size_t total = 0;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      now += kGap;
      allowed += gcra.check(tat, now).allowed;
    }
    total += n;
  });
  report_time("Gcra::check, caller-held state", s, 0);
  expect(allowed == gcra_permits(total, kGap), "Gcra core admitted a wrong count");
}

template <class Limiter>
void bench_hot_key(const char* name, std::size_t runs, std::size_t iterations) {
  Limiter limiter = unwrap(Limiter::create({kRate, 1024, 0}));
  TimePoint now = kStart;
  std::uint64_t allowed = 0;
  std::size_t total = 0;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      now += kGap;
      allowed += limiter.check("203.0.113.7", now).allowed;
    }
    total += n;
  });
  report_time(name, s, 50);
  expect(allowed == gcra_permits(total, kGap), "hot key admitted a wrong count");
}

// Every key is checked once per pass, with the table sized for exactly that
// many keys. The keys are walked in order: the hash scatters them over the
// table anyway, and a gateway's key sits in a request buffer that is already
// in cache, which a shuffled walk over 32 MB of key strings would not model.
void bench_many_keys(std::size_t runs, std::size_t key_count) {
  const std::vector<std::string> keys = make_keys(key_count);

  KeyedLimiter limiter =
      unwrap(KeyedLimiter::create({kRate, static_cast<std::int64_t>(key_count), 0}));
  // Fill at one instant: nothing refills, so every eviction here is a key
  // lost before max_keys was reached.
  std::uint64_t first_allowed = 0;
  for (const std::string& key : keys)
    first_allowed += limiter.check(key, kStart).allowed;
  expect(first_allowed == key_count, "a new key was denied");
  const double bytes_per_key =
      static_cast<double>(limiter.memory_bytes()) / static_cast<double>(key_count);
  std::printf("limiter %-46s %8.2f bytes/key  (target <= 40: %s)\n", "KeyedLimiter memory",
              bytes_per_key, bytes_per_key <= 40 ? "met" : "MISSED");
  std::printf("limiter %-46s %8llu keys       (of %zu; target 0: %s)\n",
              "KeyedLimiter evicted while filling to max_keys",
              static_cast<unsigned long long>(limiter.evictions()), key_count,
              limiter.evictions() == 0 ? "met" : "MISSED");
  expect(limiter.size() <= limiter.capacity(), "size beyond capacity");

  TimePoint now = kStart;
  char name[64];
  std::snprintf(name, sizeof name, "KeyedLimiter::check, %zu keys", key_count);
  const auto s = bench::measure(runs, key_count, [&](std::size_t n) {
    now += std::chrono::milliseconds(1);  // each key refills a little between passes
    std::uint64_t allowed = 0;
    for (std::size_t i = 0; i < n; ++i)
      allowed += limiter.check(keys[i], now).allowed;
    bench::do_not_optimize(allowed);
  });
  report_time(name, s, 50);

  FixedWindowQuota quota = unwrap(FixedWindowQuota::create(
      {1'000'000, portico::QuotaWindow::month, static_cast<std::int64_t>(key_count), 0}));
  const auto wall = std::chrono::system_clock::time_point(std::chrono::hours(480'000));
  std::snprintf(name, sizeof name, "FixedWindowQuota::check, %zu keys", key_count);
  const auto q = bench::measure(runs, key_count, [&](std::size_t n) {
    std::uint64_t allowed = 0;
    for (std::size_t i = 0; i < n; ++i)
      allowed += quota.check(keys[i], wall).allowed;
    bench::do_not_optimize(allowed);
  });
  report_time(name, q, 0);

  ConcurrentFixedWindowQuota shared = unwrap(ConcurrentFixedWindowQuota::create(
      {1'000'000, portico::QuotaWindow::day, static_cast<std::int64_t>(key_count), 0}));
  std::snprintf(name, sizeof name, "ConcurrentFixedWindowQuota::check, %zu keys", key_count);
  const auto c = bench::measure(runs, key_count, [&](std::size_t n) {
    std::uint64_t allowed = 0;
    for (std::size_t i = 0; i < n; ++i)
      allowed += shared.check(keys[i], wall).allowed;
    bench::do_not_optimize(allowed);
  });
  report_time(name, c, 0);
}

// Two threads check the same key as fast as they can, each with its own
// simulated clock (the same gap), as two event loops sharing one limit.
void bench_contended(std::size_t checks_per_thread) {
  ConcurrentKeyedLimiter limiter = unwrap(ConcurrentKeyedLimiter::create({kRate, 1024, 0}));
  std::atomic<int> ready{0};
  std::atomic<std::uint64_t> allowed{0};
  std::atomic<int> done{0};
  std::int64_t elapsed_ns[2] = {0, 0};
  std::uint64_t allocs_before = 0;
  std::uint64_t allocs_after = 0;
  auto worker = [&](int index) {
    // Both threads exist before either starts, so starting the second
    // thread (which allocates) falls outside the counted span.
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    if (index == 0) allocs_before = bench::allocation_count();
    TimePoint now = kStart;
    std::uint64_t mine = 0;
    const std::int64_t t0 = bench::now_ns();
    for (std::size_t i = 0; i < checks_per_thread; ++i) {
      now += kGap;
      mine += limiter.check("shared-tenant", now).allowed;
    }
    elapsed_ns[index] = bench::now_ns() - t0;
    allowed.fetch_add(mine);
    done.fetch_add(1);
    if (index == 0) {
      while (done.load() < 2) {
      }
      allocs_after = bench::allocation_count();
    }
  };
  std::thread other(worker, 1);
  worker(0);
  other.join();
  const double allocs = static_cast<double>(allocs_after - allocs_before) /
                        static_cast<double>(2 * checks_per_thread);
  const double per_thread[2] = {
      static_cast<double>(elapsed_ns[0]) / static_cast<double>(checks_per_thread),
      static_cast<double>(elapsed_ns[1]) / static_cast<double>(checks_per_thread)};
  const double slowest_s = static_cast<double>(std::max(elapsed_ns[0], elapsed_ns[1])) / 1e9;
  std::printf("limiter %-46s %8.2f ns/check   (thread 1: %.2f ns/check)\n",
              "ConcurrentKeyedLimiter, 2 threads, 1 key", per_thread[0], per_thread[1]);
  std::printf("limiter %-46s %8.2f M checks/s\n", "ConcurrentKeyedLimiter, 2 threads, total",
              static_cast<double>(2 * checks_per_thread) / slowest_s / 1e6);
  std::printf("limiter %-46s %8.3f allocs/check (target 0)\n",
              "ConcurrentKeyedLimiter, 2 threads, 1 key", allocs);
  expect(allocs == 0.0, "a concurrent check allocated");
  // Both clocks span [start, start + n * gap]; GCRA permits at most the burst
  // plus one per interval over that span, whatever the interleaving.
  const Gcra gcra = unwrap(Gcra::create(kRate));
  const auto span = static_cast<std::uint64_t>(kGap.count()) * checks_per_thread;
  const std::uint64_t bound = static_cast<std::uint64_t>(gcra.limit()) +
                              span / static_cast<std::uint64_t>(gcra.emission_interval().count());
  std::printf("limiter %-46s %8llu allowed    (GCRA bound %llu)\n",
              "ConcurrentKeyedLimiter, 2 threads, 1 key",
              static_cast<unsigned long long>(allowed.load()),
              static_cast<unsigned long long>(bound));
  expect(allowed.load() <= bound, "two threads were admitted more than GCRA permits");
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::quick_mode(argc, argv);
  const std::size_t runs = quick ? 3 : 7;
  const std::size_t iterations = quick ? 20'000 : 5'000'000;
  const std::size_t keys = quick ? 10'000 : 1'000'000;

  bench_gcra_core(runs, iterations);
  bench_hot_key<KeyedLimiter>("KeyedLimiter::check, 1 hot key", runs, iterations);
  bench_hot_key<ConcurrentKeyedLimiter>("ConcurrentKeyedLimiter::check, 1 thread", runs,
                                        iterations);
  bench_many_keys(runs, keys);
  bench_contended(quick ? 20'000 : 5'000'000);

  if (g_failed) {
    std::fprintf(stderr, "limiter_bench: FAILED\n");
    return 1;
  }
  return 0;
}

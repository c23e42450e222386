#include "portico/limiter.hpp"

#include <doctest/doctest.h>

#include "../support/alloc_counter.hpp"

#include <barrier>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using portico::ConcurrentFixedWindowQuota;
using portico::ConcurrentKeyedLimiter;
using portico::Decision;
using portico::Duration;
using portico::ErrorKind;
using portico::FixedWindowQuota;
using portico::FixedWindowQuotaConfig;
using portico::Gcra;
using portico::GcraConfig;
using portico::KeyedLimiter;
using portico::KeyedLimiterConfig;
using portico::QuotaWindow;
using portico::TimePoint;

namespace {

// An arbitrary non-zero start, as ManualClock uses.
const TimePoint kStart = TimePoint(std::chrono::hours(1000));

Gcra make_gcra(std::int64_t rate, Duration period, std::int64_t burst) {
  auto gcra = Gcra::create({rate, period, burst});
  REQUIRE(gcra.ok());
  return *gcra;
}

KeyedLimiter make_keyed(GcraConfig rate, std::int64_t max_keys) {
  auto limiter = KeyedLimiter::create({rate, max_keys, 42});
  REQUIRE(limiter.ok());
  return std::move(*limiter);
}

ConcurrentKeyedLimiter make_concurrent(GcraConfig rate, std::int64_t max_keys) {
  auto limiter = ConcurrentKeyedLimiter::create({rate, max_keys, 42});
  REQUIRE(limiter.ok());
  return std::move(*limiter);
}

FixedWindowQuota make_quota(std::int64_t limit, QuotaWindow window, std::int64_t max_keys = 64) {
  auto quota = FixedWindowQuota::create({limit, window, max_keys, 42});
  REQUIRE(quota.ok());
  return std::move(*quota);
}

ConcurrentFixedWindowQuota make_shared_quota(std::int64_t limit, QuotaWindow window,
                                             std::int64_t max_keys = 64) {
  auto quota = ConcurrentFixedWindowQuota::create({limit, window, max_keys, 42});
  REQUIRE(quota.ok());
  return std::move(*quota);
}

template <class T>
void require_invalid(const portico::Result<T>& result, const std::string& field) {
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().kind == ErrorKind::invalid_argument);
  CHECK(result.error().message.rfind(field + ":", 0) == 0);
}

// GCRA(I, L) as ITU-T I.371 defines it (the virtual scheduling algorithm),
// one cell at a time, in plain signed arithmetic. A request of cost c is c
// cells arriving at the same instant, admitted only if every one conforms.
// The derived figures are found by simulation and search rather than by
// formula, so that they check the implementation's formulas independently.
class ReferenceGcra {
 public:
  ReferenceGcra(std::int64_t increment, std::int64_t burst)
      : increment_(increment), limit_param_(increment * burst), burst_(burst) {}

  std::int64_t limit() const { return burst_ + 1; }

  // Admits `cells` at `ta` if all conform; returns whether it did.
  bool request(std::int64_t ta, std::int64_t cells) {
    std::int64_t after = 0;
    if (!conforms(tat_, ta, cells, &after)) return false;
    tat_ = after;
    return true;
  }

  // Cost-1 requests that would conform one after another at `ta`.
  std::int64_t remaining(std::int64_t ta) const {
    std::int64_t count = 0;
    for (std::int64_t tat = tat_;; ++count) {
      if (tat < ta) tat = ta;
      if (tat > ta + limit_param_) break;
      tat += increment_;
    }
    return count;
  }

  // The least wait after which `cells` at once would conform.
  std::int64_t retry_after(std::int64_t ta, std::int64_t cells) const {
    std::int64_t lo = 0;  // does not conform
    std::int64_t hi = std::max<std::int64_t>(0, tat_ - ta) + cells * increment_;  // conforms
    std::int64_t unused = 0;
    while (hi - lo > 1) {
      const std::int64_t mid = lo + (hi - lo) / 2;
      (conforms(tat_, ta + mid, cells, &unused) ? hi : lo) = mid;
    }
    return hi;
  }

  std::int64_t reset_after(std::int64_t ta) const { return std::max<std::int64_t>(0, tat_ - ta); }

 private:
  bool conforms(std::int64_t tat, std::int64_t ta, std::int64_t cells, std::int64_t* after) const {
    for (std::int64_t k = 0; k < cells; ++k) {
      if (tat < ta) tat = ta;                     // the cell arrives after TAT: TAT := ta
      if (tat > ta + limit_param_) return false;  // too early: non-conforming
      tat += increment_;                          // conforming: TAT := TAT + I
    }
    *after = tat;
    return true;
  }

  std::int64_t increment_;    // I = T
  std::int64_t limit_param_;  // L = tau = T * burst
  std::int64_t burst_;
  std::int64_t tat_ = std::numeric_limits<std::int64_t>::min() / 2;  // no cell yet
};

// What the reference says about one request, in the implementation's terms.
Decision reference_decide(ReferenceGcra& ref, std::int64_t ta, std::uint32_t cost) {
  Decision d;
  d.limit = ref.limit();
  if (cost == 0 || cost > ref.limit()) {
    d.cost_out_of_range = true;
    d.retry_after = Duration::max();
  } else if (ref.request(ta, cost)) {
    d.allowed = true;
  } else {
    d.retry_after = Duration(ref.retry_after(ta, cost));
  }
  d.remaining = ref.remaining(ta);
  d.reset_after = Duration(ref.reset_after(ta));
  return d;
}

bool same(const Decision& a, const Decision& b) {
  return a.allowed == b.allowed && a.cost_out_of_range == b.cost_out_of_range &&
         a.limit == b.limit && a.remaining == b.remaining && a.retry_after == b.retry_after &&
         a.reset_after == b.reset_after;
}

std::string describe(const Decision& d) {
  return std::string(d.allowed ? "allowed" : "denied") +
         (d.cost_out_of_range ? " out-of-range" : "") + " limit=" + std::to_string(d.limit) +
         " remaining=" + std::to_string(d.remaining) +
         " retry=" + std::to_string(d.retry_after.count()) +
         " reset=" + std::to_string(d.reset_after.count());
}

// Drives `check(key_index, now, cost)` with a seeded random sequence and
// compares every decision with the reference model. Gaps mix simultaneous
// requests, sub-interval gaps, long idles and waits of exactly the announced
// retry_after (and 1 ns less), so boundaries are hit on purpose.
template <class Check>
void compare_with_reference(std::uint64_t seed, int steps, int keys, Check&& check) {
  std::mt19937_64 rng(seed);
  const std::int64_t interval = std::uniform_int_distribution<std::int64_t>(1, 1'000'000)(rng);
  const std::int64_t burst = std::uniform_int_distribution<std::int64_t>(0, 20)(rng);
  const std::int64_t rate = std::uniform_int_distribution<std::int64_t>(1, 1000)(rng);
  const GcraConfig config{rate, Duration(interval * rate), burst};
  CAPTURE(seed);
  CAPTURE(interval);
  CAPTURE(burst);

  std::vector<ReferenceGcra> refs(static_cast<std::size_t>(keys), ReferenceGcra(interval, burst));
  const std::int64_t limit = burst + 1;
  std::int64_t now = kStart.time_since_epoch().count();
  int key = 0;
  Decision last;
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  for (int step = 0; step < steps; ++step) {
    const std::int64_t gap_kind = pick(0, 99);
    std::int64_t gap = 0;
    if (gap_kind < 35) {
      gap = 0;
    } else if (gap_kind < 55) {
      gap = pick(0, interval - 1);
    } else if (gap_kind < 80) {
      gap = pick(0, 3 * interval);
    } else if (gap_kind < 88) {
      gap = pick(0, (burst + 2) * interval);
    } else if (gap_kind < 90) {
      gap = pick(0, 1'000'000'000'000);
    } else if (!last.allowed && !last.cost_out_of_range) {
      gap = last.retry_after.count() - (gap_kind < 95 ? 0 : 1);  // stay on the denied key
    }
    now += gap;
    if (gap_kind < 90 || last.allowed || last.cost_out_of_range) {
      key = static_cast<int>(pick(0, keys - 1));
    }
    const std::int64_t cost_kind = pick(0, 99);
    const auto cost = static_cast<std::uint32_t>(cost_kind < 75   ? 1
                                                 : cost_kind < 96 ? pick(1, limit)
                                                 : cost_kind < 98 ? 0
                                                                  : limit + pick(1, 3));
    const Decision expected = reference_decide(refs[static_cast<std::size_t>(key)], now, cost);
    const Decision got = check(config, key, TimePoint(Duration(now)), cost);
    if (!same(expected, got)) {
      CAPTURE(step);
      CAPTURE(key);
      CAPTURE(cost);
      CHECK(describe(got) == describe(expected));
      return;
    }
    last = got;
  }
}

constexpr int kSteps = 20'000;  // per seed; five seeds make 100,000 decisions per store

}  // namespace

// ---------------------------------------------------------------------------
// Parameters

TEST_CASE("Gcra rejects every invalid parameter with the field named") {
  require_invalid(Gcra::create({0, 1s, 1}), "rate");
  require_invalid(Gcra::create({-5, 1s, 1}), "rate");
  require_invalid(Gcra::create({10, 0s, 1}), "period");
  require_invalid(Gcra::create({10, -1s, 1}), "period");
  require_invalid(Gcra::create({10, 1s, -1}), "burst");
  // period / rate under 1 ns: the interval would round to zero.
  require_invalid(Gcra::create({2, Duration(1), 0}), "rate");
  require_invalid(Gcra::create({2'000'000'000, 1s, 0}), "rate");
  // (burst + 1) * T beyond 2^62 ns could overflow the arithmetic.
  require_invalid(Gcra::create({1, 1s, std::numeric_limits<std::int64_t>::max()}), "burst");
  require_invalid(Gcra::create({1, Gcra::kMaxRefillTime, 1}), "burst");
  require_invalid(Gcra::create({1, Duration::max(), 0}), "burst");
  CHECK(Gcra::create({1, Gcra::kMaxRefillTime, 0}).ok());
  CHECK(Gcra::create({1, Gcra::kMaxRefillTime / 2, 1}).ok());
  CHECK(Gcra::create({1'000'000'000, 1s, 0}).ok());
}

TEST_CASE("the error message carries the bad value") {
  const auto result = Gcra::create({-7, 1s, 1});
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().message.find("-7") != std::string::npos);
}

TEST_CASE("the keyed stores reject invalid rates and sizes") {
  const GcraConfig good{10, 1s, 5};
  require_invalid(KeyedLimiter::create({{0, 1s, 5}, 10, 0}), "rate");
  require_invalid(KeyedLimiter::create({{10, 1s, -1}, 10, 0}), "burst");
  require_invalid(KeyedLimiter::create({good, 0, 0}), "max_keys");
  require_invalid(KeyedLimiter::create({good, -3, 0}), "max_keys");
  require_invalid(KeyedLimiter::create({good, portico::kMaxLimiterKeys + 1, 0}), "max_keys");
  require_invalid(ConcurrentKeyedLimiter::create({{10, 0s, 5}, 10, 0}), "period");
  require_invalid(ConcurrentKeyedLimiter::create({good, 0, 0}), "max_keys");
  require_invalid(ConcurrentKeyedLimiter::create({good, portico::kMaxLimiterKeys + 1, 0}),
                  "max_keys");
  CHECK(KeyedLimiter::create({good, 1, 0}).ok());
  CHECK(ConcurrentKeyedLimiter::create({good, 1, 0}).ok());
}

TEST_CASE("FixedWindowQuota rejects invalid limits, windows and sizes") {
  require_invalid(FixedWindowQuota::create({0, QuotaWindow::day, 10, 0}), "limit");
  require_invalid(FixedWindowQuota::create({-1, QuotaWindow::day, 10, 0}), "limit");
  require_invalid(FixedWindowQuota::create({std::int64_t{1} << 32, QuotaWindow::day, 10, 0}),
                  "limit");
  require_invalid(FixedWindowQuota::create({10, static_cast<QuotaWindow>(7), 10, 0}), "window");
  require_invalid(FixedWindowQuota::create({10, QuotaWindow::month, 0, 0}), "max_keys");
  CHECK(FixedWindowQuota::create({(std::int64_t{1} << 32) - 1, QuotaWindow::hour, 1, 0}).ok());
  require_invalid(ConcurrentFixedWindowQuota::create({0, QuotaWindow::day, 10, 0}), "limit");
  require_invalid(ConcurrentFixedWindowQuota::create({10, static_cast<QuotaWindow>(7), 10, 0}),
                  "window");
  require_invalid(ConcurrentFixedWindowQuota::create({10, QuotaWindow::hour, 0, 0}), "max_keys");
  CHECK(ConcurrentFixedWindowQuota::create({(std::int64_t{1} << 32) - 1, QuotaWindow::day, 1, 0})
            .ok());
}

TEST_CASE("the interval is period / rate in whole nanoseconds, tau is T * burst") {
  const Gcra gcra = make_gcra(3, 1s, 4);
  CHECK(gcra.emission_interval() == Duration(333'333'333));
  CHECK(gcra.tolerance() == Duration(4 * 333'333'333LL));
  CHECK(gcra.limit() == 5);
}

// ---------------------------------------------------------------------------
// The algorithm at its boundaries

TEST_CASE("a fresh key gets burst + 1 at once, then one per interval, not a nanosecond early") {
  const Gcra gcra = make_gcra(10, 1s, 4);  // T = 100 ms
  std::int64_t tat = 0;
  for (std::int64_t i = 0; i < 5; ++i) {
    const Decision d = gcra.check(tat, kStart);
    REQUIRE(d.allowed);
    CHECK(d.limit == 5);
    CHECK(d.remaining == 4 - i);
    CHECK(d.retry_after == 0ns);
    CHECK(d.reset_after == (i + 1) * 100ms);
  }
  Decision d = gcra.check(tat, kStart);
  CHECK_FALSE(d.allowed);
  CHECK_FALSE(d.cost_out_of_range);
  CHECK(d.remaining == 0);
  CHECK(d.retry_after == 100ms);
  CHECK(d.reset_after == 500ms);

  d = gcra.check(tat, kStart + 100ms - 1ns);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 1ns);

  d = gcra.check(tat, kStart + 100ms);
  CHECK(d.allowed);
  CHECK(d.remaining == 0);
  CHECK(d.reset_after == 500ms);
  CHECK_FALSE(gcra.check(tat, kStart + 100ms).allowed);
}

TEST_CASE("burst 0 admits exactly one request per interval") {
  const Gcra gcra = make_gcra(1, 1s, 0);
  std::int64_t tat = 0;
  CHECK(gcra.check(tat, kStart).allowed);
  const Decision denied = gcra.check(tat, kStart + 999ms);
  CHECK_FALSE(denied.allowed);
  CHECK(denied.retry_after == 1ms);
  CHECK(gcra.check(tat, kStart + 1s).allowed);
  CHECK(gcra.check(tat, kStart + 5s).allowed);
  CHECK_FALSE(gcra.check(tat, kStart + 5s + 500ms).allowed);
}

TEST_CASE("partial refill: remaining, retry_after and reset_after are exact") {
  const Gcra gcra = make_gcra(1, 1s, 9);  // limit 10, T = 1 s
  std::int64_t tat = 0;
  CHECK(gcra.check(tat, kStart, 10).allowed);
  // 2.5 s later, 2 requests' worth has refilled (2.5 rounded down).
  Decision d = gcra.check(tat, kStart + 2500ms, 3);
  CHECK_FALSE(d.allowed);
  CHECK(d.remaining == 2);
  CHECK(d.retry_after == 500ms);
  CHECK(d.reset_after == 7500ms);
  d = gcra.check(tat, kStart + 2500ms, 2);
  CHECK(d.allowed);
  CHECK(d.remaining == 0);
  CHECK(d.reset_after == 9500ms);
  d = gcra.check(tat, kStart + 20s);
  CHECK(d.allowed);
  CHECK(d.remaining == 9);
  CHECK(d.reset_after == 1s);
}

TEST_CASE("cost > 1 takes cost intervals, all or nothing") {
  const Gcra gcra = make_gcra(1, 1s, 9);  // limit 10
  std::int64_t tat = 0;
  Decision d = gcra.check(tat, kStart, 4);
  CHECK(d.allowed);
  CHECK(d.remaining == 6);
  CHECK(d.reset_after == 4s);
  d = gcra.check(tat, kStart, 7);
  CHECK_FALSE(d.allowed);
  CHECK(d.remaining == 6);  // nothing was counted
  CHECK(d.retry_after == 1s);
  CHECK(gcra.check(tat, kStart, 6).allowed);
  CHECK_FALSE(gcra.check(tat, kStart, 1).allowed);
  // A full-limit request needs the bucket completely refilled.
  d = gcra.check(tat, kStart + 1s, 10);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 9s);
  CHECK(gcra.check(tat, kStart + 10s, 10).allowed);
}

TEST_CASE("a cost of 0 or above the limit is out of range and never counted") {
  const Gcra gcra = make_gcra(1, 1s, 2);  // limit 3
  std::int64_t tat = 0;
  CHECK(gcra.check(tat, kStart).allowed);
  const std::int64_t before = tat;
  for (std::uint32_t cost : {0u, 4u, 1000u, std::numeric_limits<std::uint32_t>::max()}) {
    CAPTURE(cost);
    const Decision d = gcra.check(tat, kStart, cost);
    CHECK_FALSE(d.allowed);
    CHECK(d.cost_out_of_range);
    CHECK(d.retry_after == Duration::max());
    CHECK(d.remaining == 2);
    CHECK(d.reset_after == 1s);
    CHECK(tat == before);
  }
  CHECK_FALSE(gcra.check(tat, kStart, 3).cost_out_of_range);
}

TEST_CASE("remaining is floor((tau + T - debt) / T) exactly, for awkward intervals too") {
  const std::int64_t max = Gcra::kMaxRefillTime.count();
  for (std::int64_t interval :
       {std::int64_t{1}, std::int64_t{2}, std::int64_t{3}, std::int64_t{7},
        std::int64_t{999'999'937}, (std::int64_t{1} << 31) - 1, (std::int64_t{1} << 40) + 1,
        (std::int64_t{1} << 61) - 1, std::int64_t{1} << 62}) {
    const std::int64_t burst = std::min<std::int64_t>(max / interval - 1, 1'000'000);
    const Gcra gcra = make_gcra(1, Duration(interval), burst);
    const std::int64_t window = interval * (burst + 1);
    std::vector<std::int64_t> debts = {0, 1, window - 1, window};
    for (std::int64_t k : {std::int64_t{1}, std::int64_t{2}, burst / 2, burst}) {
      if (k > burst + 1) continue;
      for (std::int64_t delta : {-1, 0, 1}) {
        const std::int64_t debt = k * interval + delta;
        if (debt >= 0 && debt <= window) debts.push_back(debt);
      }
    }
    for (std::int64_t debt : debts) {
      CAPTURE(interval);
      CAPTURE(debt);
      std::int64_t unused = 0;
      const std::int64_t tat = kStart.time_since_epoch().count() + debt;
      const Decision d = gcra.decide(tat, kStart, 0, unused);  // cost 0: reports only
      CHECK(d.remaining == (window - debt) / interval);
    }
  }
}

TEST_CASE("decide() is pure and reports the TAT to store") {
  const Gcra gcra = make_gcra(1, 1s, 1);
  std::int64_t next = 0;
  const Decision d = gcra.decide(0, kStart, 1, next);
  CHECK(d.allowed);
  CHECK(next == (kStart + 1s).time_since_epoch().count());
  std::int64_t unchanged = 0;
  const std::int64_t full = (kStart + 2s).time_since_epoch().count();
  CHECK_FALSE(gcra.decide(full, kStart, 1, unchanged).allowed);
  CHECK(unchanged == full);
}

TEST_CASE("a clock that goes backwards errs on the strict side") {
  const Gcra gcra = make_gcra(1, 1s, 1);
  std::int64_t tat = 0;
  CHECK(gcra.check(tat, kStart).allowed);
  const Decision d = gcra.check(tat, kStart - 1h);
  CHECK_FALSE(d.allowed);
  CHECK(d.remaining == 0);
  CHECK(d.reset_after == 1h + 1s);
}

TEST_CASE("extreme but valid parameters and clock values stay defined") {
  const Gcra slow = make_gcra(1, Gcra::kMaxRefillTime, 0);
  std::int64_t tat = 0;
  CHECK(slow.check(tat, TimePoint(Duration(0))).allowed);
  Decision d = slow.check(tat, TimePoint(Duration(0)));
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == Gcra::kMaxRefillTime);

  // The next TAT lies beyond the int64 range: it wraps, defined and harmless.
  const TimePoint latest(Duration(std::numeric_limits<std::int64_t>::max() - 5));
  std::int64_t latest_tat = 0;
  CHECK(slow.check(latest_tat, latest).allowed);
  d = slow.check(latest_tat, latest);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == Gcra::kMaxRefillTime);

  const TimePoint late(Duration::max() - Gcra::kMaxRefillTime);
  std::int64_t late_tat = 0;
  CHECK(slow.check(late_tat, late).allowed);
  d = slow.check(late_tat, late + Gcra::kMaxRefillTime - Duration(1));
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 1ns);
  CHECK(slow.check(late_tat, late + Gcra::kMaxRefillTime).allowed);
}

// ---------------------------------------------------------------------------
// Against the reference model

TEST_CASE("Gcra matches the I.371 reference over long random sequences") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    std::vector<std::int64_t> tats(3, 0);
    Gcra gcra = make_gcra(1, 1s, 0);
    bool configured = false;
    compare_with_reference(
        seed, kSteps, 3, [&](const GcraConfig& config, int key, TimePoint now, std::uint32_t cost) {
          if (!configured) {
            gcra = make_gcra(config.rate, config.period, config.burst);
            configured = true;
          }
          return gcra.check(tats[static_cast<std::size_t>(key)], now, cost);
        });
  }
}

TEST_CASE("KeyedLimiter matches the reference for every key") {
  for (std::uint64_t seed = 11; seed <= 15; ++seed) {
    std::unique_ptr<KeyedLimiter> limiter;
    compare_with_reference(
        seed, kSteps, 16,
        [&](const GcraConfig& config, int key, TimePoint now, std::uint32_t cost) {
          if (!limiter) {
            limiter = std::make_unique<KeyedLimiter>(make_keyed(config, 64));
          }
          return limiter->check("client-" + std::to_string(key), now, cost);
        });
    REQUIRE(limiter);
    CHECK(limiter->evictions() == 0);
  }
}

TEST_CASE("ConcurrentKeyedLimiter used from one thread matches the reference") {
  for (std::uint64_t seed = 21; seed <= 25; ++seed) {
    std::unique_ptr<ConcurrentKeyedLimiter> limiter;
    compare_with_reference(
        seed, kSteps, 16,
        [&](const GcraConfig& config, int key, TimePoint now, std::uint32_t cost) {
          if (!limiter) {
            limiter = std::make_unique<ConcurrentKeyedLimiter>(make_concurrent(config, 64));
          }
          return limiter->check("client-" + std::to_string(key), now, cost);
        });
    REQUIRE(limiter);
    CHECK(limiter->evictions() == 0);
  }
}

// ---------------------------------------------------------------------------
// The keyed table

TEST_CASE("keys are limited independently") {
  KeyedLimiter limiter = make_keyed({1, 1s, 1}, 16);
  CHECK(limiter.check("a", kStart).allowed);
  CHECK(limiter.check("a", kStart).allowed);
  CHECK_FALSE(limiter.check("a", kStart).allowed);
  CHECK(limiter.check("b", kStart).allowed);
  CHECK(limiter.check("", kStart).allowed);
  CHECK(limiter.size() == 3);
}

TEST_CASE("size, capacity and memory: two 16-byte slots per key") {
  KeyedLimiter limiter = make_keyed({1, 1s, 1}, 1000);
  CHECK(limiter.capacity() == 2000);
  CHECK(limiter.memory_bytes() >= 2000 * 16);
  CHECK(limiter.memory_bytes() <= 1000 * 40);
  CHECK(limiter.size() == 0);
  for (int i = 0; i < 1000; ++i)
    CHECK(limiter.check("k" + std::to_string(i), kStart).allowed);
  CHECK(limiter.size() == 1000);
  CHECK(limiter.evictions() == 0);
}

TEST_CASE("an out-of-range cost does not add the key but reports its state") {
  KeyedLimiter limiter = make_keyed({1, 1s, 2}, 16);
  Decision d = limiter.check("new", kStart, 0);
  CHECK(d.cost_out_of_range);
  CHECK(d.remaining == 3);
  CHECK(limiter.size() == 0);
  CHECK(limiter.check("known", kStart, 2).allowed);
  d = limiter.check("known", kStart, 4);
  CHECK(d.cost_out_of_range);
  CHECK(d.remaining == 1);
  CHECK(limiter.size() == 1);
}

TEST_CASE("refilled entries are reclaimed before anything is evicted") {
  // max_keys 2 gives 4 slots, all in one probe window.
  KeyedLimiter limiter = make_keyed({1, 1s, 9}, 2);
  REQUIRE(limiter.capacity() == 4);
  for (const char* key : {"a", "b", "c", "d"})
    CHECK(limiter.check(key, kStart).allowed);
  CHECK(limiter.size() == 4);
  // One second later every bucket has refilled: new keys reuse the slots.
  for (const char* key : {"e", "f", "g", "h"}) {
    const Decision d = limiter.check(key, kStart + 1s, 3);
    CHECK(d.allowed);
    CHECK(d.remaining == 7);
  }
  CHECK(limiter.size() == 4);
  CHECK(limiter.evictions() == 0);
  // "a" was forgotten while refilled, which changes nothing for it.
  const Decision d = limiter.check("a", kStart + 4s);
  CHECK(d.allowed);
  CHECK(d.remaining == 9);
  CHECK(limiter.evictions() == 0);
}

TEST_CASE("when no entry has refilled, the one closest to refilled is evicted") {
  KeyedLimiter limiter = make_keyed({1, 1s, 9}, 2);  // 4 slots, one window
  CHECK(limiter.check("a", kStart, 1).allowed);      // refilled at +1 s
  CHECK(limiter.check("b", kStart, 2).allowed);      // +2 s
  CHECK(limiter.check("c", kStart, 3).allowed);      // +3 s
  CHECK(limiter.check("d", kStart, 4).allowed);      // +4 s
  const TimePoint now = kStart + 1500ms;
  // "a" has refilled: taking its slot is no eviction.
  CHECK(limiter.check("e", now).allowed);
  CHECK(limiter.evictions() == 0);
  // Now nothing has refilled; "b" (0.5 s from refilled) is the cheapest to drop.
  CHECK(limiter.check("f", now).allowed);
  CHECK(limiter.evictions() == 1);
  // "c" and "d" kept their debt ...
  Decision d = limiter.check("c", now);
  CHECK(d.remaining == 7);  // 1.5 s + 1 s of debt out of 10 s
  d = limiter.check("d", now);
  CHECK(d.remaining == 6);
  CHECK(limiter.evictions() == 1);
  // ... while "b" comes back with a full allowance (and evicts e or f, 1 s of debt each).
  d = limiter.check("b", now);
  CHECK(d.allowed);
  CHECK(d.remaining == 9);
  CHECK(limiter.evictions() == 2);
  CHECK(limiter.size() == 4);
}

TEST_CASE("a flood of new keys cannot evict a key with more debt than the flood's own") {
  KeyedLimiter limiter = make_keyed({1, 1s, 9}, 2);    // 4 slots
  CHECK(limiter.check("victim", kStart, 10).allowed);  // 10 s of debt
  for (int i = 0; i < 1000; ++i) {
    CHECK(limiter.check("flood-" + std::to_string(i), kStart + Duration(i)).allowed);
  }
  CHECK(limiter.evictions() > 0);
  CHECK_FALSE(limiter.check("victim", kStart + 1ms).allowed);  // still limited
}

TEST_CASE("the key hash is seeded, never 0, and separates near-identical keys") {
  const portico::detail::KeyHasher one(1);
  const portico::detail::KeyHasher same(1);
  const portico::detail::KeyHasher other(2);
  CHECK(one("client") == same("client"));
  CHECK(one("client") != other("client"));
  std::set<std::uint64_t> seen;
  std::string base(40, 'x');
  std::size_t inserted = 0;
  for (std::size_t length = 0; length <= base.size(); ++length) {
    std::string key = base.substr(0, length);
    seen.insert(one(key));
    ++inserted;
    for (std::size_t pos = 0; pos < length; ++pos) {
      std::string changed = key;
      changed[pos] = 'y';
      seen.insert(one(changed));
      ++inserted;
    }
  }
  for (int i = 0; i < 50'000; ++i) {
    seen.insert(one("user-" + std::to_string(i)));
    ++inserted;
  }
  CHECK(seen.size() == inserted);
  CHECK(seen.count(0) == 0);
}

TEST_CASE("a random seed is drawn when none is given") {
  const portico::detail::KeyHasher a(0);
  const portico::detail::KeyHasher b(0);
  CHECK(a("client") != b("client"));
}

// ---------------------------------------------------------------------------
// Several threads

namespace {

// Runs `threads` threads in lock-step over `steps` simulated instants; at
// each instant every thread makes `per_step` checks of every key. Returns the
// number allowed per key.
std::vector<std::int64_t> run_lockstep(ConcurrentKeyedLimiter& limiter, int threads, int steps,
                                       int per_step, const std::vector<std::string>& keys,
                                       Duration step) {
  std::barrier sync(threads);
  std::vector<std::vector<std::int64_t>> allowed(static_cast<std::size_t>(threads),
                                                 std::vector<std::int64_t>(keys.size(), 0));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      auto& mine = allowed[static_cast<std::size_t>(t)];
      for (int s = 0; s < steps; ++s) {
        const TimePoint now = kStart + s * step;
        for (std::size_t k = 0; k < keys.size(); ++k) {
          // Threads walk the keys in different orders to mix the contention.
          const std::size_t index = (k + static_cast<std::size_t>(t) * 7) % keys.size();
          for (int r = 0; r < per_step; ++r) {
            if (limiter.check(keys[index], now).allowed) ++mine[index];
          }
        }
        sync.arrive_and_wait();
      }
    });
  }
  for (auto& thread : pool)
    thread.join();
  std::vector<std::int64_t> total(keys.size(), 0);
  for (const auto& mine : allowed) {
    for (std::size_t k = 0; k < keys.size(); ++k)
      total[k] += mine[k];
  }
  return total;
}

// What GCRA allows one key when `requests` arrive at each of `steps` instants.
std::int64_t gcra_allows(const GcraConfig& config, int steps, int requests, Duration step) {
  const Gcra gcra = make_gcra(config.rate, config.period, config.burst);
  std::int64_t tat = 0;
  std::int64_t allowed = 0;
  for (int s = 0; s < steps; ++s) {
    for (int r = 0; r < requests; ++r)
      allowed += gcra.check(tat, kStart + s * step).allowed;
  }
  return allowed;
}

}  // namespace

TEST_CASE("threads contending on one key are admitted exactly what GCRA permits") {
  const GcraConfig config{10, 1s, 5};  // T = 100 ms
  ConcurrentKeyedLimiter limiter = make_concurrent(config, 16);
  constexpr int kThreads = 4;
  constexpr int kSteps = 400;
  constexpr int kPerStep = 25;
  const auto allowed = run_lockstep(limiter, kThreads, kSteps, kPerStep, {"shared"}, 70ms);
  const std::int64_t expected = gcra_allows(config, kSteps, kThreads * kPerStep, 70ms);
  CHECK(expected > 6);  // the run does exercise denials and refills
  CHECK(expected < kThreads * kPerStep * kSteps);
  CHECK(allowed[0] == expected);
  CHECK(limiter.size() == 1);
}

TEST_CASE("threads sharing many keys: every key gets exactly its GCRA allowance") {
  const GcraConfig config{1, 1s, 2};
  ConcurrentKeyedLimiter limiter = make_concurrent(config, 64);
  std::vector<std::string> keys;
  for (int i = 0; i < 48; ++i)
    keys.push_back("tenant-" + std::to_string(i));
  constexpr int kThreads = 3;
  constexpr int kSteps = 120;
  const auto allowed = run_lockstep(limiter, kThreads, kSteps, 1, keys, 400ms);
  const std::int64_t expected = gcra_allows(config, kSteps, kThreads, 400ms);
  for (std::size_t k = 0; k < keys.size(); ++k) {
    CAPTURE(keys[k]);
    CHECK(allowed[k] == expected);
  }
  CHECK(limiter.size() == keys.size());
  CHECK(limiter.evictions() == 0);
}

TEST_CASE("threads churning through more keys than slots leave a consistent table") {
  ConcurrentKeyedLimiter limiter = make_concurrent({1, 1s, 1}, 8);  // 16 slots
  constexpr int kThreads = 4;
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&limiter, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < 4000; ++i) {
        const auto key = "k" + std::to_string(rng() % 200);
        (void)limiter.check(key, kStart + Duration(i) * 50'000'000LL, 1 + rng() % 2);
      }
    });
  }
  for (auto& thread : pool)
    thread.join();
  CHECK(limiter.size() <= limiter.capacity());
  CHECK(limiter.evictions() > 0);
  // Afterwards the table still behaves as GCRA for a key of its own.
  const TimePoint later = kStart + 1h;
  CHECK(limiter.check("after", later).allowed);
  CHECK(limiter.check("after", later).allowed);
  const Decision d = limiter.check("after", later);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 1s);
}

TEST_CASE("ConcurrentKeyedLimiter evicts the entry closest to refilled, like KeyedLimiter") {
  ConcurrentKeyedLimiter limiter = make_concurrent({1, 1s, 9}, 2);  // 4 slots
  CHECK(limiter.check("a", kStart, 1).allowed);
  CHECK(limiter.check("b", kStart, 2).allowed);
  CHECK(limiter.check("c", kStart, 3).allowed);
  CHECK(limiter.check("d", kStart, 4).allowed);
  const TimePoint now = kStart + 1500ms;
  CHECK(limiter.check("e", now).allowed);  // reclaims "a"
  CHECK(limiter.evictions() == 0);
  CHECK(limiter.check("f", now).allowed);  // evicts "b"
  CHECK(limiter.evictions() == 1);
  CHECK(limiter.check("c", now).remaining == 7);
  CHECK(limiter.check("d", now).remaining == 6);
  CHECK(limiter.check("f", now).remaining == 8);  // f starts fresh, not with b's debt
  CHECK(limiter.size() == 4);
  CHECK(limiter.capacity() == 4);
  CHECK(limiter.memory_bytes() >= 4 * 16);
}

// ---------------------------------------------------------------------------
// Fixed-window quotas

namespace {

using std::chrono::sys_days;
using namespace std::chrono;

FixedWindowQuota::WallTime wall(std::chrono::year_month_day date, Duration time_of_day = 0ns) {
  return FixedWindowQuota::WallTime(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      sys_days(date).time_since_epoch() + time_of_day));
}

}  // namespace

TEST_CASE("an hourly quota counts within the UTC hour and resets at its end") {
  FixedWindowQuota quota = make_quota(3, QuotaWindow::hour);
  const auto t = wall(2024y / March / 10, 14h + 20min);
  for (std::int64_t i = 0; i < 3; ++i) {
    const Decision d = quota.check("plan", t);
    CHECK(d.allowed);
    CHECK(d.limit == 3);
    CHECK(d.remaining == 2 - i);
    CHECK(d.reset_after == 40min);
  }
  Decision d = quota.check("plan", t + 39min);
  CHECK_FALSE(d.allowed);
  CHECK(d.remaining == 0);
  CHECK(d.retry_after == 1min);
  CHECK(d.reset_after == 1min);
  d = quota.check("plan", t + 40min);
  CHECK(d.allowed);
  CHECK(d.remaining == 2);
  CHECK(d.reset_after == 1h);
}

TEST_CASE("a daily quota resets at UTC midnight") {
  FixedWindowQuota quota = make_quota(2, QuotaWindow::day);
  const auto late = wall(2023y / December / 31, 23h + 59min + 59s);
  CHECK(quota.check("k", late).allowed);
  CHECK(quota.check("k", late).allowed);
  const Decision d = quota.check("k", late);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 1s);
  CHECK(quota.check("k", wall(2024y / January / 1)).allowed);
}

TEST_CASE("a monthly quota follows calendar months, including leap years") {
  FixedWindowQuota quota = make_quota(10, QuotaWindow::month);
  CHECK(quota.check("k", wall(2024y / January / 1), 4).allowed);
  Decision d = quota.check("k", wall(2024y / January / 31, 23h + 59min + 59s + 500ms), 5);
  CHECK(d.allowed);
  CHECK(d.remaining == 1);
  CHECK(d.reset_after == 500ms);
  d = quota.check("k", wall(2024y / February / 1), 2);
  CHECK(d.allowed);
  CHECK(d.remaining == 8);
  CHECK(d.reset_after == days(29));  // 2024 is a leap year
  d = quota.check("k", wall(2024y / February / 29, 12h), 9);
  CHECK_FALSE(d.allowed);
  CHECK(d.reset_after == 12h);
  CHECK(d.retry_after == 12h);
  CHECK(quota.check("k", wall(2024y / March / 1), 9).allowed);

  FixedWindowQuota common = make_quota(10, QuotaWindow::month);
  d = common.check("k", wall(2023y / February / 28, 12h));
  CHECK(d.reset_after == 12h);  // 2023 is not: March 1 follows February 28
  d = common.check("k", wall(2023y / December / 15));
  CHECK(d.remaining == 9);  // a new month, counted from zero
  CHECK(d.reset_after == days(17));
  d = common.check("k", wall(1900y / February / 28));  // not a leap year either
  CHECK(d.reset_after == days(1));
}

TEST_CASE("quota costs: > 1 counts several, 0 and > limit are out of range") {
  FixedWindowQuota quota = make_quota(5, QuotaWindow::day);
  const auto t = wall(2024y / May / 5, 12h);
  CHECK(quota.check("k", t, 3).remaining == 2);
  Decision d = quota.check("k", t, 3);
  CHECK_FALSE(d.allowed);
  CHECK(d.remaining == 2);
  CHECK(d.retry_after == 12h);
  for (std::uint32_t cost : {0u, 6u}) {
    d = quota.check("k", t, cost);
    CHECK(d.cost_out_of_range);
    CHECK(d.retry_after == Duration::max());
    CHECK(d.remaining == 2);
  }
  CHECK(quota.check("other", t, 0).remaining == 5);
  CHECK(quota.size() == 1);
  CHECK(quota.check("k", t, 2).allowed);
}

TEST_CASE("quota entries from past windows are reclaimed; otherwise the smallest count goes") {
  FixedWindowQuota quota = make_quota(100, QuotaWindow::hour, 1);  // 2 slots
  REQUIRE(quota.capacity() == 2);
  const auto t = wall(2024y / June / 1, 10h);
  CHECK(quota.check("a", t, 1).allowed);
  CHECK(quota.check("b", t, 30).allowed);
  // Next hour: both entries belong to a past window.
  CHECK(quota.check("c", t + 1h, 5).allowed);
  CHECK(quota.evictions() == 0);
  CHECK(quota.check("d", t + 1h, 50).allowed);
  CHECK(quota.evictions() == 0);
  CHECK(quota.size() == 2);
  // Same hour, table full: "c" (5 used) goes before "d" (50 used).
  CHECK(quota.check("e", t + 1h, 1).allowed);
  CHECK(quota.evictions() == 1);
  CHECK(quota.check("d", t + 1h).remaining == 49);
  CHECK(quota.memory_bytes() >= 2 * 16);
}

TEST_CASE("a wall clock stepping back to an earlier window restarts that window's count") {
  FixedWindowQuota quota = make_quota(10, QuotaWindow::day);
  CHECK(quota.check("k", wall(2024y / April / 2, 1h), 4).remaining == 6);
  Decision d = quota.check("k", wall(2024y / April / 1, 23h), 1);  // stepped back a day
  CHECK(d.allowed);
  CHECK(d.remaining == 9);
  CHECK(d.reset_after == 1h);
  d = quota.check("k", wall(2024y / April / 2, 2h), 1);
  CHECK(d.remaining == 9);  // the April 2 count was replaced, as documented
  CHECK(d.reset_after == 22h);
}

// ---------------------------------------------------------------------------
// Fixed-window quotas shared by several threads

TEST_CASE("ConcurrentFixedWindowQuota from one thread decides as FixedWindowQuota") {
  // Every window kind, costs in and out of range, a small table (reclaims
  // and evictions) and a run across several window boundaries.
  for (const QuotaWindow window : {QuotaWindow::hour, QuotaWindow::day, QuotaWindow::month}) {
    CAPTURE(portico::quota_window_name(window));
    FixedWindowQuota single = make_quota(7, window, 4);
    ConcurrentFixedWindowQuota shared = make_shared_quota(7, window, 4);
    std::mt19937 rng(5);
    auto t = wall(2024y / January / 30, 22h);
    for (int i = 0; i < 3000; ++i) {
      t += std::chrono::seconds(rng() % 400);
      const std::string key = "k" + std::to_string(rng() % 12);
      const auto cost = static_cast<std::uint32_t>(rng() % 9);  // 0 and 8 are out of range
      const Decision a = single.check(key, t, cost);
      const Decision b = shared.check(key, t, cost);
      CAPTURE(i);
      REQUIRE(a.allowed == b.allowed);
      REQUIRE(a.cost_out_of_range == b.cost_out_of_range);
      REQUIRE(a.limit == b.limit);
      REQUIRE(a.remaining == b.remaining);
      REQUIRE(a.reset_after == b.reset_after);
      REQUIRE(a.retry_after == b.retry_after);
    }
    CHECK(shared.size() == single.size());
    CHECK(shared.evictions() == single.evictions());
    CHECK(shared.evictions() > 0);
  }
}

TEST_CASE("ConcurrentFixedWindowQuota: reclaims past windows, evicts the smallest count") {
  ConcurrentFixedWindowQuota quota = make_shared_quota(100, QuotaWindow::hour, 1);  // 2 slots
  REQUIRE(quota.capacity() == 2);
  const auto t = wall(2024y / June / 1, 10h);
  CHECK(quota.check("a", t, 1).allowed);
  CHECK(quota.check("b", t, 30).allowed);
  CHECK(quota.check("c", t + 1h, 5).allowed);
  CHECK(quota.check("d", t + 1h, 50).allowed);
  CHECK(quota.evictions() == 0);
  CHECK(quota.size() == 2);
  CHECK(quota.check("e", t + 1h, 1).allowed);  // "c" (5 used) goes, not "d" (50)
  CHECK(quota.evictions() == 1);
  CHECK(quota.check("d", t + 1h).remaining == 49);
  CHECK(quota.memory_bytes() >= 2 * 16);
}

TEST_CASE("ConcurrentFixedWindowQuota: a reading one window behind counts in the later window") {
  ConcurrentFixedWindowQuota quota = make_shared_quota(3, QuotaWindow::day);
  const auto midnight = wall(2024y / May / 2);
  CHECK(quota.check("k", midnight - 1s).remaining == 2);  // May 1
  CHECK(quota.check("k", midnight + 1s).remaining == 2);  // May 2 restarts
  // A thread that read the clock just before midnight counts in May 2, the
  // entry's window, and is told when May 2 ends.
  Decision d = quota.check("k", midnight - 1s);
  CHECK(d.allowed);
  CHECK(d.remaining == 1);
  CHECK(d.reset_after == 24h + 1s);
  CHECK(quota.check("k", midnight + 2s).remaining == 0);
  d = quota.check("k", midnight - 2s);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 24h + 2s);
  // Two days back is a wall clock that stepped back: another window.
  d = quota.check("k", midnight - 25h);
  CHECK(d.allowed);
  CHECK(d.remaining == 2);
  CHECK(d.reset_after == 1h);
}

namespace {

// `threads` threads each make `checks` requests of cost 1 for every key at
// the wall times `time_of(thread, i)`, all starting together. Returns the
// number allowed per key.
template <class TimeOf>
std::vector<std::int64_t> hammer(ConcurrentFixedWindowQuota& quota, int threads, int checks,
                                 const std::vector<std::string>& keys, TimeOf time_of) {
  std::barrier start(threads);
  std::vector<std::vector<std::int64_t>> allowed(static_cast<std::size_t>(threads),
                                                 std::vector<std::int64_t>(keys.size(), 0));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      auto& mine = allowed[static_cast<std::size_t>(t)];
      start.arrive_and_wait();
      for (int i = 0; i < checks; ++i) {
        for (std::size_t k = 0; k < keys.size(); ++k) {
          const std::size_t index = (k + static_cast<std::size_t>(t) * 5) % keys.size();
          if (quota.check(keys[index], time_of(t, i)).allowed) ++mine[index];
        }
      }
    });
  }
  for (auto& thread : pool)
    thread.join();
  std::vector<std::int64_t> total(keys.size(), 0);
  for (const auto& mine : allowed) {
    for (std::size_t k = 0; k < keys.size(); ++k)
      total[k] += mine[k];
  }
  return total;
}

}  // namespace

TEST_CASE("threads hammering one quota key are allowed exactly the quota per window") {
  // Long enough for the threads to overlap for most of the run.
  constexpr std::int64_t kQuota = 500000;
  constexpr int kThreads = 4;
  constexpr int kChecks = 200000;  // 800,000 requests against a quota of 500,000
  ConcurrentFixedWindowQuota quota = make_shared_quota(kQuota, QuotaWindow::day, 16);
  const auto noon = wall(2024y / July / 4, 12h);
  const auto allowed = hammer(quota, kThreads, kChecks, {"tenant"},
                              [noon](int, int i) { return noon + std::chrono::milliseconds(i); });
  CHECK(allowed[0] == kQuota);
  CHECK(quota.size() == 1);
  // The next day the count restarts, again exactly the quota.
  const auto next = hammer(quota, kThreads, kChecks, {"tenant"}, [noon](int, int i) {
    return noon + 24h + std::chrono::milliseconds(i);
  });
  CHECK(next[0] == kQuota);
}

TEST_CASE("threads sharing many quota keys: every key gets exactly its quota") {
  constexpr std::int64_t kQuota = 37;
  ConcurrentFixedWindowQuota quota = make_shared_quota(kQuota, QuotaWindow::hour, 64);
  std::vector<std::string> keys;
  for (int i = 0; i < 48; ++i)
    keys.push_back("tenant-" + std::to_string(i));
  const auto t0 = wall(2024y / July / 4, 9h);
  const auto allowed =
      hammer(quota, 3, 40, keys, [t0](int, int i) { return t0 + std::chrono::seconds(i); });
  for (std::size_t k = 0; k < keys.size(); ++k) {
    CAPTURE(keys[k]);
    CHECK(allowed[k] == kQuota);
  }
  CHECK(quota.size() == keys.size());
  CHECK(quota.evictions() == 0);
}

TEST_CASE("threads straddling a window boundary cannot restart the count") {
  // Each thread's clock flips between 23:59:59 and 00:00:00 on every
  // request, as readings of threads around midnight interleave. A store that
  // restarted the count whenever the window differed would let most of the
  // 12,000 requests through; each window may only admit its quota.
  constexpr std::int64_t kQuota = 500;
  ConcurrentFixedWindowQuota quota = make_shared_quota(kQuota, QuotaWindow::day, 16);
  const auto midnight = wall(2024y / December / 31);
  const auto allowed = hammer(quota, 4, 3000, {"tenant"}, [midnight](int t, int i) {
    return (t + i) % 2 == 0 ? midnight - 1s : midnight;
  });
  CHECK(allowed[0] >= kQuota);
  CHECK(allowed[0] <= 2 * kQuota);
  // The new day's count holds whatever the old day left: full, now.
  CHECK_FALSE(quota.check("tenant", midnight + 1s).allowed);
  CHECK_FALSE(quota.check("tenant", midnight - 1s).allowed);
  CHECK(quota.check("tenant", midnight + 24h).allowed);
}

TEST_CASE("threads churning quota keys through a small table leave it consistent") {
  ConcurrentFixedWindowQuota quota = make_shared_quota(3, QuotaWindow::hour, 8);  // 16 slots
  std::vector<std::thread> pool;
  const auto t0 = wall(2024y / July / 4, 9h);
  for (int t = 0; t < 4; ++t) {
    pool.emplace_back([&quota, t, t0] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < 4000; ++i) {
        const auto key = "k" + std::to_string(rng() % 200);
        (void)quota.check(key, t0 + std::chrono::seconds(i), 1 + rng() % 2);
      }
    });
  }
  for (auto& thread : pool)
    thread.join();
  CHECK(quota.size() <= quota.capacity());
  CHECK(quota.evictions() > 0);
  const auto later = t0 + 5h;
  for (int i = 0; i < 3; ++i)
    CHECK(quota.check("after", later).allowed);
  const Decision d = quota.check("after", later);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 1h);
}

// ---------------------------------------------------------------------------
// The request path

TEST_CASE("checks never allocate: new keys, reclaims, evictions and odd costs included") {
  std::vector<std::string> keys;
  for (int i = 0; i < 64; ++i)
    keys.push_back("client-" + std::to_string(i));
  // 8 keys' worth of slots for 64 keys: the table fills, reclaims and evicts.
  KeyedLimiter keyed = make_keyed({1, 1s, 2}, 8);
  ConcurrentKeyedLimiter concurrent = make_concurrent({1, 1s, 2}, 8);
  FixedWindowQuota quota = make_quota(5, QuotaWindow::hour, 8);
  ConcurrentFixedWindowQuota shared_quota = make_shared_quota(5, QuotaWindow::hour, 8);
  const auto wall_start = FixedWindowQuota::WallTime(std::chrono::hours(480'000));

  const std::uint64_t before = portico::test::allocation_count();
  std::int64_t allowed = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::string_view key = keys[static_cast<std::size_t>(i * 7 % 64)];
    const auto cost = static_cast<std::uint32_t>(i % 5);  // 0 and 4 are out of range for GCRA
    const Duration elapsed = i * 50ms;
    allowed += keyed.check(key, kStart + elapsed, cost).allowed;
    allowed += concurrent.check(key, kStart + elapsed, cost).allowed;
    allowed += quota.check(key, wall_start + elapsed, cost).allowed;
    allowed += shared_quota.check(key, wall_start + elapsed, cost).allowed;
  }
  CHECK(portico::test::allocation_count() - before == 0);
  CHECK(allowed > 0);
  CHECK(keyed.evictions() > 0);
  CHECK(concurrent.evictions() > 0);
  CHECK(quota.evictions() > 0);
  CHECK(shared_quota.evictions() > 0);
}

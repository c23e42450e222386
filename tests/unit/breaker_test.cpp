// Circuit breaker: every transition and its boundaries, the backoff, the
// concurrency thresholds, permits outliving a state change, the listener,
// and every invalid configuration. All in simulated time.
#include "portico/breaker.hpp"

#include <doctest/doctest.h>

#include "../support/alloc_counter.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using portico::BreakerAdmission;
using portico::BreakerConfig;
using portico::BreakerPermit;
using portico::BreakerState;
using portico::CircuitBreaker;
using portico::Duration;
using portico::ErrorKind;
using portico::TimePoint;

// The per-request state stores permits by value and the C ABI copies them.
static_assert(std::is_trivially_copyable_v<BreakerPermit>);

namespace {

// Aligned to whole seconds so the 1 s buckets of a 10 s window start here.
const TimePoint kT0 = TimePoint(std::chrono::hours(1000));

// A breaker driven by the consecutive-failure trigger only, with round
// numbers that make the backoff easy to follow.
BreakerConfig count_config(std::uint32_t failures) {
  BreakerConfig c;
  c.consecutive_failures = failures;
  c.failure_ratio = 0.0;
  c.open_duration = 5s;
  c.open_duration_multiplier = 2.0;
  c.max_open_duration = 60s;
  c.backoff_reset_after = 60s;
  c.half_open_max_probes = 1;
  c.half_open_successes_to_close = 1;
  return c;
}

// A breaker driven by the failure ratio only.
BreakerConfig ratio_config(double ratio, std::uint32_t min_requests) {
  BreakerConfig c = count_config(0);
  c.failure_ratio = ratio;
  c.min_requests = min_requests;
  c.window = 10s;
  return c;
}

CircuitBreaker make(const BreakerConfig& config) {
  auto created = CircuitBreaker::create(config);
  REQUIRE(created.ok());
  return std::move(created).value();
}

void fail(CircuitBreaker& breaker, TimePoint now, int times = 1) {
  for (int i = 0; i < times; ++i) {
    const BreakerPermit permit = breaker.try_acquire(now);
    REQUIRE(permit.admitted());
    breaker.on_failure(permit, now);
  }
}

void succeed(CircuitBreaker& breaker, TimePoint now, int times = 1) {
  for (int i = 0; i < times; ++i) {
    const BreakerPermit permit = breaker.try_acquire(now);
    REQUIRE(permit.admitted());
    breaker.on_success(permit, now);
  }
}

struct Transition {
  BreakerState from;
  BreakerState to;
  TimePoint now;
  bool operator==(const Transition&) const = default;
};

struct Recorder {
  std::vector<Transition> seen;
  static void listen(void* user, BreakerState from, BreakerState to, TimePoint now) {
    static_cast<Recorder*>(user)->seen.push_back({from, to, now});
  }
  void attach(BreakerConfig& config) {
    config.on_state_change = &Recorder::listen;
    config.on_state_change_user = this;
  }
};

// Trips a count_config(1) breaker at `now` and returns how long it stays open.
Duration trip_and_measure(CircuitBreaker& breaker, TimePoint now) {
  fail(breaker, now);
  REQUIRE(breaker.state(now) == BreakerState::open);
  return breaker.retry_after(now);
}

// Takes an open breaker whose period ends at `open_until` through one
// successful probe back to closed.
void recover(CircuitBreaker& breaker, TimePoint open_until) {
  REQUIRE(breaker.state(open_until) == BreakerState::half_open);
  succeed(breaker, open_until);
  REQUIRE(breaker.state(open_until) == BreakerState::closed);
}

}  // namespace

TEST_CASE("a new breaker with the default config is closed and admits requests") {
  CircuitBreaker breaker = make(BreakerConfig{});
  CHECK(breaker.state(kT0) == BreakerState::closed);
  const BreakerPermit permit = breaker.try_acquire(kT0);
  CHECK(permit.admitted());
  CHECK(permit.admission() == BreakerAdmission::admitted);
  CHECK(breaker.in_flight() == 1);
  breaker.on_success(permit, kT0);
  CHECK(breaker.in_flight() == 0);
  CHECK(breaker.retry_after(kT0) == Duration::zero());
}

TEST_CASE("consecutive failures trip exactly at N, not at N-1") {
  CircuitBreaker breaker = make(count_config(3));
  fail(breaker, kT0, 2);
  CHECK(breaker.state(kT0) == BreakerState::closed);
  fail(breaker, kT0);
  CHECK(breaker.state(kT0) == BreakerState::open);
  CHECK(breaker.consecutive_trips() == 1);
  CHECK(breaker.counters().trips == 1);
}

TEST_CASE("a success in between restarts the consecutive count") {
  CircuitBreaker breaker = make(count_config(3));
  fail(breaker, kT0, 2);
  succeed(breaker, kT0);
  fail(breaker, kT0, 2);
  CHECK(breaker.state(kT0) == BreakerState::closed);
  fail(breaker, kT0);
  CHECK(breaker.state(kT0) == BreakerState::open);
}

TEST_CASE("a cancel neither resets nor advances the consecutive count") {
  CircuitBreaker breaker = make(count_config(2));
  fail(breaker, kT0);
  const BreakerPermit cancelled = breaker.try_acquire(kT0);
  REQUIRE(cancelled.admitted());
  breaker.on_cancel(cancelled);
  CHECK(breaker.state(kT0) == BreakerState::closed);
  fail(breaker, kT0);
  CHECK(breaker.state(kT0) == BreakerState::open);
  CHECK(breaker.counters().cancels == 1);
}

TEST_CASE("an open breaker rejects with rejected_open and reports the time left") {
  CircuitBreaker breaker = make(count_config(1));
  fail(breaker, kT0);
  const BreakerPermit rejected = breaker.try_acquire(kT0 + 1s);
  CHECK_FALSE(rejected.admitted());
  CHECK_FALSE(static_cast<bool>(rejected));
  CHECK(rejected.admission() == BreakerAdmission::rejected_open);
  CHECK(breaker.counters().rejected_open == 1);
  CHECK(breaker.retry_after(kT0) == 5s);
  CHECK(breaker.retry_after(kT0 + 2s) == 3s);
  CHECK(breaker.retry_after(kT0 + 5s) == Duration::zero());
}

TEST_CASE("open turns half-open exactly at the end of the open period, not 1 ns before") {
  CircuitBreaker breaker = make(count_config(1));
  fail(breaker, kT0);
  CHECK(breaker.state(kT0 + 5s - 1ns) == BreakerState::open);
  CHECK(breaker.try_acquire(kT0 + 5s - 1ns).admission() == BreakerAdmission::rejected_open);
  CHECK(breaker.state(kT0 + 5s) == BreakerState::half_open);
}

TEST_CASE("try_acquire alone moves open to half-open and admits a probe") {
  Recorder recorder;
  BreakerConfig config = count_config(1);
  recorder.attach(config);
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  const BreakerPermit probe = breaker.try_acquire(kT0 + 7s);
  CHECK(probe.admitted());
  REQUIRE(recorder.seen.size() == 2);
  CHECK(recorder.seen[1] == Transition{BreakerState::open, BreakerState::half_open, kT0 + 7s});
}

TEST_CASE("half-open admits exactly half_open_max_probes at once") {
  BreakerConfig config = count_config(1);
  config.half_open_max_probes = 3;
  config.half_open_successes_to_close = 3;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  const TimePoint t = kT0 + 5s;
  std::vector<BreakerPermit> probes;
  for (int i = 0; i < 3; ++i) {
    probes.push_back(breaker.try_acquire(t));
    CHECK(probes.back().admitted());
  }
  const BreakerPermit fourth = breaker.try_acquire(t);
  CHECK(fourth.admission() == BreakerAdmission::rejected_half_open_full);
  CHECK(breaker.counters().rejected_half_open_full == 1);

  SUBCASE("a cancelled probe frees its slot and counts neither way") {
    breaker.on_cancel(probes[0]);
    CHECK(breaker.state(t) == BreakerState::half_open);
    CHECK(breaker.try_acquire(t).admitted());
    CHECK(breaker.try_acquire(t).admission() == BreakerAdmission::rejected_half_open_full);
  }
  SUBCASE("a finished probe frees its slot") {
    breaker.on_success(probes[0], t);
    CHECK(breaker.state(t) == BreakerState::half_open);  // 1 of 3 successes
    CHECK(breaker.try_acquire(t).admitted());
  }
}

TEST_CASE("half-open closes after M probe successes, probing in rounds") {
  BreakerConfig config = count_config(1);
  config.half_open_max_probes = 1;
  config.half_open_successes_to_close = 3;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  const TimePoint t = kT0 + 5s;
  succeed(breaker, t, 2);
  CHECK(breaker.state(t) == BreakerState::half_open);
  succeed(breaker, t);
  CHECK(breaker.state(t) == BreakerState::closed);
  CHECK(breaker.try_acquire(t).admitted());
}

TEST_CASE("a failed probe re-opens with the grown open period") {
  BreakerConfig config = count_config(1);
  config.half_open_successes_to_close = 2;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  const TimePoint probe_time = kT0 + 5s;
  succeed(breaker, probe_time);  // one success does not protect against a later failure
  fail(breaker, probe_time);
  CHECK(breaker.state(probe_time) == BreakerState::open);
  CHECK(breaker.consecutive_trips() == 2);
  CHECK(breaker.retry_after(probe_time) == 10s);
  CHECK(breaker.state(probe_time + 10s - 1ns) == BreakerState::open);
  CHECK(breaker.state(probe_time + 10s) == BreakerState::half_open);
}

TEST_CASE("the open period grows by the multiplier and stops at the cap") {
  BreakerConfig config = count_config(1);
  config.open_duration = 1s;
  config.open_duration_multiplier = 3.0;
  config.max_open_duration = 10s;
  CircuitBreaker breaker = make(config);
  const std::vector<Duration> expected = {1s, 3s, 9s, 10s, 10s};
  TimePoint t = kT0;
  fail(breaker, t);
  for (std::size_t k = 0; k < expected.size(); ++k) {
    CAPTURE(k);
    CHECK(breaker.retry_after(t) == expected[k]);
    CHECK(breaker.consecutive_trips() == k + 1);
    t += breaker.retry_after(t);
    fail(breaker, t);  // the probe fails: the next trip
  }
}

TEST_CASE("a fractional multiplier grows the open period in nanoseconds") {
  BreakerConfig config = count_config(1);
  config.open_duration = 1s;
  config.open_duration_multiplier = 1.5;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  CHECK(breaker.retry_after(kT0) == 1s);
  fail(breaker, kT0 + 1s);
  CHECK(breaker.retry_after(kT0 + 1s) == 1500ms);
  fail(breaker, kT0 + 2500ms);
  CHECK(breaker.retry_after(kT0 + 2500ms) == 2250ms);
}

TEST_CASE("a multiplier of 1 keeps the open period constant") {
  BreakerConfig config = count_config(1);
  config.open_duration_multiplier = 1.0;
  config.max_open_duration = config.open_duration;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  fail(breaker, kT0 + 5s);
  fail(breaker, kT0 + 10s);
  CHECK(breaker.consecutive_trips() == 3);
  CHECK(breaker.retry_after(kT0 + 10s) == 5s);
}

TEST_CASE("the trip count resets only after staying closed for backoff_reset_after") {
  CircuitBreaker breaker = make(count_config(1));  // backoff_reset_after = 60 s
  CHECK(trip_and_measure(breaker, kT0) == 5s);
  recover(breaker, kT0 + 5s);
  const TimePoint closed_at = kT0 + 5s;

  SUBCASE("a trip 1 ns before the reset time counts as consecutive") {
    CHECK(trip_and_measure(breaker, closed_at + 60s - 1ns) == 10s);
    CHECK(breaker.consecutive_trips() == 2);
  }
  SUBCASE("a trip at the reset time starts again at the base period") {
    CHECK(trip_and_measure(breaker, closed_at + 60s) == 5s);
    CHECK(breaker.consecutive_trips() == 1);
  }
}

TEST_CASE("backoff_reset_after = 0 forgets earlier trips on every close") {
  BreakerConfig config = count_config(1);
  config.backoff_reset_after = Duration::zero();
  CircuitBreaker breaker = make(config);
  CHECK(trip_and_measure(breaker, kT0) == 5s);
  fail(breaker, kT0 + 5s);  // failed probe: still consecutive, no close in between
  CHECK(breaker.retry_after(kT0 + 5s) == 10s);
  recover(breaker, kT0 + 15s);
  CHECK(trip_and_measure(breaker, kT0 + 15s) == 5s);
}

TEST_CASE("the failure ratio is ignored below min_requests") {
  CircuitBreaker breaker = make(ratio_config(0.5, 10));
  fail(breaker, kT0, 9);
  CHECK(breaker.state(kT0) == BreakerState::closed);
  fail(breaker, kT0);
  CHECK(breaker.state(kT0) == BreakerState::open);
}

TEST_CASE("the failure ratio trips exactly at the boundary, not below it") {
  SUBCASE("0.5: 5 of 10 trips") {
    CircuitBreaker breaker = make(ratio_config(0.5, 10));
    succeed(breaker, kT0, 5);
    fail(breaker, kT0, 4);
    CHECK(breaker.state(kT0) == BreakerState::closed);
    fail(breaker, kT0);
    CHECK(breaker.state(kT0) == BreakerState::open);
  }
  SUBCASE("0.5: 4 of 10 does not trip") {
    CircuitBreaker breaker = make(ratio_config(0.5, 10));
    succeed(breaker, kT0, 6);
    fail(breaker, kT0, 4);
    CHECK(breaker.state(kT0) == BreakerState::closed);
  }
  SUBCASE("0.3, not exact in binary: 3 of 10 trips") {
    CircuitBreaker breaker = make(ratio_config(0.3, 10));
    succeed(breaker, kT0, 7);
    fail(breaker, kT0, 2);
    CHECK(breaker.state(kT0) == BreakerState::closed);
    fail(breaker, kT0);
    CHECK(breaker.state(kT0) == BreakerState::open);
  }
  SUBCASE("0.3: 2 of 10 does not trip") {
    CircuitBreaker breaker = make(ratio_config(0.3, 10));
    fail(breaker, kT0, 2);
    succeed(breaker, kT0, 8);
    CHECK(breaker.state(kT0) == BreakerState::closed);
  }
  SUBCASE("ratio 1: only all-failures trips") {
    CircuitBreaker breaker = make(ratio_config(1.0, 4));
    fail(breaker, kT0, 3);
    succeed(breaker, kT0);
    fail(breaker, kT0, 2);  // 5 of 6
    CHECK(breaker.state(kT0) == BreakerState::closed);
  }
}

TEST_CASE("the ratio can trip on a success that brings the window up to min_requests") {
  CircuitBreaker breaker = make(ratio_config(0.5, 4));
  fail(breaker, kT0, 3);
  CHECK(breaker.state(kT0) == BreakerState::closed);
  succeed(breaker, kT0);  // 3 of 4 failed, and now there are enough requests to judge
  CHECK(breaker.state(kT0) == BreakerState::open);
}

TEST_CASE("the rolling window forgets a bucket exactly one window later") {
  CircuitBreaker breaker = make(ratio_config(0.5, 4));  // 10 buckets of 1 s
  fail(breaker, kT0 + 200ms, 3);                        // bucket [kT0, kT0 + 1s)

  SUBCASE("still remembered in the last instant of the window") {
    fail(breaker, kT0 + 10s - 1ns);
    CHECK(breaker.state(kT0 + 10s - 1ns) == BreakerState::open);
  }
  SUBCASE("forgotten once its bucket is ten buckets old") {
    fail(breaker, kT0 + 10s);
    CHECK(breaker.state(kT0 + 10s) == BreakerState::closed);
  }
  SUBCASE("a long silence forgets everything") {
    fail(breaker, kT0 + 1h);
    CHECK(breaker.state(kT0 + 1h) == BreakerState::closed);
  }
}

TEST_CASE("an outcome at the first instant of a bucket belongs to that bucket") {
  CircuitBreaker breaker = make(ratio_config(0.5, 4));
  succeed(breaker, kT0 + 200ms, 3);  // bucket [kT0, kT0 + 1s)
  fail(breaker, kT0 + 1s);           // bucket [kT0 + 1s, kT0 + 2s): outlives the successes
  const TimePoint t = kT0 + 10s;     // the successes are forgotten here, the failure is not
  fail(breaker, t);
  succeed(breaker, t);
  CHECK(breaker.state(t) == BreakerState::closed);  // F F S
  fail(breaker, t);                                 // F F S F: 3 of 4
  CHECK(breaker.state(t) == BreakerState::open);
}

TEST_CASE("the rolling window forgets old buckets and keeps the recent ones") {
  CircuitBreaker breaker = make(ratio_config(0.5, 4));
  fail(breaker, kT0, 2);
  succeed(breaker, kT0 + 5s);
  // From here the failures at kT0 are gone and the success at kT0 + 5s stays.
  const TimePoint t = kT0 + 10s;
  fail(breaker, t, 2);  // S F F: 3 requests, below min_requests
  CHECK(breaker.state(t) == BreakerState::closed);
  fail(breaker, t);  // S F F F: 3 of 4
  CHECK(breaker.state(t) == BreakerState::open);
}

TEST_CASE("window buckets stay ordered across the clock's epoch") {
  // Instants just before the epoch belong to the bucket [-1s, 0), which a
  // division rounding towards zero would merge with [0, 1s).
  CircuitBreaker breaker = make(ratio_config(0.5, 4));
  const TimePoint before_epoch = TimePoint(-1ns);
  fail(breaker, before_epoch, 3);

  SUBCASE("remembered until nine seconds after the epoch") {
    fail(breaker, TimePoint(9s - 1ns));
    CHECK(breaker.state(TimePoint(9s - 1ns)) == BreakerState::open);
  }
  SUBCASE("forgotten at nine seconds after the epoch") {
    fail(breaker, TimePoint(9s));
    CHECK(breaker.state(TimePoint(9s)) == BreakerState::closed);
  }
}

TEST_CASE("closing starts a fresh window and consecutive count") {
  BreakerConfig config = ratio_config(0.5, 4);
  config.consecutive_failures = 3;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0, 3);
  recover(breaker, kT0 + 5s);
  fail(breaker, kT0 + 5s, 2);  // kept, the old failures would make 5 of 5 and 5 in a row
  CHECK(breaker.state(kT0 + 5s) == BreakerState::closed);
}

TEST_CASE("with both triggers off the breaker never trips") {
  BreakerConfig config = count_config(0);
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0, 1000);
  CHECK(breaker.state(kT0) == BreakerState::closed);
  CHECK(breaker.counters().failures == 1000);
  CHECK(breaker.counters().trips == 0);
}

TEST_CASE("permits from before a state change release slots but do not move the state") {
  BreakerConfig config = count_config(1);
  config.half_open_max_probes = 2;
  CircuitBreaker breaker = make(config);
  const BreakerPermit slow_success = breaker.try_acquire(kT0);
  const BreakerPermit slow_failure = breaker.try_acquire(kT0);
  fail(breaker, kT0);  // trips while the two slow requests are still out
  REQUIRE(breaker.in_flight() == 2);

  const TimePoint t = kT0 + 5s;
  const BreakerPermit probe = breaker.try_acquire(t);
  REQUIRE(probe.admitted());

  breaker.on_success(slow_success, t);  // must not count as a probe success
  CHECK(breaker.state(t) == BreakerState::half_open);
  breaker.on_failure(slow_failure, t);  // must not re-open
  CHECK(breaker.state(t) == BreakerState::half_open);
  CHECK(breaker.in_flight() == 1);
  // Their release must not have freed probe slots: still one of two taken.
  CHECK(breaker.try_acquire(t).admitted());
  CHECK(breaker.try_acquire(t).admission() == BreakerAdmission::rejected_half_open_full);

  breaker.on_success(probe, t);
  CHECK(breaker.state(t) == BreakerState::closed);
}

TEST_CASE("a probe finishing after the breaker closed does not count against it") {
  BreakerConfig config = count_config(1);
  config.half_open_max_probes = 2;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  const TimePoint t = kT0 + 5s;
  const BreakerPermit first = breaker.try_acquire(t);
  const BreakerPermit late = breaker.try_acquire(t);
  breaker.on_success(first, t);
  REQUIRE(breaker.state(t) == BreakerState::closed);
  breaker.on_failure(late, t);  // one failure would trip a fresh closed breaker
  CHECK(breaker.state(t) == BreakerState::closed);
  CHECK(breaker.in_flight() == 0);
}

TEST_CASE("a probe from an earlier half-open period does not free a slot in the next") {
  BreakerConfig config = count_config(1);
  config.half_open_max_probes = 2;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  const TimePoint first = kT0 + 5s;
  const BreakerPermit failing = breaker.try_acquire(first);
  const BreakerPermit slow = breaker.try_acquire(first);
  breaker.on_failure(failing, first);  // re-opens for 10 s; `slow` is still out
  const TimePoint second = first + 10s;
  CHECK(breaker.try_acquire(second).admitted());
  CHECK(breaker.try_acquire(second).admitted());
  breaker.on_cancel(slow);
  CHECK(breaker.try_acquire(second).admission() == BreakerAdmission::rejected_half_open_full);
}

TEST_CASE("max_in_flight admits exactly the limit, in every state") {
  BreakerConfig config = count_config(1);
  config.max_in_flight = 2;
  CircuitBreaker breaker = make(config);
  const BreakerPermit a = breaker.try_acquire(kT0);
  const BreakerPermit b = breaker.try_acquire(kT0);
  REQUIRE(a.admitted());
  REQUIRE(b.admitted());
  const BreakerPermit c = breaker.try_acquire(kT0);
  CHECK(c.admission() == BreakerAdmission::rejected_max_in_flight);
  CHECK(breaker.counters().rejected_max_in_flight == 1);
  CHECK(breaker.in_flight() == 2);

  SUBCASE("a rejection is local overload, not an upstream failure") {
    CHECK(breaker.state(kT0) == BreakerState::closed);
  }
  SUBCASE("a cancel and a success each free a slot") {
    breaker.on_cancel(a);
    const BreakerPermit d = breaker.try_acquire(kT0);
    CHECK(d.admitted());
    breaker.on_success(d, kT0);
    CHECK(breaker.try_acquire(kT0).admitted());
  }
}

TEST_CASE("max_in_flight binds before the probe limit when slow requests fill it") {
  BreakerConfig config = count_config(1);
  config.max_in_flight = 2;
  config.half_open_max_probes = 2;
  CircuitBreaker breaker = make(config);
  const BreakerPermit slow = breaker.try_acquire(kT0);
  fail(breaker, kT0);
  const TimePoint t = kT0 + 5s;
  CHECK(breaker.try_acquire(t).admitted());
  CHECK(breaker.try_acquire(t).admission() == BreakerAdmission::rejected_max_in_flight);
  breaker.on_cancel(slow);
  CHECK(breaker.try_acquire(t).admitted());
}

TEST_CASE("max_pending admits exactly the limit and leave_pending frees a place") {
  BreakerConfig config = count_config(1);
  config.max_pending = 2;
  CircuitBreaker breaker = make(config);
  CHECK(breaker.try_enter_pending() == BreakerAdmission::admitted);
  CHECK(breaker.try_enter_pending() == BreakerAdmission::admitted);
  CHECK(breaker.try_enter_pending() == BreakerAdmission::rejected_max_pending);
  CHECK(breaker.pending() == 2);
  CHECK(breaker.counters().rejected_max_pending == 1);
  breaker.leave_pending();
  CHECK(breaker.pending() == 1);
  CHECK(breaker.try_enter_pending() == BreakerAdmission::admitted);
  CHECK(breaker.state(kT0) == BreakerState::closed);
}

TEST_CASE("zero concurrency thresholds mean unlimited") {
  CircuitBreaker breaker = make(count_config(0));
  std::vector<BreakerPermit> permits;
  for (int i = 0; i < 10000; ++i) {
    permits.push_back(breaker.try_acquire(kT0));
    REQUIRE(permits.back().admitted());
    REQUIRE(breaker.try_enter_pending() == BreakerAdmission::admitted);
  }
  CHECK(breaker.in_flight() == 10000);
  CHECK(breaker.pending() == 10000);
}

TEST_CASE("misuse saturates the counts instead of wrapping") {
  BreakerConfig config = count_config(0);
  config.max_in_flight = 1;
  config.max_pending = 1;
  CircuitBreaker breaker = make(config);
  breaker.leave_pending();
  CHECK(breaker.pending() == 0);
  CHECK(breaker.try_enter_pending() == BreakerAdmission::admitted);
  CHECK(breaker.try_enter_pending() == BreakerAdmission::rejected_max_pending);

  const BreakerPermit permit = breaker.try_acquire(kT0);
  breaker.on_success(permit, kT0);
  breaker.on_success(permit, kT0);  // finished twice
  CHECK(breaker.in_flight() == 0);
  CHECK(breaker.try_acquire(kT0).admitted());
  CHECK(breaker.try_acquire(kT0).admission() == BreakerAdmission::rejected_max_in_flight);
}

TEST_CASE("finishing a rejected or default permit does nothing") {
  CircuitBreaker breaker = make(count_config(1));
  const BreakerPermit none;
  CHECK_FALSE(none.admitted());
  breaker.on_failure(none, kT0);
  breaker.on_success(none, kT0);
  breaker.on_cancel(none);
  CHECK(breaker.state(kT0) == BreakerState::closed);
  fail(breaker, kT0);
  const BreakerPermit rejected = breaker.try_acquire(kT0);
  REQUIRE(rejected.admission() == BreakerAdmission::rejected_open);
  breaker.on_failure(rejected, kT0 + 5s);
  CHECK(breaker.state(kT0 + 5s) == BreakerState::half_open);
  CHECK(breaker.counters().failures == 1);
  CHECK(breaker.counters().successes == 0);
  CHECK(breaker.counters().cancels == 0);
}

TEST_CASE("the listener sees each transition once, in order, with its time") {
  Recorder recorder;
  BreakerConfig config = count_config(2);
  config.half_open_successes_to_close = 2;
  recorder.attach(config);
  CircuitBreaker breaker = make(config);

  fail(breaker, kT0, 2);  // closed -> open (5 s)
  CHECK(breaker.state(kT0 + 1s) == BreakerState::open);
  CHECK(breaker.state(kT0 + 6s) == BreakerState::half_open);
  CHECK(breaker.state(kT0 + 6s) == BreakerState::half_open);  // no second report
  fail(breaker, kT0 + 7s);                                    // half_open -> open (10 s)
  succeed(breaker, kT0 + 17s);                                // open -> half_open, 1 of 2
  succeed(breaker, kT0 + 18s);                                // half_open -> closed
  succeed(breaker, kT0 + 19s);
  fail(breaker, kT0 + 20s);

  const std::vector<Transition> expected = {
      {BreakerState::closed, BreakerState::open, kT0},
      {BreakerState::open, BreakerState::half_open, kT0 + 6s},
      {BreakerState::half_open, BreakerState::open, kT0 + 7s},
      {BreakerState::open, BreakerState::half_open, kT0 + 17s},
      {BreakerState::half_open, BreakerState::closed, kT0 + 18s},
  };
  CHECK(recorder.seen == expected);
  CHECK(breaker.counters().trips == 2);
}

TEST_CASE("the listener runs after the breaker has updated itself") {
  struct Probe {
    const CircuitBreaker* breaker = nullptr;
    Duration retry_after_seen{};
    std::uint32_t trips_seen = 0;
  } probe;
  BreakerConfig config = count_config(1);
  config.on_state_change = [](void* user, BreakerState, BreakerState to, TimePoint now) {
    auto* p = static_cast<Probe*>(user);
    if (to != BreakerState::open) return;
    // Only const reads: the contract forbids calling back in to change it.
    p->retry_after_seen = p->breaker->retry_after(now);
    p->trips_seen = p->breaker->consecutive_trips();
  };
  config.on_state_change_user = &probe;
  CircuitBreaker breaker = make(config);
  probe.breaker = &breaker;
  fail(breaker, kT0);
  CHECK(probe.retry_after_seen == 5s);
  CHECK(probe.trips_seen == 1);
}

TEST_CASE("counters add up across a full cycle") {
  BreakerConfig config = count_config(1);
  config.max_in_flight = 1;
  CircuitBreaker breaker = make(config);
  const BreakerPermit held = breaker.try_acquire(kT0);
  CHECK(breaker.try_acquire(kT0).admission() == BreakerAdmission::rejected_max_in_flight);
  breaker.on_failure(held, kT0);
  CHECK(breaker.try_acquire(kT0 + 1s).admission() == BreakerAdmission::rejected_open);
  const BreakerPermit probe = breaker.try_acquire(kT0 + 5s);
  CHECK(breaker.try_acquire(kT0 + 5s).admission() == BreakerAdmission::rejected_half_open_full);
  breaker.on_cancel(probe);
  succeed(breaker, kT0 + 5s);

  const portico::BreakerCounters& c = breaker.counters();
  CHECK(c.admitted == 3);
  CHECK(c.successes == 1);
  CHECK(c.failures == 1);
  CHECK(c.cancels == 1);
  CHECK(c.trips == 1);
  CHECK(c.rejected_open == 1);
  CHECK(c.rejected_half_open_full == 1);
  CHECK(c.rejected_max_in_flight == 1);
  CHECK(c.rejected_max_pending == 0);
}

TEST_CASE("extreme durations saturate instead of overflowing") {
  BreakerConfig config = count_config(1);
  config.open_duration = Duration::max();
  config.max_open_duration = Duration::max();
  config.backoff_reset_after = Duration::max();
  config.window = Duration::max();
  config.failure_ratio = 0.5;
  CircuitBreaker breaker = make(config);
  fail(breaker, kT0);
  CHECK(breaker.state(TimePoint::max() - 1ns) == BreakerState::open);
  CHECK(breaker.retry_after(kT0) == TimePoint::max() - kT0);
  CHECK(breaker.retry_after(TimePoint::min()) == Duration::max());
  CHECK(breaker.state(TimePoint::max()) == BreakerState::half_open);
  fail(breaker, TimePoint::max());  // grows past the cap: stays at the cap
  CHECK(breaker.retry_after(TimePoint::max()) == Duration::zero());
  CHECK(breaker.consecutive_trips() == 2);
}

TEST_CASE("a smallest window and far-apart instants are well defined") {
  BreakerConfig config = ratio_config(0.5, 2);
  config.window = 10ns;  // one nanosecond per bucket
  CircuitBreaker breaker = make(config);
  fail(breaker, TimePoint::min());
  fail(breaker, TimePoint::max());  // the first failure is long forgotten
  CHECK(breaker.state(TimePoint::max()) == BreakerState::closed);
  fail(breaker, TimePoint::max());
  CHECK(breaker.counters().trips == 1);  // open until the end of time, which is now
}

TEST_CASE("a now earlier than already seen neither ends an open period nor breaks the window") {
  CircuitBreaker breaker = make(ratio_config(0.5, 4));
  fail(breaker, kT0 + 10s, 2);
  fail(breaker, kT0, 1);  // earlier: counted with the newest bucket
  CHECK(breaker.state(kT0) == BreakerState::closed);
  fail(breaker, kT0 + 10s);
  CHECK(breaker.state(kT0 + 10s) == BreakerState::open);
  CHECK(breaker.state(kT0) == BreakerState::open);
  CHECK(breaker.retry_after(kT0) == 15s);
}

TEST_CASE("a breaker keeps its state when moved") {
  CircuitBreaker breaker = make(count_config(1));
  fail(breaker, kT0);
  CircuitBreaker moved = std::move(breaker);
  CHECK(moved.state(kT0) == BreakerState::open);
  CHECK(moved.retry_after(kT0) == 5s);
}

TEST_CASE("state and admission names are stable") {
  CHECK(std::string(portico::breaker_state_name(BreakerState::closed)) == "closed");
  CHECK(std::string(portico::breaker_state_name(BreakerState::open)) == "open");
  CHECK(std::string(portico::breaker_state_name(BreakerState::half_open)) == "half_open");
  CHECK(std::string(portico::breaker_admission_name(BreakerAdmission::admitted)) == "admitted");
  CHECK(std::string(portico::breaker_admission_name(BreakerAdmission::rejected_open)) ==
        "rejected_open");
  CHECK(std::string(portico::breaker_admission_name(BreakerAdmission::rejected_half_open_full)) ==
        "rejected_half_open_full");
  CHECK(std::string(portico::breaker_admission_name(BreakerAdmission::rejected_max_in_flight)) ==
        "rejected_max_in_flight");
  CHECK(std::string(portico::breaker_admission_name(BreakerAdmission::rejected_max_pending)) ==
        "rejected_max_pending");
}

namespace {

// Expects `config` to be rejected with a message naming `field` and `value`.
void check_rejected(const BreakerConfig& config, const std::string& field,
                    const std::string& value) {
  auto created = CircuitBreaker::create(config);
  REQUIRE_FALSE(created.ok());
  CHECK(created.error().kind == ErrorKind::invalid_argument);
  const std::string& message = created.error().message;
  CAPTURE(message);
  CHECK(message.find(field) != std::string::npos);
  CHECK(message.find("got " + value) != std::string::npos);
}

}  // namespace

TEST_CASE("every invalid parameter is rejected with an error naming it") {
  BreakerConfig c;
  SUBCASE("failure_ratio below 0") {
    c.failure_ratio = -0.1;
    check_rejected(c, "failure_ratio", "-0.1");
  }
  SUBCASE("failure_ratio above 1") {
    c.failure_ratio = 1.5;
    check_rejected(c, "failure_ratio", "1.5");
  }
  SUBCASE("failure_ratio NaN") {
    c.failure_ratio = std::numeric_limits<double>::quiet_NaN();
    check_rejected(c, "failure_ratio", "nan");
  }
  SUBCASE("failure_ratio infinite") {
    c.failure_ratio = std::numeric_limits<double>::infinity();
    check_rejected(c, "failure_ratio", "inf");
  }
  SUBCASE("window zero") {
    c.window = Duration::zero();
    check_rejected(c, "window", "0 ns");
  }
  SUBCASE("window negative") {
    c.window = -1s;
    check_rejected(c, "window", "-1000000000 ns");
  }
  SUBCASE("window shorter than one nanosecond per bucket") {
    c.window = 9ns;
    check_rejected(c, "window", "9 ns");
  }
  SUBCASE("min_requests zero") {
    c.min_requests = 0;
    check_rejected(c, "min_requests", "0");
  }
  SUBCASE("min_requests zero even with the ratio off") {
    c.failure_ratio = 0.0;
    c.min_requests = 0;
    check_rejected(c, "min_requests", "0");
  }
  SUBCASE("open_duration zero") {
    c.open_duration = Duration::zero();
    check_rejected(c, "open_duration", "0 ns");
  }
  SUBCASE("open_duration negative") {
    c.open_duration = -5ns;
    check_rejected(c, "open_duration", "-5 ns");
  }
  SUBCASE("multiplier below 1") {
    c.open_duration_multiplier = 0.99;
    check_rejected(c, "open_duration_multiplier", "0.99");
  }
  SUBCASE("multiplier NaN") {
    c.open_duration_multiplier = std::numeric_limits<double>::quiet_NaN();
    check_rejected(c, "open_duration_multiplier", "nan");
  }
  SUBCASE("multiplier infinite") {
    c.open_duration_multiplier = std::numeric_limits<double>::infinity();
    check_rejected(c, "open_duration_multiplier", "inf");
  }
  SUBCASE("max_open_duration below open_duration") {
    c.open_duration = 5s;
    c.max_open_duration = 5s - 1ns;
    check_rejected(c, "max_open_duration", "4999999999 ns");
  }
  SUBCASE("backoff_reset_after negative") {
    c.backoff_reset_after = -1ns;
    check_rejected(c, "backoff_reset_after", "-1 ns");
  }
  SUBCASE("half_open_max_probes zero") {
    c.half_open_max_probes = 0;
    check_rejected(c, "half_open_max_probes", "0");
  }
  SUBCASE("half_open_successes_to_close zero") {
    c.half_open_successes_to_close = 0;
    check_rejected(c, "half_open_successes_to_close", "0");
  }
}

TEST_CASE("the boundary values of every parameter are accepted") {
  BreakerConfig c;
  c.consecutive_failures = 0;
  c.failure_ratio = 1.0;
  c.window = 10ns;
  c.min_requests = 1;
  c.open_duration = 1ns;
  c.open_duration_multiplier = 1.0;
  c.max_open_duration = 1ns;
  c.backoff_reset_after = Duration::zero();
  c.half_open_max_probes = 1;
  c.half_open_successes_to_close = 1;
  c.max_in_flight = 0;
  c.max_pending = 0;
  CHECK(CircuitBreaker::create(c).ok());
  c.failure_ratio = std::nextafter(0.0, 1.0);  // the smallest ratio that is on
  CHECK(CircuitBreaker::create(c).ok());
  c.failure_ratio = 0.0;  // off
  CHECK(CircuitBreaker::create(c).ok());
}

TEST_CASE("the request path does not allocate") {
  portico::BreakerConfig config;
  config.consecutive_failures = 3;
  config.min_requests = 5;
  config.max_in_flight = 100;
  config.max_pending = 100;
  auto created = portico::CircuitBreaker::create(config);
  REQUIRE(created.ok());
  portico::CircuitBreaker breaker = std::move(created).value();
  portico::ManualClock clock;
  const std::uint64_t before = portico::test::allocation_count();
  int admitted = 0;
  for (int i = 0; i < 5000; ++i) {
    clock.advance(std::chrono::milliseconds(7));
    const portico::BreakerPermit p = breaker.try_acquire(clock.now());
    admitted += p.admitted();
    if (breaker.try_enter_pending() == portico::BreakerAdmission::admitted) breaker.leave_pending();
    if (i % 4 == 0) {
      breaker.on_failure(p, clock.now());
    } else {
      breaker.on_success(p, clock.now());
    }
  }
  CHECK(portico::test::allocation_count() - before == 0);
  CHECK(admitted > 0);
  CHECK(breaker.counters().admitted == static_cast<std::uint64_t>(admitted));
}

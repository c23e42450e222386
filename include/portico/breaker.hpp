// Circuit breaker: stops sending requests to an upstream that keeps failing,
// then lets a few probes through to find out whether it has recovered.
//
//   closed ──trip──▶ open ──open period elapsed──▶ half-open ──M probe successes──▶ closed
//                     ▲                                │
//                     └──────── any probe failure ─────┘
//
// The breaker trips on N consecutive failures, or when the failure ratio over
// a rolling time window reaches a threshold once the window holds enough
// requests. Each consecutive trip keeps it open longer (exponential backoff,
// capped), so a flapping upstream is probed less and less often. Independently
// of the state, Envoy-style concurrency thresholds cap the requests in flight
// and the requests waiting for a connection, so an overloaded upstream is not
// buried before it has had the chance to fail.
//
// The breaker never reads a clock and owns no timer: every call that depends
// on time takes `now`, and the move from open to half-open happens lazily in
// the first call that observes the open period has elapsed.
//
// Threading: not thread-safe. A gateway keeps one breaker per upstream
// endpoint per event loop (Envoy's per-worker model) and calls it from that
// loop only. The request-path calls never allocate, never lock and never throw.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/result.hpp"

namespace portico {

enum class BreakerState : std::uint8_t {
  closed,     // requests flow; outcomes are counted
  open,       // requests are refused until the open period ends
  half_open,  // a bounded number of probes decide between closed and open
};

// Returns a stable lower-case name for `state`, e.g. "half_open".
constexpr const char* breaker_state_name(BreakerState state) noexcept {
  switch (state) {
    case BreakerState::closed:
      return "closed";
    case BreakerState::open:
      return "open";
    case BreakerState::half_open:
      return "half_open";
  }
  return "unknown";
}

// Whether a request may go to the upstream and, if not, why not. The reasons
// are distinct because a gateway reports them differently: an open breaker is
// the upstream's fault (503 with Retry-After), a full concurrency threshold is
// local overload.
enum class BreakerAdmission : std::uint8_t {
  admitted,
  rejected_open,            // the breaker is open
  rejected_half_open_full,  // half-open and every probe slot is taken
  rejected_max_in_flight,   // max_in_flight requests are already admitted
  rejected_max_pending,     // max_pending requests already wait for a connection
};

// Returns a stable lower-case name for `admission`, e.g. "rejected_open".
constexpr const char* breaker_admission_name(BreakerAdmission admission) noexcept {
  switch (admission) {
    case BreakerAdmission::admitted:
      return "admitted";
    case BreakerAdmission::rejected_open:
      return "rejected_open";
    case BreakerAdmission::rejected_half_open_full:
      return "rejected_half_open_full";
    case BreakerAdmission::rejected_max_in_flight:
      return "rejected_max_in_flight";
    case BreakerAdmission::rejected_max_pending:
      return "rejected_max_pending";
  }
  return "unknown";
}

// Called synchronously on every state change, after the breaker has updated
// itself, with the state left, the state entered and the `now` of the call
// that observed the change. A plain function pointer plus a user pointer so
// that the C ABI can pass its callbacks straight through.
//
// The listener must not throw (the breaker's calls are noexcept) and must not
// call back into the breaker that invoked it: that call is still in progress.
using BreakerStateListener = void (*)(void* user, BreakerState from, BreakerState to,
                                      TimePoint now);

// Every field is validated by CircuitBreaker::create, whether or not the
// feature it belongs to is switched on, so a configuration is either wholly
// valid or rejected.
struct BreakerConfig {
  // Trip after this many failures in a row while closed. 0 = off.
  std::uint32_t consecutive_failures = 5;

  // Trip when failures / requests over the rolling `window` reaches this
  // ratio (the boundary trips), provided the window holds at least
  // `min_requests` outcomes. 0 = off; otherwise 0 < ratio <= 1.
  double failure_ratio = 0.5;
  // Length of the rolling window. It is kept as kBreakerWindowBuckets buckets
  // of window / kBreakerWindowBuckets each, so memory is fixed and old
  // outcomes are forgotten one bucket at a time. At least
  // kBreakerWindowBuckets nanoseconds.
  Duration window = std::chrono::seconds(10);
  // Fewest outcomes in the window before the ratio is trusted. >= 1.
  std::uint32_t min_requests = 20;

  // How long the first trip keeps the breaker open. > 0.
  Duration open_duration = std::chrono::seconds(5);
  // Each further consecutive trip stays open `multiplier` times longer than
  // the previous one: base * multiplier^(k-1) for the k-th. Finite, >= 1
  // (1 = no growth).
  double open_duration_multiplier = 2.0;
  // Cap on the grown open period. >= open_duration.
  Duration max_open_duration = std::chrono::seconds(60);
  // A trip counts as consecutive (and grows the open period) unless the
  // breaker had stayed closed at least this long before it; then the count
  // starts again at the base period. Kept apart from the close itself because
  // a flapping upstream passes its probes and fails again moments later.
  // 0 = every close forgets earlier trips. >= 0.
  Duration backoff_reset_after = std::chrono::seconds(60);

  // Probes admitted at the same time while half-open. >= 1.
  std::uint32_t half_open_max_probes = 1;
  // Probe successes, within one half-open period, that close the breaker.
  // May exceed half_open_max_probes: the probes then run in rounds. >= 1.
  std::uint32_t half_open_successes_to_close = 1;

  // Requests admitted and not yet finished, in any state. 0 = unlimited.
  std::uint32_t max_in_flight = 0;
  // Requests waiting for an upstream connection (see try_enter_pending).
  // 0 = unlimited.
  std::uint32_t max_pending = 0;

  // Optional state-change listener and the pointer handed back to it; both
  // are stored as given and must outlive the breaker. nullptr = none.
  BreakerStateListener on_state_change = nullptr;
  void* on_state_change_user = nullptr;
};

// Buckets in the rolling failure-ratio window.
inline constexpr std::uint32_t kBreakerWindowBuckets = 10;

// Running totals for metrics. Monotonic; never reset by state changes.
struct BreakerCounters {
  std::uint64_t admitted = 0;
  std::uint64_t successes = 0;  // every on_success of an admitted permit
  std::uint64_t failures = 0;   // every on_failure of an admitted permit
  std::uint64_t cancels = 0;
  std::uint64_t trips = 0;  // entries into open, from closed or half-open
  std::uint64_t rejected_open = 0;
  std::uint64_t rejected_half_open_full = 0;
  std::uint64_t rejected_max_in_flight = 0;
  std::uint64_t rejected_max_pending = 0;
};

// The answer to CircuitBreaker::try_acquire: a small value the caller keeps
// with the request and hands back, when the request ends, to exactly one of
// on_success, on_failure or on_cancel. It remembers which breaker period it
// was admitted in, so a slow request that started before a trip cannot count
// as a probe or close a breaker that has moved on. Trivially copyable; keep
// it by value in the per-request state.
class BreakerPermit {
 public:
  // Not admitted (reports rejected_open, the safe answer); finishing it does
  // nothing. Lets per-request state hold a permit before asking for one.
  BreakerPermit() = default;
  BreakerAdmission admission() const noexcept { return admission_; }
  bool admitted() const noexcept { return admission_ == BreakerAdmission::admitted; }
  explicit operator bool() const noexcept { return admitted(); }

 private:
  friend class CircuitBreaker;
  BreakerPermit(BreakerAdmission admission, std::uint64_t period, bool probe) noexcept
      : period_(period), admission_(admission), probe_(probe) {}

  std::uint64_t period_ = 0;
  BreakerAdmission admission_ = BreakerAdmission::rejected_open;
  bool probe_ = false;
};

namespace detail {

// Request and failure counts over the last kBreakerWindowBuckets bucket
// widths, with running totals so that reading them is O(1).
class OutcomeWindow {
 public:
  explicit OutcomeWindow(Duration bucket_width) noexcept : bucket_width_(bucket_width) {}
  // Counts one outcome at `now`, forgetting buckets that fell out first.
  void record(TimePoint now, bool failed) noexcept;
  void clear() noexcept;
  std::uint64_t requests() const noexcept { return requests_; }
  std::uint64_t failures() const noexcept { return failures_; }

 private:
  struct Bucket {
    std::uint64_t requests = 0;
    std::uint64_t failures = 0;
  };
  TimePoint bucket_end(std::int64_t bucket_index) const noexcept;
  void advance_to(std::int64_t bucket_index) noexcept;
  void forget(Bucket& bucket) noexcept;

  Duration bucket_width_;
  std::array<Bucket, kBreakerWindowBuckets> buckets_{};
  std::int64_t newest_index_ = 0;  // absolute bucket number of the newest bucket
  TimePoint newest_end_{};         // first instant after the newest bucket
  std::size_t newest_slot_ = 0;    // where the newest bucket sits in buckets_
  bool empty_ = true;              // newest_index_ is meaningless until the first record
  std::uint64_t requests_ = 0;
  std::uint64_t failures_ = 0;
};

}  // namespace detail

// One circuit breaker guarding one upstream endpoint.
//
// Typical use per request (see docs/breaker.md for the proxy's pending flow):
//   BreakerPermit p = breaker.try_acquire(now);
//   if (!p) return reply_503(breaker_admission_name(p.admission()), breaker.retry_after(now));
//   ... later, exactly once:  breaker.on_success(p, now) / on_failure(p, now) / on_cancel(p)
//
// Owns no resources beyond its own storage; movable, not copyable (a copy
// would double-count requests). `now` is expected not to go backwards; if it
// does, nothing breaks: the window files the outcome with the newest ones,
// and an open period still ends only once `now` reaches its end.
class PORTICO_API CircuitBreaker {
 public:
  // Validates every field of `config`; on a bad one returns an Error of kind
  // invalid_argument whose message names the field and the value.
  static Result<CircuitBreaker> create(const BreakerConfig& config);

  CircuitBreaker(CircuitBreaker&&) noexcept = default;
  CircuitBreaker& operator=(CircuitBreaker&&) noexcept = default;
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Asks to send one request. An admitted permit holds an in-flight slot
  // (and, when half-open, a probe slot) until it is finished. A rejected
  // permit holds nothing; finishing it is allowed and does nothing.
  // May move open → half-open and call the listener.
  BreakerPermit try_acquire(TimePoint now) noexcept;

  // Finish an admitted permit: the upstream answered well / badly, or the
  // request never reached the upstream (client went away, pending timeout),
  // which counts neither way. What counts as a failure (5xx, reset, timeout)
  // is the caller's decision. Each permit must be finished exactly once;
  // finishing one twice, or one from another breaker, skews the counts
  // (they saturate at zero rather than wrap). Outcomes of permits admitted
  // before the latest state change release their slots but do not move the
  // state: they describe the upstream as it was.
  // on_success/on_failure may trip, close or re-open and call the listener.
  void on_success(const BreakerPermit& permit, TimePoint now) noexcept;
  void on_failure(const BreakerPermit& permit, TimePoint now) noexcept;
  void on_cancel(const BreakerPermit& permit) noexcept;

  // The proxy's queue of requests waiting for an upstream connection, kept
  // apart from try_acquire because only the proxy knows whether a request
  // has to wait. Returns admitted or rejected_max_pending; after `admitted`
  // the caller must call leave_pending() once when the wait ends, however
  // it ends. Independent of the breaker state.
  BreakerAdmission try_enter_pending() noexcept;
  void leave_pending() noexcept;

  // The state at `now`; may move open → half-open and call the listener.
  BreakerState state(TimePoint now) noexcept;
  // Time left in the open period at `now`; zero unless open. Meant for a
  // Retry-After header.
  Duration retry_after(TimePoint now) const noexcept;

  std::uint32_t in_flight() const noexcept { return in_flight_; }
  std::uint32_t pending() const noexcept { return pending_; }
  // Trips since the backoff last reset; the current open period is
  // open_duration * multiplier^(consecutive_trips - 1), capped.
  std::uint32_t consecutive_trips() const noexcept { return consecutive_trips_; }
  const BreakerCounters& counters() const noexcept { return counters_; }
  const BreakerConfig& config() const noexcept { return config_; }

 private:
  explicit CircuitBreaker(const BreakerConfig& config) noexcept;

  BreakerPermit reject(BreakerAdmission reason) noexcept;
  void refresh(TimePoint now) noexcept;
  bool ratio_reached() const noexcept;
  void record_closed_outcome(TimePoint now, bool failed) noexcept;
  void release(const BreakerPermit& permit) noexcept;
  bool is_current(const BreakerPermit& permit) const noexcept;
  Duration next_open_duration(TimePoint now) noexcept;
  void trip(TimePoint now) noexcept;
  void enter_half_open(TimePoint now) noexcept;
  void close(TimePoint now) noexcept;
  void change_state(BreakerState to, TimePoint now) noexcept;

  BreakerConfig config_;
  detail::OutcomeWindow window_;
  BreakerCounters counters_;
  BreakerState state_ = BreakerState::closed;
  std::uint64_t period_ = 1;  // bumped on every state change; permits carry it
  TimePoint open_until_{};
  TimePoint closed_since_ = TimePoint::min();  // closed "forever" at creation
  Duration open_period_{};                     // length of the current/last open period
  std::uint32_t consecutive_failures_ = 0;
  std::uint32_t consecutive_trips_ = 0;
  std::uint32_t probes_in_flight_ = 0;
  std::uint32_t probe_successes_ = 0;
  std::uint32_t in_flight_ = 0;
  std::uint32_t pending_ = 0;
};

}  // namespace portico

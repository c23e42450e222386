// Load balancer: chooses one endpoint of an upstream pool for each request.
//
// A Balancer owns a set of endpoints (an id such as "10.0.0.1:8080" and a
// weight), their health, their in-flight request counts and their outlier
// state, and one picking policy:
//
//   round_robin            each available endpoint in turn; weights ignored
//   weighted_round_robin   NGINX's smooth weighted round robin
//   least_request          fewest in-flight requests per unit of weight;
//                          ties go to weighted round robin (EDF)
//   power_of_two_choices   two weighted random candidates, the less loaded wins
//   peak_ewma              two weighted random candidates, the lower
//                          latency x (in-flight + 1) wins (Finagle's Peak EWMA)
//   maglev                 consistent hashing of a caller-supplied key
//                          (Maglev, NSDI 2016), weighted
//
// docs/balancer.md says when to use which.
//
// Availability. An endpoint is available when it is healthy (set_healthy, fed
// by active health checks) and not ejected (passive outlier detection: after
// `consecutive_failures` failures in a row it is ejected for a time that grows
// with each ejection). Picks consider available endpoints only -- except in
// panic mode: when the share of available endpoints falls below
// `panic_threshold`, picks spread over all endpoints, ignoring health and
// ejection, so the few left are not buried under the whole load (Envoy's
// panic threshold). Every Pick says whether it was made in panic mode.
//
// Time: the balancer never reads a clock. Calls that depend on time take
// `now`; an ejection ends lazily, in the first pick or on_request_end whose
// `now` has reached its end.
//
// Cost: pick() never allocates, never throws and never blocks. It is O(1)
// for round_robin, power_of_two_choices, peak_ewma and maglev, O(log n) for
// least_request and O(n) for weighted_round_robin (NGINX's algorithm scans
// the available endpoints). A change of the available set (health, ejection,
// end of an ejection, panic) costs O(n) without allocating, and may therefore
// happen inside a pick. add_endpoint/remove_endpoint allocate and, for maglev,
// rebuild the lookup table.
//
// Threading: not thread-safe. A gateway keeps one balancer per upstream per
// event loop and calls it from that loop only; each loop then balances on its
// own view of in-flight counts, latencies and failures. Give each loop its
// own `seed` so that the random policies do not move in lockstep.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/result.hpp"

namespace portico {

enum class BalancerPolicy : std::uint8_t {
  round_robin,
  weighted_round_robin,
  least_request,
  power_of_two_choices,
  peak_ewma,
  maglev,
};

// Returns a stable lower-case name for `policy`, e.g. "peak_ewma".
constexpr const char* balancer_policy_name(BalancerPolicy policy) noexcept {
  switch (policy) {
    case BalancerPolicy::round_robin:
      return "round_robin";
    case BalancerPolicy::weighted_round_robin:
      return "weighted_round_robin";
    case BalancerPolicy::least_request:
      return "least_request";
    case BalancerPolicy::power_of_two_choices:
      return "power_of_two_choices";
    case BalancerPolicy::peak_ewma:
      return "peak_ewma";
    case BalancerPolicy::maglev:
      return "maglev";
  }
  return "unknown";
}

// Bounds checked by create() and add_endpoint(). The weight bound keeps the
// weighted arithmetic exact in 64 bits; the endpoint bound lets the maglev
// table store 16-bit entries.
inline constexpr std::uint32_t kMaxEndpointWeight = 10000;
inline constexpr std::uint32_t kMaxEndpoints = 65536;
inline constexpr std::size_t kMaxEndpointIdLength = 255;
inline constexpr std::uint32_t kMaxMaglevTableSize = 1u << 24;

struct EndpointSpec {
  // Names the endpoint, typically "host:port"; unique within a balancer,
  // 1..kMaxEndpointIdLength bytes. Maglev hashes it, so the same ids give the
  // same key-to-endpoint mapping in every gateway process.
  std::string id;
  // Relative share of traffic, 1..kMaxEndpointWeight. There is no weight 0:
  // to drain an endpoint, mark it unhealthy or remove it.
  std::uint32_t weight = 1;
};

// Passive outlier detection: the endpoint's own answers decide whether it is
// taken out of rotation for a while.
struct OutlierConfig {
  // Failures in a row (as reported to on_request_end) that eject an
  // endpoint; a success resets the count. 0 disables outlier detection.
  std::uint32_t consecutive_failures = 5;
  // The k-th ejection in a row lasts k x base_ejection_time, capped at
  // max_ejection_time. Each full base_ejection_time that an endpoint spends
  // back in rotation without being ejected forgives one past ejection.
  // 0 < base_ejection_time <= max_ejection_time <= 365 days.
  Duration base_ejection_time = std::chrono::seconds(30);
  Duration max_ejection_time = std::chrono::seconds(300);
  // At most this percentage of the endpoints is ejected at once, but at
  // least one endpoint may always be ejected (so that small pools benefit
  // too); 0 forbids ejection. 0..100. An ejection refused by this cap is
  // retried on the endpoint's next failure.
  std::uint32_t max_ejection_percent = 10;
};

struct BalancerConfig {
  BalancerPolicy policy = BalancerPolicy::round_robin;
  // 1..kMaxEndpoints endpoints with unique ids.
  std::vector<EndpointSpec> endpoints;
  // Seeds the generator of the random policies; equal seeds give equal pick
  // sequences for equal calls.
  std::uint64_t seed = 0;
  // Panic mode starts when available endpoints / all endpoints falls below
  // this value, within [0, 1]. 0 disables panic mode: with no endpoint
  // available, pick() then finds none. 1 enters panic as soon as one
  // endpoint is unavailable.
  double panic_threshold = 0.5;
  // Maglev lookup table entries: a prime, larger than the number of
  // endpoints, at most kMaxMaglevTableSize. Each endpoint owns a share of
  // the entries proportional to its weight, so keep it at least 100 times
  // the endpoint count for weights to be honoured finely. Costs 2 bytes per
  // entry; rebuilt on every membership change. Checked whatever the policy.
  std::uint32_t maglev_table_size = 65537;
  // Peak EWMA time constant: with no new sample an endpoint's latency
  // estimate decays by a factor e every ewma_decay_time, so an endpoint that
  // was slow is tried again. 1 ms .. 1 hour. Checked whatever the policy.
  Duration ewma_decay_time = std::chrono::seconds(10);
  OutlierConfig outlier;
};

// Names one endpoint of one balancer. A ref stays valid until its endpoint
// is removed; every call given a stale ref ignores it, even after the slot
// has been reused by a later add_endpoint (the generation tells them apart).
// This is what makes it safe to report the end of a request that outlived
// its endpoint's membership.
struct EndpointRef {
  std::uint32_t slot = UINT32_MAX;
  std::uint32_t generation = 0;
  friend bool operator==(const EndpointRef&, const EndpointRef&) = default;
};

struct PickContext {
  // The affinity key for maglev, usually hash_affinity_key() of a header,
  // cookie or client address; ignored by the other policies. The balancer
  // mixes it again, so any well-spread 64-bit value works.
  std::uint64_t hash = 0;
  // Ends due ejections; ages peak_ewma latency estimates.
  TimePoint now{};
};

struct Pick {
  // Meaningful when `found`.
  EndpointRef endpoint;
  // False only when no endpoint is available and panic mode is disabled
  // (panic_threshold 0); the gateway answers 503.
  bool found = false;
  // The pick ignored health and ejection because too few endpoints were
  // available (see panic_threshold). Worth a metric and a log line.
  bool panic = false;
  explicit operator bool() const noexcept { return found; }
};

// What became of a request, as on_request_end records it. The caller decides
// what counts as a failure: typically connect errors, resets, timeouts and
// 5xx from the endpoint. A 4xx is usually a success (the endpoint answered).
enum class RequestOutcome : std::uint8_t {
  success,
  failure,
  // The request ended without a verdict on the endpoint (the client went
  // away, a local limit refused it): only the in-flight count changes.
  cancelled,
};

// A snapshot of one endpoint, for metrics and admin pages.
struct EndpointStats {
  // Valid until the endpoint is removed or the balancer destroyed.
  std::string_view id;
  std::uint32_t weight = 0;
  std::uint32_t in_flight = 0;
  bool healthy = true;  // as last set by set_healthy
  // As of the latest `now` the balancer saw; an ejection whose end has
  // passed shows until the next pick or on_request_end.
  bool ejected = false;
  TimePoint ejected_until{};  // meaningful when ejected
  // Ejections counted towards the next one's duration; time spent back in
  // rotation is forgiven when that next ejection happens, not before.
  std::uint32_t times_ejected = 0;
  std::uint32_t consecutive_failures = 0;
  bool eligible = false;  // would be considered by a pick now (panic included)
};

namespace detail {
class BalancerCore;
}

// Movable, not copyable (a copy would double-count requests in flight). A
// moved-from balancer may only be destroyed or assigned to.
class PORTICO_API Balancer {
 public:
  // Validates every field of `config`. Errors: invalid_argument naming the
  // field and value (no endpoints, empty or too long id, weight 0 or above
  // kMaxEndpointWeight, threshold outside [0, 1], table size not prime, bad
  // durations, ...), conflict for a duplicate id, capacity for more than
  // kMaxEndpoints endpoints or, for maglev, a table not larger than the
  // endpoint count.
  static Result<Balancer> create(const BalancerConfig& config);

  Balancer(Balancer&&) noexcept;
  Balancer& operator=(Balancer&&) noexcept;
  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;
  ~Balancer();

  // Chooses an endpoint. Does not count the request: call on_request_start
  // when it is actually sent. Never allocates; see the header comment for
  // the cost per policy. May end due ejections (an O(n) step).
  Pick pick(const PickContext& ctx) noexcept;

  // Request accounting for least_request, power_of_two_choices and
  // peak_ewma, and the input of outlier detection. Call on_request_start
  // once per request sent and on_request_end once per started request,
  // however it ends. `latency` is the time to the response (peak_ewma's
  // sample); it is ignored for failures and cancellations, which never make
  // an endpoint look faster. Outcomes reported while the endpoint is ejected
  // describe it before its ejection and do not count. Both return false and
  // do nothing for a stale ref. An end without a start saturates at zero.
  // on_request_end may eject the endpoint (an O(n) step); never allocates.
  bool on_request_start(EndpointRef endpoint) noexcept;
  bool on_request_end(EndpointRef endpoint, Duration latency, RequestOutcome outcome,
                      TimePoint now) noexcept;

  // Active health checking's verdict. An unhealthy endpoint is skipped
  // (outside panic mode) until marked healthy again; its outlier state is
  // kept. Returns false for a stale ref. Never allocates.
  bool set_healthy(EndpointRef endpoint, bool healthy) noexcept;

  // Membership. add_endpoint validates `spec` like create() (invalid_argument,
  // conflict for an id already present, capacity at kMaxEndpoints or, for
  // maglev, at maglev_table_size - 1 endpoints); the new endpoint is healthy
  // with no history. remove_endpoint fails with not_found for an unknown id
  // and invalid_argument for the last endpoint (a balancer always has one;
  // drain a pool with set_healthy instead); refs to the removed endpoint go
  // stale. Maglev moves only the keys of the endpoint that came or went, plus
  // a small fraction of the others (0.2% of all keys with 10 endpoints and
  // the default table).
  Result<EndpointRef> add_endpoint(const EndpointSpec& spec);
  Status remove_endpoint(std::string_view id);

  // The current endpoint with this id, if any.
  std::optional<EndpointRef> find(std::string_view id) const noexcept;
  // Nullopt for a stale ref.
  std::optional<EndpointStats> stats(EndpointRef endpoint) const noexcept;
  // Every current endpoint, in slot order; allocates (admin use).
  std::vector<EndpointRef> endpoints() const;

  std::size_t size() const noexcept;
  // Endpoints healthy and not ejected, as of the latest `now` seen.
  std::size_t available() const noexcept;
  // Whether the next pick would be made in panic mode (as of the latest
  // `now` seen).
  bool in_panic() const noexcept;
  BalancerPolicy policy() const noexcept;

 private:
  explicit Balancer(std::unique_ptr<detail::BalancerCore> core) noexcept;
  std::unique_ptr<detail::BalancerCore> core_;
};

// A stable 64-bit hash of an affinity key (header value, cookie, client
// address) for PickContext::hash. Stable across platforms, processes and
// releases, so that every gateway sharing a configuration sends a key to the
// same endpoint. Not cryptographic.
PORTICO_API std::uint64_t hash_affinity_key(std::string_view key) noexcept;

}  // namespace portico

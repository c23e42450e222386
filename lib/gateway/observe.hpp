// What the gateway tells its operators about the traffic: the metric
// families of docs/observability.md, a global filter ("observe") that
// records every request into them and writes one JSON access-log line per
// request, and the buffered log sink.
//
// The filter's work per request is a hash lookup of the route name in a
// table built with the configuration, a handful of relaxed atomic adds on
// the worker's own metric shard, and a line appended to the worker's log
// buffer: no heap allocation, no lock and, most of the time, no system
// call.
//
// Threading: the filter is shared by every worker (immutable after
// make_observe); the metric families are safe from any thread; the access
// log's buffers each belong to one worker thread (see AccessLog).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../filters/jwks_status.hpp"
#include "portico/breaker.hpp"
#include "portico/clock.hpp"
#include "portico/filter.hpp"
#include "portico/metrics.hpp"
#include "portico/proxy.hpp"
#include "portico/result.hpp"

namespace portico::detail {

// ------------------------------------------------------------ access log

struct AccessLogOptions {
  std::string path;  // appended to (created if absent); empty: standard output
  // A worker's buffer is written out once it holds this many bytes...
  std::size_t flush_bytes = 32 * 1024;
  // ...or when a request is logged and its oldest line is older than this.
  // A quiet worker's lines wait for the next request, flush_stale() or
  // flush(): the host calls flush_stale() from a timer to bound that wait.
  Duration max_age = std::chrono::milliseconds(200);
};

// Lines buffered per worker and written with one write(2) per buffer, so
// logging costs no system call per request. A worker's buffer belongs to
// that worker's thread: appending a line takes no lock. Only writing a
// full or stale buffer out takes the log's write lock (once per buffer, not
// per line), so lines of different workers never interleave.
class AccessLog {
 public:
  static Result<std::shared_ptr<AccessLog>> open(const AccessLogOptions& options, unsigned workers);
  // Writes to `fd`, which the caller keeps open for the log's life and
  // closes after it.
  static std::shared_ptr<AccessLog> to_descriptor(int fd, const AccessLogOptions& options,
                                                  unsigned workers);
  // Flushes what is buffered; closes a file it opened.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Appends a line: `format(std::string&)` appends its text (ending with a
  // newline) to the worker's buffer. A worker index past the last wraps
  // around. Threading: the lines of one index come from one thread at a
  // time (the worker's), with no lock; different indexes from any threads.
  template <class Format>
  void write(unsigned worker, Format&& format) {
    Buffer& b = buffer(worker);
    const bool was_empty = b.text.empty();
    format(b.text);
    after_append(b, was_empty);
  }

  // Writes the worker's buffer out if its oldest line is older than
  // max_age: on the thread that writes that index (the host runs it on
  // each worker's loop from a timer, so a quiet worker's lines wait at most
  // about max_age plus the timer's period).
  void flush_stale(unsigned worker);
  // Every buffer, now / the buffers older than max_age: only while no
  // worker writes (before the workers start, or after they stop).
  void flush();
  void flush_stale();
  // Bytes lost because the descriptor refused them (a full disk).
  std::uint64_t dropped_bytes() const noexcept;

 private:
  struct alignas(64) Buffer {
    std::string text;
    std::chrono::steady_clock::time_point oldest{};
  };
  AccessLog(int fd, bool owned, const AccessLogOptions& options, unsigned workers);
  Buffer& buffer(unsigned worker) noexcept {
    return buffers_[worker < buffer_count_ ? worker : worker % buffer_count_];
  }
  void after_append(Buffer& b, bool was_empty);
  void write_out(Buffer& b);  // on the thread that owns b

  int fd_;
  bool owned_;
  std::size_t flush_bytes_;
  std::chrono::steady_clock::duration max_age_;
  std::unique_ptr<Buffer[]> buffers_;  // one per worker
  unsigned buffer_count_;
  std::mutex write_mutex_;  // one buffer's write(2) calls at a time
  std::atomic<std::uint64_t> dropped_{0};
};

// Appends `text` as the inside of a JSON string: quotes, backslashes and
// control characters escaped, bytes that are not UTF-8 written as \u00XX;
// at most `max_bytes` of the input, then "..." .
void append_json_text(std::string& out, std::string_view text, std::size_t max_bytes = 1024);
// "2024-05-01T12:00:00.123Z"
void append_rfc3339_ms(std::string& out, std::chrono::system_clock::time_point t);

// ------------------------------------------------------------ metrics

// Status classes as the code_class label says them; index 0 is a request
// that got no response ("none").
inline constexpr std::string_view kCodeClasses[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
// The route label of requests that matched no configured route.
inline constexpr std::string_view kUnmatchedRoute = "unmatched";

// The gateway's families, registered once per Registry (registering again
// returns the same ones, so a reload keeps counting).
struct GatewayMetrics {
  static Result<GatewayMetrics> register_in(metrics::Registry& registry);

  // Recorded by the observe filter.
  metrics::CounterFamily requests;             // {route, service, code_class}
  metrics::HistogramFamily request_duration;   // {route}, seconds
  metrics::HistogramFamily upstream_duration;  // {service}, seconds, the last attempt
  metrics::CounterFamily request_bytes;        // {route, service}, body bytes received
  metrics::CounterFamily response_bytes;       // {route, service}, body bytes sent
  metrics::CounterFamily retries;              // {service}, attempts after the first

  // Set at scrape time by the host's collector (Registry::add_collector).
  metrics::GaugeFamily connections_active;   // {}
  metrics::CounterFamily connections_total;  // {}, accepted
  metrics::GaugeFamily endpoint_healthy;     // {service, endpoint}: 1 or 0
  metrics::GaugeFamily endpoint_ejected;     // {service, endpoint}: 1 or 0
  metrics::GaugeFamily breaker_state;        // {service, endpoint}: 0 closed, 1 open, 2 half-open
  metrics::CounterFamily outlier_ejections;  // {service, endpoint}
  metrics::CounterFamily rate_limit_rejections;  // {scope}, incremented by the rate-limit policy
  metrics::CounterFamily jwks_fetches;           // {source, url, result}: ok, error
  metrics::GaugeFamily jwks_keys;                // {source, url}
  metrics::GaugeFamily jwks_last_success;        // {source, url}, Unix seconds; 0: never

  // The rejection counter a rate-limit filter increments (with its
  // worker_index) for a scope it names at configuration time: "global",
  // "service:users", "route:orders". A null handle if the scope cannot be
  // registered; call when building the filter, not per request.
  metrics::Counter rate_limit_counter(std::string_view scope) const;

  // For the collector (they create series: not for the request path).
  // From Workers::stats() (or Server::stats()): live counters.
  void set_connections(const proxy::ServerStats& stats) const;
  // The endpoints of every worker (Server::endpoint_status() gathered with
  // Workers::run_on_each): the service label is the cluster's name. Each
  // worker checks its endpoints on its own, so the same endpoint may come
  // several times: it counts as healthy when every worker finds it so,
  // ejected when one has ejected it, its breaker in the worst state any
  // reports (open, then half-open), and its ejections summed. Endpoints
  // absent from `all` disappear from the output.
  void set_endpoints(std::span<const proxy::EndpointStatus> all) const;
  // The JWKS URLs of the configuration serving now (a reload's new
  // jwt-auth plugins count their fetches afresh); sources absent from
  // `sources` disappear from the output.
  void set_jwks(std::span<const JwksReport> sources) const;
};

// ------------------------------------------------------------ the filter

struct ObservedRoute {
  std::string name;
  // The services it can send to (several for weighted routes); empty for a
  // handler route.
  std::vector<std::string> services;
};

struct ObserveOptions {
  // Every route of the configuration, known when it is built, so that each
  // series exists before the first request. A request whose route is not
  // listed (no route matched) counts under route="unmatched".
  std::vector<ObservedRoute> routes;
  std::shared_ptr<AccessLog> access_log;  // null: no access log
  // The filter make_observe made for the configuration this one replaces
  // (null: none). A route it counted under the same name and services
  // keeps its series without looking them up again: with thousands of
  // routes, those look-ups were most of a reload's cost here.
  std::shared_ptr<const proxy::Filter> previous;
};

// The "observe" filter, to run as a global filter so that it sees every
// request, unrouted ones included. Its on_log records the request's
// metrics and, with a log, its access-log line. The service of a request
// is filters::RequestState::service, else the cluster of its last attempt;
// when that is not one of its route's services, the request counts under
// the route's only service, or, for a route with none or several, under
// service="" (a request refused before a service was chosen). A route
// listed twice merges its services. An unnamed route is an error.
Result<std::shared_ptr<proxy::Filter>> make_observe(const GatewayMetrics& metrics,
                                                    ObserveOptions options);

}  // namespace portico::detail

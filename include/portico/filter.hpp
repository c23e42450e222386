// The filter chain: the extension point every policy is built on.
//
// A Filter is shared, immutable configuration (a JWT verifier, a rate
// limiter's settings, a header rule); everything that belongs to one request
// lives in the RequestContext the proxy passes to each phase. A server has a
// global chain (ServerOptions::filters) and each route its own
// (RouteOptions::filters); a request runs the global filters, then its
// route's, in order. The response phases run in the reverse order over the
// filters whose on_request_headers ran, so a filter wraps the ones after it.
// docs/lifecycle.md draws the order.
//
// Every phase returns a FilterStatus:
//   next     go on with the next filter (then send the request upstream, or
//            the response to the client);
//   respond  answer now with what ctx.respond() set; later filters' request
//            phases and the upstream are skipped;
//   pause    stop the chain here. Work that completes later on the loop (a
//            JWKS fetch, an external authorization call, a remote rate-limit
//            lookup) continues it through a ResumeHandle: resume() runs the
//            next filter, respond() answers. Nothing is read from the client
//            or the upstream side in the meantime.
//
// Bodies stream through untouched unless a filter asks to see one
// (buffer_request_body() / buffer_response_body() in the headers phase);
// then the whole body, up to the route's max_body_bytes, is collected and
// on_request_body / on_response_body run once with it, and may replace it.
//
// on_early_error runs instead of the request phases when the proxy answers
// a parsed request by itself before any filter saw it: no route matched
// (404, 405), the target is not a path (400), or the declared body is
// larger than the route allows (413). Every filter of the chain hears of
// it, in order, before the answer is written, so that what a filter
// records for the request (the request-id policy records its id) reaches
// the error body, the response headers it sets and on_log.
//
// on_log runs once for every filter of the chain of every request whose head
// was parsed, however it ended (answered, refused by a filter, failed
// upstream, client gone), after the last byte was written or the connection
// closed; an unrouted request (404, 405) has the global filters, then
// ServerOptions::unrouted_filters, as its chain. It is the place to release
// per-request state.
//
// Threading: phases run on the server's loop thread. A Filter may be shared
// by several servers (workers) and must then be safe to call from their
// threads at once; its per-request state belongs to one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/http.hpp"

typedef struct uv_loop_s uv_loop_t;  // <uv.h>

namespace portico::proxy {

enum class FilterStatus : std::uint8_t { next, respond, pause };

// Why no endpoint of a cluster could take a request, when that is why the
// proxy answered it by itself (503); `none` otherwise. For policies that
// degrade gracefully (a cached or static answer) on some causes only.
enum class Unavailability : std::uint8_t {
  none,
  no_endpoint,          // the cluster has none (configured or resolved)
  no_healthy_endpoint,  // health checks or outlier ejection took them all out
  breakers_open,        // every candidate's circuit breaker is open
  breakers_full,        // every candidate's breaker is at its concurrency threshold
};

class RequestContext;
struct Conn;
struct Exchange;

// Continues a paused chain. Cheap to copy. Safe to use after its request
// ended (it then does nothing), but not after the Server is destroyed; loop
// thread only.
class PORTICO_API ResumeHandle {
 public:
  ResumeHandle() = default;
  // The request is still waiting for this handle.
  bool pending() const noexcept;
  // The paused request's context (to edit headers before resuming), or null.
  RequestContext* context() const noexcept;
  // Runs the next filter.
  void resume() noexcept;
  // Answers the request (as ctx.respond() then FilterStatus::respond).
  void respond(int status, std::string_view body, std::span<const http::Header> headers = {});

 private:
  friend class RequestContext;
  Exchange* exchange_ = nullptr;
  std::uint64_t serial_ = 0;
};

// How a request ended, for on_log.
struct RequestOutcomeInfo {
  int status = 0;  // sent to the client; 0 if none was
  std::uint64_t request_body_bytes = 0;
  std::uint64_t response_body_bytes = 0;
  Duration duration{};           // from the head's arrival to the end
  std::string_view upstream;     // "10.0.0.2:8080", empty when none was used
  std::string_view cluster;      // the cluster of the last attempt, empty when none
  Duration upstream_duration{};  // the last attempt, from its start to its end
  std::string_view error;        // the cause of a proxy error, else empty
  std::uint32_t attempts = 0;    // upstream attempts (retries included)
  bool client_aborted = false;   // the connection closed before the end
};

// One request as the filters see it. Valid during a phase call; keep a
// ResumeHandle, not a pointer, across a pause.
class PORTICO_API RequestContext {
 public:
  // --- what arrived
  const http::RequestHead& request() const noexcept;
  std::string_view path() const noexcept;   // normalised, without the query
  std::string_view query() const noexcept;  // without '?'
  // The client's address: the peer's, or, when the peer is a trusted proxy,
  // the nearest untrusted address of X-Forwarded-For.
  std::string_view client_address() const noexcept;
  std::uint64_t request_id() const noexcept;
  std::string_view route_name() const noexcept;
  std::optional<std::string_view> param(std::string_view name) const noexcept;
  TimePoint start_time() const noexcept;

  // --- the request headed upstream (request phases only). Names and values
  // are copied. Hop-by-hop and framing headers cannot be set.
  void set_request_header(std::string_view name, std::string_view value);
  void add_request_header(std::string_view name, std::string_view value);
  void remove_request_header(std::string_view name);
  // Replaces the path and query sent upstream ("/v2/items?id=3").
  void set_upstream_path(std::string_view path_and_query);
  // The path and query as they will be sent upstream: the last
  // set_upstream_path() of this request, else the target as the client sent
  // it (not normalised). A filter that rewrites the target builds on this,
  // not on request().path, so that its edit keeps those of the filters
  // before it. Valid until the next set_upstream_path().
  std::string_view upstream_path() const noexcept;
  // The request header as the upstream will see it (edits applied).
  std::optional<std::string_view> request_header(std::string_view name) const noexcept;

  // --- the response (response phases)
  int response_status() const noexcept;
  // Why the proxy answered by itself ("no healthy endpoint", "circuit
  // breaker open", a timeout...) when it did; empty for an upstream's
  // response, a handler's or a filter's.
  std::string_view proxy_error() const noexcept;
  // Whether that answer was for want of an endpoint, and why.
  Unavailability unavailability() const noexcept;
  std::optional<std::string_view> response_header(std::string_view name) const noexcept;
  void set_response_status(int status);
  void set_response_header(std::string_view name, std::string_view value);
  void add_response_header(std::string_view name, std::string_view value);
  void remove_response_header(std::string_view name);

  // --- bodies (see the top of this file)
  void buffer_request_body() noexcept;       // in on_request_headers
  void buffer_response_body() noexcept;      // in on_request_headers or on_response_headers
  void replace_body(std::string_view body);  // in on_request_body / on_response_body

  // --- answering locally: then return FilterStatus::respond. Content-Length
  // is set; response phases of the filters that ran still see the answer.
  void respond(int status, std::string_view body, std::span<const http::Header> headers = {});

  // --- pausing: take a handle, return FilterStatus::pause.
  ResumeHandle pause_handle() noexcept;

  // --- per-request state of the running filter: one pointer slot per filter
  // in the chain, null at the start of each request. Memory from allocate()
  // lives until the request ends (no destructor runs); use it for state
  // that needs none, or release your own in on_log.
  void* state() const noexcept;
  void set_state(void* state) noexcept;
  void* allocate(std::size_t size, std::size_t align = alignof(std::max_align_t));
  // One pointer shared by every filter of the request (null at its start):
  // how filters that cooperate pass what they learnt (an authenticated
  // consumer, a trace id) to the ones after them. Whoever sets it defines
  // what it points to; memory from allocate() suits it.
  void* shared_state() const noexcept;
  void set_shared_state(void* state) noexcept;
  // The index of the worker (workers.hpp) serving the request, 0 for a
  // Server of its own: for filters that keep one structure per thread.
  unsigned worker_index() const noexcept;
  // The loop the request runs on: where a paused filter's asynchronous
  // work must resume it (uv_async_t, a timer).
  uv_loop_t* loop() const noexcept;

  // --- on_log
  const RequestOutcomeInfo& outcome() const noexcept;

  RequestContext(const RequestContext&) = delete;
  RequestContext& operator=(const RequestContext&) = delete;

 private:
  friend struct Exchange;
  explicit RequestContext(Exchange* x) noexcept : x_(x) {}
  Exchange* x_;
};

// Every phase defaults to pass-through: a filter overrides what it needs.
class Filter {
 public:
  virtual ~Filter() = default;
  // A short name for logs and errors ("jwt", "rate_limit").
  virtual std::string_view name() const noexcept { return "filter"; }
  virtual FilterStatus on_request_headers(RequestContext&) { return FilterStatus::next; }
  virtual FilterStatus on_request_body(RequestContext&, std::string_view /*body*/) {
    return FilterStatus::next;
  }
  virtual FilterStatus on_response_headers(RequestContext&) { return FilterStatus::next; }
  virtual FilterStatus on_response_body(RequestContext&, std::string_view /*body*/) {
    return FilterStatus::next;
  }
  // The proxy is answering with an error of its own before the request
  // phases (see the top of this file); response_status() and proxy_error()
  // say which. The filter may record state and set response headers; it
  // cannot answer, pause or change the status.
  virtual void on_early_error(RequestContext&) {}
  virtual void on_log(const RequestContext&) {}
};

}  // namespace portico::proxy

// The HTTP/1.1 server and reverse proxy on a libuv loop.
//
// A Server listens on one address, parses requests strictly (http.hpp),
// routes them (router.hpp) and sends each to its route's target: an upstream
// cluster (the request streams to a pooled keep-alive connection and the
// response streams back) or an in-process handler (a callback in the host
// program). Errors are answered with the right status and a short body
// naming the cause, in the format the host chooses (ServerOptions::
// error_formatter); nothing aborts the host.
//
// Keep-alive after an error of the proxy's own: the connection stays open
// when the request's framing says where it ends and the whole request was
// read (a 404 or 405 for a request without a body, a 502, 503 or 504 once
// the body was read or buffered), as Envoy and NGINX do. It is closed when
// what follows on it cannot be trusted: a head that does not parse (400,
// 414, 431...), a smuggling shape, a head that did not arrive in time
// (408), a target the proxy cannot read as a path, or a body that was not
// read to its end (413, an error while the body streamed).
//
// The embedding contract: the Server runs on the uv_loop_t the host gives it,
// installs no signal handlers, starts no threads, and is stopped with stop(),
// after which every handle it opened is closed and it may be destroyed while
// the host's loop keeps running.
//
// Threading: a Server and everything it creates belong to its loop's thread,
// except where a method says otherwise: Server::prepare() builds a route
// table on any thread, so that a reload's expensive part never runs on the
// loop (see Server::reload).
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "portico/balancer.hpp"
#include "portico/breaker.hpp"
#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/http.hpp"
#include "portico/result.hpp"
#include "portico/router.hpp"

namespace portico::proxy {

// How an in-process handler answers. send() may be called once, before the
// handler returns; Content-Length is added (do not pass it, nor hop-by-hop
// headers). The views passed to send() are copied before it returns.
class Reply {
 public:
  virtual ~Reply() = default;
  virtual void send(int status, std::span<const http::Header> headers, std::string_view body) = 0;
  // A path parameter of the route that matched ("{id}"), as
  // RequestContext::param() gives filters; nullopt when it has none of that
  // name. The view lives until the request ends.
  virtual std::optional<std::string_view> param(std::string_view name) const noexcept {
    (void)name;
    return std::nullopt;
  }
};

// An in-process upstream. `body` is the whole request body (bounded by the
// route's max_body_bytes). The request is as the filters left it: their
// header edits and set_upstream_path() applied (`path` then holds the new
// path and query). Called on the loop thread.
using Handler =
    std::function<void(const http::RequestHead& request, std::string_view body, Reply& reply)>;

struct Endpoint {
  // A numeric IPv4 or IPv6 address, or a host name: a name is resolved with
  // getaddrinfo on the loop's thread pool when the server starts and again
  // every ClusterOptions::dns_refresh, and each address it yields is an
  // endpoint of its own (with this weight).
  std::string address;
  std::uint16_t port = 0;
  std::uint32_t weight = 1;  // 1..kMaxEndpointWeight (balancer.hpp)
};

// Active health checking: an HTTP/1.1 GET of `path` to every endpoint each
// `interval`. An endpoint turns unhealthy after `unhealthy_threshold` failed
// checks in a row (a connect error, a timeout, or a status outside
// [min_status, max_status]) and healthy again after `healthy_threshold`
// passing ones. Endpoints start healthy. Unhealthy endpoints get no traffic
// unless too few are left (the balancer's panic threshold).
struct HealthCheckOptions {
  std::string path;  // empty: no active health checking
  std::string host;  // the Host header; empty: the endpoint's address
  Duration interval = std::chrono::seconds(5);
  Duration timeout = std::chrono::seconds(2);
  std::uint32_t healthy_threshold = 2;
  std::uint32_t unhealthy_threshold = 3;
  int min_status = 200;
  int max_status = 299;
};

// When a failed attempt is tried again, on another endpoint where there is
// one. Only safe cases are retried: a connection that could not be opened,
// a pooled connection that turned out closed, or, for an idempotent method
// (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), a request whose bytes were not
// all sent or whose response status is in `retry_on_statuses`.
struct RetryOptions {
  std::uint32_t max_retries = 1;       // attempts after the first; 0: never retry
  std::vector<int> retry_on_statuses;  // e.g. {502, 503, 504}; empty: none
  // Before retry k the request waits a random time in
  // [0, min(backoff_max, backoff_base * 2^(k-1))] ("full jitter").
  Duration backoff_base = std::chrono::milliseconds(25);
  Duration backoff_max = std::chrono::milliseconds(250);
  // Retries in flight are at most budget_percent of the requests in flight
  // to the cluster, or budget_min_concurrent, whichever is larger, so
  // retries cannot multiply the load on a cluster in an outage.
  double budget_percent = 20.0;
  std::uint32_t budget_min_concurrent = 3;
  // A request body with a Content-Length up to this many bytes is read whole
  // before the first attempt and kept for retries. Larger bodies and chunked
  // ones stream, and are retried only after a failed connect (when none of
  // the body was consumed).
  std::size_t replay_buffer_bytes = 64 * 1024;
};

struct ClusterOptions {
  std::string name;
  std::vector<Endpoint> endpoints;
  // Keep-alive pool per endpoint. Idle pooled connections hold no buffer,
  // so a pool as large as the peak concurrency is cheap; a smaller one makes
  // every request beyond it open (and close) a connection.
  std::size_t max_idle_per_endpoint = 1024;
  Duration idle_timeout = std::chrono::seconds(60);
  std::uint32_t max_requests_per_connection = 0;  // 0: no limit
  Duration connect_timeout = std::chrono::seconds(2);
  // From the last request byte sent to the response head.
  Duration response_timeout = std::chrono::seconds(30);
  // Between two reads of the response once it has started.
  Duration idle_between_bytes_timeout = std::chrono::seconds(30);
  BalancerPolicy policy = BalancerPolicy::round_robin;
  OutlierConfig outlier;                 // passive: failures in a row eject an endpoint
  std::optional<BreakerConfig> breaker;  // per endpoint; nullopt: none
  HealthCheckOptions health_check;       // active
  RetryOptions retry;
  Duration dns_refresh = std::chrono::seconds(30);  // for endpoints given by name
};

struct RouteOptions {
  std::string name;
  std::string path;  // a router pattern: "/api/{id}", "/static/**"
  std::string host;  // empty: any host
  MethodSet methods = MethodSet::any();
  // Header and query conditions (router.hpp): header-selected versions such
  // as `X-API-Version: 2` are routes of the same path with a predicate.
  std::vector<Predicate> predicates;
  // The target: an in-process handler, or the name of a cluster.
  std::variant<Handler, std::string> target;
  // Canary and blue-green: when not empty, each request goes to one of
  // these clusters in proportion to the weights (a weight of 0 keeps a
  // cluster configured but idle), and `target` is not used.
  std::vector<WeightedTarget> weighted_clusters;
  // Larger request bodies are refused with 413; also the bound of a body a
  // filter asks to see whole (request or response).
  std::uint64_t max_body_bytes = 8u << 20;
  // Run after the server's global filters, in order (filter.hpp).
  std::vector<std::shared_ptr<Filter>> filters;
};

// Writes the body of an answer the proxy makes itself (no route, a body
// too large, an upstream that refused or timed out...) into `body`, and
// returns its Content-Type. `cause` says what went wrong in a sentence
// ("no route matches this request"); `request` is the request as far as it
// arrived (its head may be empty when it did not parse) and, once the
// filters ran, carries what they learnt (RequestContext::shared_state),
// such as the request id a policy set. `body` arrives empty and keeps its
// capacity from one request to the next, so appending to it does not
// allocate once warm. The returned view must outlive the call (a literal).
// Called on the loop thread; an exception from it is caught and the
// default body sent instead.
using ErrorFormatter = std::function<std::string_view(const RequestContext& request, int status,
                                                      std::string_view cause, std::string& body)>;

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: an ephemeral port (see Server::port())
  int backlog = 1024;
  http::Limits limits;
  Duration header_timeout = std::chrono::seconds(10);  // 408 and close
  Duration idle_timeout = std::chrono::seconds(60);    // between keep-alive requests
  // From the first byte of a request to the end of its response; 0: none.
  // Expiry answers 504 if the response has not started, else closes.
  Duration request_timeout = Duration::zero();
  // Peers (CIDRs such as "10.0.0.0/8" or single addresses) whose
  // X-Forwarded-For is believed. From any other peer the header is replaced,
  // so clients cannot choose the address upstreams see.
  // Each entry must be a network address: "10.0.0.1/8" (bits set after the
  // prefix) is refused, as a typo for another prefix, rather than read as
  // 10.0.0.0/8.
  std::vector<std::string> trusted_proxies;
  // Binds the listener with SO_REUSEPORT, so that several servers (one per
  // worker thread) can share a port and the kernel spreads connections.
  bool reuse_port = false;
  // Filters read it through RequestContext::worker_index() to keep one
  // structure per thread. Workers (workers.hpp) numbers its workers from
  // this value up, so several Workers can share filters without sharing
  // indexes.
  unsigned worker_index = 0;
  std::vector<ClusterOptions> clusters;
  std::vector<RouteOptions> routes;
  // Optional: a router that already holds `routes`, so that they are not
  // added to a new one again (a configuration layer that built a router to
  // check its routes for conflicts hands it over; several servers and
  // reloads may share one, as it is only read). Route i of the router must
  // be routes[i], as RouteSpec{name, host, path, methods, predicates,
  // weighted_clusters}, names included; anything else is refused with the
  // first route that differs. Null: the router is built from `routes`.
  std::shared_ptr<const Router> router;
  // Run for every request, before the route's filters. Their on_log runs
  // for unrouted requests (404, 405, 400) too.
  // Run for every request, before the route's filters. For unrouted
  // requests (404, 405, 400) their on_early_error and on_log run.
  std::vector<std::shared_ptr<Filter>> filters;
  // Filters that hear only of unrouted requests, after `filters`: their
  // on_early_error and on_log run for them, and nothing else. For policies
  // a host puts in every route's chain rather than in `filters` (so that a
  // route can replace or switch them off) but that should still mark the
  // answers no route gives: the gateway puts its global plugins here, so a
  // 404 carries the request id its request-id policy would have used.
  std::vector<std::shared_ptr<Filter>> unrouted_filters;
  // The body of the proxy's own error answers; empty: text/plain,
  // "<cause> (request <RequestContext::request_id()>)\n". Kept across
  // reload() like the listener.
  ErrorFormatter error_formatter;
};

struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_active = 0;
  std::uint64_t reloads = 0;
  std::uint64_t requests = 0;
  std::uint64_t upstream_connections_opened = 0;
  std::uint64_t upstream_connections_reused = 0;
};

// The state of one upstream endpoint, for metrics and admin pages.
struct EndpointStatus {
  std::string cluster;
  std::string endpoint;  // "10.0.0.2:8080"
  bool healthy = true;   // by the active health check
  bool ejected = false;  // by passive outlier detection
  BreakerState breaker = BreakerState::closed;
  std::uint32_t active_requests = 0;
  std::uint32_t idle_connections = 0;
  std::uint64_t ejections = 0;  // times outlier detection ejected it
};

class ServerImpl;
struct RouteTable;
struct RouteSet;
class WorkersImpl;

// Clusters, routes and global filters validated and compiled for one Server
// (Server::prepare), waiting to be installed on it. Move-only. Holds no
// loop handle, so it may be made, moved and destroyed on any thread; one
// never installed costs nothing but its memory.
class PORTICO_API PreparedRoutes {
 public:
  PreparedRoutes() noexcept;
  ~PreparedRoutes();
  PreparedRoutes(PreparedRoutes&&) noexcept;
  PreparedRoutes& operator=(PreparedRoutes&&) noexcept;
  PreparedRoutes(const PreparedRoutes&) = delete;
  PreparedRoutes& operator=(const PreparedRoutes&) = delete;

  // False once installed (or moved from, or default-made).
  explicit operator bool() const noexcept { return table_ != nullptr; }

 private:
  friend class Server;
  friend class WorkersImpl;
  explicit PreparedRoutes(std::unique_ptr<RouteTable> table) noexcept;
  std::unique_ptr<RouteTable> table_;
};

class PORTICO_API Server {
 public:
  // Validates the options (routes, clusters, addresses) without touching
  // the network.
  static Result<std::unique_ptr<Server>> create(uv_loop_t* loop, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens. Errors (address in use, bad address) are returned.
  Status start();
  // The bound port (after start()).
  std::uint16_t port() const noexcept;

  // Stops accepting, lets requests in flight finish for up to `drain`, then
  // closes every connection and handle; `on_stopped` runs on the loop when
  // all are closed. The Server may be destroyed from then on (or before
  // start()).
  void stop(Duration drain, std::function<void()> on_stopped = {});

  // Replaces the clusters, routes, global and unrouted filters with those
  // of `options` (its other fields are ignored: the listener, limits and
  // timeouts stay). The new set is validated first; on error nothing
  // changes. Requests in flight finish on the set they started with, and
  // keep-alive connections stay open: only requests that start after the
  // call see the new set. Clusters start afresh (new pools, endpoints
  // healthy until checked). Loop thread only.
  //
  // reload() is prepare() then install() on the loop's thread, so the
  // loop serves nothing while the routes compile: with many routes, call
  // prepare() on another thread and only install() on the loop.
  Status reload(ServerOptions options);

  // The expensive half of a reload: validates and compiles the clusters,
  // routes, global and unrouted filters of `options` (the other fields are
  // ignored) into a table for this server. Any thread, also while the loop
  // serves requests: it reads nothing the loop changes and opens no handle.
  // Errors are those reload() returns, and then nothing changed.
  Result<PreparedRoutes> prepare(ServerOptions options) const;
  // The cheap half, on the loop thread: new requests use `routes` (made by
  // prepare() on this server), whose clusters start their timers, health
  // checks and name lookups; the replaced table retires as in reload(), and
  // its routes are freed on the loop's thread pool, not on the loop. Fails
  // (changing nothing) for routes prepared on another Server, already
  // installed ones, or a stopping server. Installed routes are taken
  // (`routes` is left empty); refused ones stay with the caller.
  Status install(PreparedRoutes&& routes);
  // The reloads so far (0: the routes of create()).
  std::uint64_t generation() const noexcept;

  // Counters, readable from any thread while the server runs (each is
  // written by the loop thread only and read without tearing).
  ServerStats stats() const noexcept;
  // Every endpoint of the current clusters. Loop thread only.
  std::vector<EndpointStatus> endpoint_status() const;

 private:
  friend class WorkersImpl;
  // Workers compile a set once and share it among their servers.
  static Result<std::unique_ptr<Server>> create(uv_loop_t* loop, ServerOptions options,
                                                std::shared_ptr<const RouteSet> set);
  Result<PreparedRoutes> prepare(std::shared_ptr<const RouteSet> set) const;

  explicit Server(std::unique_ptr<ServerImpl> impl);
  std::unique_ptr<ServerImpl> impl_;
};

}  // namespace portico::proxy

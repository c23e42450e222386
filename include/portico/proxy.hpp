// The HTTP/1.1 server and reverse proxy on a libuv loop.
//
// A Server listens on one address, parses requests strictly (http.hpp),
// routes them (router.hpp) and sends each to its route's target: an upstream
// cluster (the request streams to a pooled keep-alive connection and the
// response streams back) or an in-process handler (a callback in the host
// program). Errors are answered with the right status and a short body
// naming the cause; nothing aborts the host.
//
// The embedding contract: the Server runs on the uv_loop_t the host gives it,
// installs no signal handlers, starts no threads, and is stopped with stop(),
// after which every handle it opened is closed and it may be destroyed while
// the host's loop keeps running.
//
// Threading: a Server and everything it creates belong to its loop's thread.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "portico/clock.hpp"
#include "portico/export.hpp"
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
};

// An in-process upstream. `body` is the whole request body (bounded by the
// route's max_body_bytes). Called on the loop thread.
using Handler =
    std::function<void(const http::RequestHead& request, std::string_view body, Reply& reply)>;

struct Endpoint {
  std::string address;  // numeric IPv4 or IPv6
  std::uint16_t port = 0;
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
  // From the last request byte sent to the response head; then between reads.
  Duration response_timeout = std::chrono::seconds(30);
};

struct RouteOptions {
  std::string name;
  std::string path;  // a router pattern: "/api/{id}", "/static/**"
  std::string host;  // empty: any host
  MethodSet methods = MethodSet::any();
  // The target: an in-process handler, or the name of a cluster.
  std::variant<Handler, std::string> target;
  // Larger request bodies are refused with 413.
  std::uint64_t max_body_bytes = 8u << 20;
};

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: an ephemeral port (see Server::port())
  int backlog = 1024;
  http::Limits limits;
  Duration header_timeout = std::chrono::seconds(10);  // 408 and close
  Duration idle_timeout = std::chrono::seconds(60);    // between keep-alive requests
  std::vector<ClusterOptions> clusters;
  std::vector<RouteOptions> routes;
};

struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t requests = 0;
  std::uint64_t upstream_connections_opened = 0;
  std::uint64_t upstream_connections_reused = 0;
};

class ServerImpl;

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

  const ServerStats& stats() const noexcept;

 private:
  explicit Server(std::unique_ptr<ServerImpl> impl);
  std::unique_ptr<ServerImpl> impl_;
};

}  // namespace portico::proxy

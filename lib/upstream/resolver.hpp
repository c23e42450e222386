// Periodic DNS resolution of an endpoint given by name.
//
// Why: upstreams behind a name (a service, a load balancer, a container
// whose address changes on restart) move, so the name is resolved again
// every refresh and the cluster follows what it yields rather than what it
// yielded at start-up. Lookups run on libuv's thread pool (getaddrinfo
// blocks), so the loop never waits on DNS.
//
// The addresses come sorted (IPv4 before IPv6, then by address) and without
// duplicates: round-robin DNS rotates its answers, and a fixed order lets the
// caller compare one result with the last and touch only what changed.
// AI_ADDRCONFIG is not used: it hides ::1 and 127.0.0.1 on hosts whose only
// addresses are loopback ones, where upstreams on loopback are common.
//
// Threading: every call, and every callback, on the loop's thread.
#pragma once

#include <netdb.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "portico/clock.hpp"

namespace portico::detail {

class Resolver {
 public:
  // Status 0 and the addresses (each with the port set; at least one), or a
  // libuv error code (UV_EAI_*) and no addresses. The span is valid during
  // the call only. The callback may call stop().
  using Callback = std::function<void(int status, std::span<const sockaddr_storage> addresses)>;

  Resolver(uv_loop_t* loop, std::string host, std::uint16_t port, Duration refresh,
           Callback on_result);
  // Only once stop() has completed, or if start() was never called.
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves now, then again `refresh` after each result (at least 1 ms).
  // Results always arrive from the loop, never from within start().
  void start();
  // Cancels a pending lookup: on_result is not called again. A lookup that
  // is already running cannot be cancelled, so `on_closed` may have to wait
  // for it; it runs before stop() returns if nothing was open. Later calls to
  // stop() are ignored.
  void stop(std::function<void()> on_closed);

 private:
  static void on_timer(uv_timer_t* timer);
  static void on_timer_closed(uv_handle_t* handle);
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* result);

  void look_up();
  int collect(const addrinfo* result);
  void report(int status);
  void maybe_closed();

  uv_loop_t* loop_;
  std::string host_;
  std::uint16_t port_;
  std::uint64_t refresh_ms_;
  Callback on_result_;

  uv_timer_t timer_{};
  uv_getaddrinfo_t lookup_{};
  std::vector<sockaddr_storage> addresses_;
  int deferred_error_ = 0;  // a lookup that failed to start, reported from the timer
  bool started_ = false;
  bool timer_open_ = false;
  bool lookup_pending_ = false;
  bool stopping_ = false;
  bool closed_ = false;
  std::function<void()> on_closed_;
};

}  // namespace portico::detail

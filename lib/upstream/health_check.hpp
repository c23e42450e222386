// Active HTTP health checks of upstream endpoints.
//
// Why active checks: passive signals (failed requests, outlier ejection)
// notice an endpoint is down only after traffic was sent to it, and never
// notice that it is back while it gets none. A probe per endpoint on its own
// schedule settles both directions without risking client requests. Each
// check opens a fresh connection, so it meets what a new upstream connection
// would (a full accept queue, a refused port) rather than a pooled socket
// that happens to still be open, and it asks for `Connection: close` so the
// upstream frees it at once.
//
// A check fails on a connect error, a close or reset before a complete
// response head, no head within `timeout` of the connect's start, a head the
// strict parser rejects (or larger than the check's one buffer), or a status
// outside [min_status, max_status]. Thresholds keep one lost check from flapping
// an endpoint out of rotation and one lucky check from flapping it back.
//
// Threading: every call, and every callback, on the loop's thread.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "portico/proxy.hpp"

namespace portico::detail {

class HealthChecker {
 public:
  // Called when a target crosses a threshold (never for a check that leaves
  // its state as it was). It may call any member, including stop() and
  // remove_target() of the target it reports.
  using Callback = std::function<void(std::uint64_t target_id, bool healthy)>;

  // Options are copied and taken as they are; values that make no sense
  // (zero interval, timeout or thresholds) act as their smallest useful one.
  HealthChecker(uv_loop_t* loop, const proxy::HealthCheckOptions& options, Callback on_change);
  // Only once stop() has completed, or if start() was never called.
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // `label` ("1.2.3.4:80", "[::1]:8080") is the Host header when the options
  // name none. A target starts healthy and is first checked in the next
  // round. An id already present is replaced (as if removed, then added).
  void add_target(std::uint64_t id, const sockaddr_storage& addr, std::string label);
  // Aborts a check of it that is in flight; its result is never reported.
  void remove_target(std::uint64_t id);

  // The first round runs on the loop's next turn, then one every interval. A
  // target whose previous check is still running (timeout > interval) sits
  // out that round, so each target has at most one check in flight.
  void start();
  // Aborts the checks in flight and closes every handle; `on_closed` runs
  // once all are closed (before stop() returns if none was open). Later
  // calls to stop() are ignored.
  void stop(std::function<void()> on_closed);

  // False for an id that is not a target.
  bool healthy(std::uint64_t id) const;
  std::uint64_t checks_started() const noexcept { return checks_started_; }

 private:
  struct Probe;
  struct Target {
    std::uint64_t id = 0;
    sockaddr_storage addr{};
    // Shared with the probe writing it, which may outlive the target.
    std::shared_ptr<const std::string> request;
    Probe* probe = nullptr;  // the check in flight
    bool healthy = true;
    std::uint32_t passes = 0;    // in a row, while unhealthy
    std::uint32_t failures = 0;  // in a row, while healthy
  };

  static void on_round(uv_timer_t* timer);
  static void on_round_timer_closed(uv_handle_t* handle);
  static void on_probe_handle_closed(uv_handle_t* handle);
  static void on_connected(uv_connect_t* req, int status);
  static void on_deadline(uv_timer_t* timer);
  static void alloc_head(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

  void run_round();
  void start_probe(Target& target);
  void read_head(Probe& probe, ssize_t nread);
  void finish(Probe& probe, bool passed);
  void abandon(Probe& probe);
  void record(Target& target, bool passed);
  void release(Probe* probe);
  void maybe_closed();

  uv_loop_t* loop_;
  proxy::HealthCheckOptions options_;
  std::uint64_t interval_ms_;
  std::uint64_t timeout_ms_;
  std::uint32_t healthy_threshold_;
  std::uint32_t unhealthy_threshold_;
  Callback on_change_;

  std::unordered_map<std::uint64_t, Target> targets_;
  std::unordered_set<Probe*> running_;  // probes not yet finished
  std::vector<std::uint64_t> round_ids_;
  std::size_t open_probes_ = 0;  // probes whose handles are not all closed
  std::uint64_t checks_started_ = 0;

  uv_timer_t round_timer_{};
  bool started_ = false;
  bool round_timer_open_ = false;
  bool stopping_ = false;
  bool closed_ = false;
  std::function<void()> on_closed_;
};

}  // namespace portico::detail

// The admin API: a proxy::Server of its own, on its own listener (loopback
// by default), whose routes are in-process handlers:
//
//   GET  /metrics   the Prometheus text format (version 0.0.4)
//   GET  /status    {"version", "uptime_seconds", "workers", "connections", "generation",
//                    "jwks": [one object per JWKS URL jwt-auth fetches]}
//   GET  /config    the effective configuration, secrets redacted
//   GET  /routes    the configured routes
//   POST /reload    200 {"reloaded": true, "generation": N}
//                   400 {"reloaded": false, "errors": ["path: message", ...]}
//
// Another method on those paths answers 405 (with Allow) and any other path
// 404, both in the policies' JSON error shape ({"error", "request_id"}).
// What the answers contain comes from an AdminBackend, which the gateway
// implements; this file knows HTTP, the backend knows the gateway.
//
// Threading: the handlers, and so every backend call, run on the admin
// server's loop thread, one at a time; the backend synchronises with the
// workers itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../config/json_reader.hpp"
#include "../filters/jwks_status.hpp"
#include "portico/clock.hpp"
#include "portico/proxy.hpp"

namespace portico::detail {

struct AdminReload {
  bool reloaded = false;
  std::uint64_t generation = 0;         // the configuration now serving
  std::vector<ConfigProblem> problems;  // why it was refused; empty when reloaded
};

class AdminBackend {
 public:
  virtual ~AdminBackend() = default;
  virtual std::string metrics_text() = 0;  // Registry::render()
  virtual std::string status_json() = 0;   // format_status_json() suits it
  virtual std::string config_json() = 0;   // a JSON document, secrets replaced
  virtual std::string routes_json() = 0;   // a JSON array
  // Validates and swaps a new configuration; the old one keeps serving when
  // it is refused. `body` is POST /reload's body: empty means "read the
  // configured source again"; a backend that takes no document in the body
  // refuses a non-empty one with a problem.
  virtual AdminReload reload(std::string_view body) = 0;
};

struct AdminOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: an ephemeral port
  // The largest POST /reload body.
  std::uint64_t max_body_bytes = 64u << 20;
};

// The admin server's options: give them to proxy::Server::create on the
// loop the admin API runs on. The backend is shared with every handler.
proxy::ServerOptions admin_server_options(const AdminOptions& options,
                                          std::shared_ptr<AdminBackend> backend);

struct AdminStatus {
  std::string_view version;
  Duration uptime{};
  unsigned workers = 0;
  std::uint64_t connections_active = 0;
  std::uint64_t connections_total = 0;
  std::uint64_t generation = 0;
  std::vector<JwksReport> jwks;  // the serving configuration's JWKS URLs
};

// {"version":"0.1.0","uptime_seconds":12.5,"workers":2,
//  "connections":{"active":3,"total":40},"generation":1,
//  "jwks":[{"source":"routes[0].plugins[0]","url":"https://idp/jwks","keys":2,
//           "fetches":{"ok":5,"error":1},"failing":false,
//           "last_success":"2024-05-01T12:00:00.123Z","last_failure":"...",
//           "last_error":"jwks https://idp/jwks: answered HTTP 503"}]}
// Times and last_error are null when there was none.
std::string format_status_json(const AdminStatus& status);

// {"reloaded":true,"generation":N} or {"reloaded":false,"generation":N,"errors":[...]}
std::string format_reload_json(const AdminReload& reload);

}  // namespace portico::detail

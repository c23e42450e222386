// The complete gateway: a declarative JSON configuration (docs/config.md)
// run on worker threads, with the built-in policies, the admin API
// (metrics, status, reload) and hot reload.
//
// Gateway is the assembly of the other headers: what portico-gateway runs,
// and what a host program embeds when it wants the configured gateway
// rather than the primitives one by one.
//
// The embedding contract: Gateway starts threads (the workers of each
// listener and one control thread for the admin listener and background
// fetches) but installs no signal handlers and never exits or aborts; the
// host decides when to reload() (on SIGHUP, say) and stop().
//
// Threading: every method may be called from any thread except the
// gateway's own (a filter or handler running inside it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/http.hpp"
#include "portico/result.hpp"

namespace portico::proxy {
class Reply;  // proxy.hpp
}  // namespace portico::proxy

namespace portico::gateway {

// A policy the host program brings: the configuration names it in any
// "plugins" list like a built-in ({"name": "audit", "config": {...}}), and
// each such entry builds one filter from its "config" object. This is how
// the C ABI attaches C filters; a C++ host may use it directly.
struct CustomPlugin {
  std::string name;  // must not be a built-in policy's name
  // Orders it among the built-ins (which use 300..1000): higher runs
  // earlier in the request phases.
  int priority = 0;
  // Builds the filter of one plugin entry from its "config" object as JSON
  // text ("{}" when the entry has none). An error is reported at the
  // entry's config path. Called on the gateway's control thread.
  std::function<Result<std::shared_ptr<proxy::Filter>>(std::string_view config_json)> build;
};

// An in-process upstream the configuration names from a service
// ({"name": "hello", "handler": "hello"}) instead of its endpoints. The
// same signature as proxy::Handler; called on the worker threads.
struct NamedHandler {
  std::string name;
  std::function<void(const http::RequestHead& request, std::string_view body, proxy::Reply& reply)>
      handler;
};

// Checks a configuration document without binding or starting anything:
// every problem, one per entry, as "json.path: message". Empty: valid.
PORTICO_API std::vector<std::string> check_config(std::string_view document);

struct GatewayOptions;
// The same, for a document that may name the custom plugins and handlers of
// `options`.
PORTICO_API std::vector<std::string> check_config(std::string_view document,
                                                  const GatewayOptions& options);

struct GatewayOptions {
  // The file the document came from: reload_file() reads it again.
  std::string config_path;
  // Replaces the listeners' ports (tests, the demo): port_overrides[i] for
  // listener i when present; 0 there picks an ephemeral port.
  std::vector<std::uint16_t> port_overrides;
  // The same for the admin listener; nullopt keeps the configured port.
  std::optional<std::uint16_t> admin_port;
  // Policies and handlers the configuration may name besides the built-in
  // ones; kept for reloads (a reloaded document may name them too).
  std::vector<CustomPlugin> plugins;
  std::vector<NamedHandler> handlers;
};

struct ReloadResult {
  std::uint64_t generation = 0;  // the configuration now serving
};

class GatewayImpl;

class PORTICO_API Gateway {
 public:
  // Reads and validates `document`, builds every policy, binds every
  // listener and starts serving. Errors list every problem, one per line
  // ("routes[3].paths[0]: pattern has an unclosed '{'"), or say which
  // listener could not be bound.
  static Result<std::unique_ptr<Gateway>> start(std::string_view document,
                                                GatewayOptions options = {});
  // Stops with no drain if stop() was not called.
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Validates the new document and swaps it in atomically: requests in
  // flight finish on the configuration they started with, no connection is
  // dropped. An invalid document leaves the running one in place and the
  // error lists its problems. Listener and admin settings need a restart:
  // a document that changes them is refused.
  Result<ReloadResult> reload(std::string_view document);
  // reload() with the contents of GatewayOptions::config_path.
  Result<ReloadResult> reload_file();

  // The bound port of listener `index` (in the order of `listeners`).
  std::uint16_t port(std::size_t index = 0) const noexcept;
  // The admin listener's port; 0 when it is disabled.
  std::uint16_t admin_port() const noexcept;
  std::uint64_t generation() const noexcept;
  // The configured server.drain_timeout of the document now serving: what
  // a host passes to stop() when it has no better idea.
  Duration drain_timeout() const noexcept;
  // GET /metrics, for hosts that expose it themselves.
  std::string metrics_text();

  // Graceful stop: stops accepting, lets requests in flight finish for up
  // to `drain`, then closes everything and joins the threads. Idempotent.
  void stop(Duration drain);

 private:
  explicit Gateway(std::unique_ptr<GatewayImpl> impl);
  std::unique_ptr<GatewayImpl> impl_;
};

}  // namespace portico::gateway

// The built-in policies by name, for configuration files: each entry reads
// its plugin's JSON config (reporting problems at their JSON path) and
// builds the filter.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <span>
#include <string_view>

#include "../config/json_reader.hpp"
#include "portico/filter.hpp"
#include "portico/filters/consumers.hpp"
#include "portico/gateway.hpp"
#include "portico/metrics.hpp"

namespace portico::detail {

class JwksSource;

// What a plugin may use besides its own config.
struct PluginEnv {
  std::shared_ptr<const filters::Consumers> consumers;  // never null (may be empty)
  unsigned workers = 1;  // worker threads that will call the filter (worker_index() < workers)
  // A loop on a thread of the gateway's own, for background work (fetching a
  // JWKS). Null when checking a config without running it: then nothing
  // may be started.
  uv_loop_t* control_loop = nullptr;
  // The counter a policy increments when it refuses a request for a limit
  // (portico_rate_limit_rejections_total{scope}); empty: no metrics.
  std::function<metrics::Counter(std::string_view scope)> rejection_counter;
  // Told of every JWKS URL a plugin fetches from (jwt-auth's jwks_url), with
  // the plugin entry's path ("routes[2].plugins[0]"), so that the gateway
  // can show how its fetches go. Empty: nobody asks.
  std::function<void(std::string_view source, std::shared_ptr<JwksSource> jwks)> jwks_started;
  // Runs a task on the control loop's thread (at once when called there).
  // The gateway destroys every plugin through it, so that a plugin with
  // handles on the control loop (a JWKS fetcher) is freed on that thread,
  // whichever worker drops the last reference. Empty: plugins are freed
  // where they are released.
  std::function<void(std::function<void()>)> post_to_control;
  // The host's own policies and handlers (GatewayOptions); null: none.
  const std::vector<gateway::CustomPlugin>* custom_plugins = nullptr;
  const std::vector<gateway::NamedHandler>* handlers = nullptr;
};

// The host's plugin named `name` in `env`, or null.
const gateway::CustomPlugin* find_custom_plugin(const PluginEnv& env,
                                                std::string_view name) noexcept;

struct PluginFactory {
  std::string_view name;  // "jwt-auth"
  // The default order: a higher priority runs earlier in the request phases.
  int priority;
  // Reads `config` (every field; finish() reports unknown ones) and builds
  // the filter; null when a problem was recorded.
  std::shared_ptr<proxy::Filter> (*build)(JsonObject& config, const PluginEnv& env);
};

std::span<const PluginFactory> plugin_factories() noexcept;
const PluginFactory* find_plugin(std::string_view name) noexcept;

// One per built-in policy, defined in its own file under lib/filters/.
std::shared_ptr<proxy::Filter> build_request_id(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_ip_restriction(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_cors(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_request_size_limiting(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_key_auth(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_jwt_auth(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_rate_limit(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_request_transformer(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_response_transformer(JsonObject&, const PluginEnv&);
std::shared_ptr<proxy::Filter> build_fallback(JsonObject&, const PluginEnv&);

}  // namespace portico::detail

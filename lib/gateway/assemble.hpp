// From a validated configuration model to what the proxy runs: clusters,
// routes with their filter chains, and every plugin instance built once.
//
// Plugin chains follow docs/config.md: for each plugin name the most
// specific entry wins (consumer on the route, consumer, route, service,
// global); a disabled entry switches the name off at its scope; the chain
// runs the route's `plugin_order` first, then the rest by default priority.
// Entries attached to consumers take effect once a consumer is known, so
// they apply to plugins that run after authentication (see
// ConsumerDispatch in assemble.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../config/gateway_config.hpp"
#include "../filters/registry.hpp"
#include "portico/proxy.hpp"

namespace portico::detail {

// A JWKS URL that a jwt-auth plugin of the configuration fetches from.
struct JwksSourceRef {
  std::string source;  // the plugin entry's JSON path: "routes[2].plugins[0]"
  std::shared_ptr<JwksSource> jwks;
};

struct AssembledConfig {
  std::vector<proxy::ClusterOptions> clusters;
  // Route i is route i of GatewayConfig::router; the proxy takes both.
  std::vector<proxy::RouteOptions> routes;
  // The global plugins' chain, for requests no route takes
  // (ServerOptions::unrouted_filters): a 404 gets its request id too.
  std::vector<std::shared_ptr<proxy::Filter>> unrouted_filters;
  std::shared_ptr<const filters::Consumers> consumers;
  std::vector<std::string> route_names;     // configured routes, in order
  std::vector<std::string> service_names;   // configured services, in order
  std::vector<JwksSourceRef> jwks_sources;  // in configuration order
};

// Builds every plugin entry of `config` (with `env`, whose consumers field
// is filled in here) and the proxy's clusters and routes. Problems go to
// `problems` at their JSON paths; the result is usable only when there
// are none.
AssembledConfig assemble_gateway(const GatewayConfig& config, PluginEnv env,
                                 ConfigProblems& problems);

// Builds every plugin entry of a configuration that has other problems,
// only to report the plugins' problems with them (nothing is started).
// `host` brings the host's plugins and handlers (GatewayOptions).
void check_plugins(const GatewayConfig& config, ConfigProblems& problems,
                   const PluginEnv& host = {});

}  // namespace portico::detail

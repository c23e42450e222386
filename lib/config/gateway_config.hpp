// The gateway's declarative configuration (docs/config.md): one JSON
// document read and validated into the options the proxy, the router and the
// policies take, so that the code that runs a gateway never sees JSON.
//
// read_gateway_config() checks everything it can without the network and
// without building a policy: types, ranges, durations, unknown fields,
// addresses and CIDRs, route patterns and conflicts (with the Router kept in
// GatewayConfig::router),
// names that refer to services, plans and consumers, the primitives' own
// validation (circuit breaker, outlier detection). Every problem goes to
// `problems` with its JSON path; the model is meant to be used only when
// there are none. Plugin configs are checked for shape only: the integrator
// builds them through lib/filters/registry.hpp, which reports unknown plugin
// names and bad plugin fields at PluginEntry::config_path.
//
// Threading: plain values; read on one thread, then shared read-only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "json_reader.hpp"
#include "portico/clock.hpp"
#include "portico/filters/consumers.hpp"
#include "portico/http.hpp"
#include "portico/proxy.hpp"
#include "portico/router.hpp"

namespace portico::detail {

// Where a plugin entry was attached. For one plugin name, the most specific
// entry that applies to a request wins: consumer_route, then consumer, then
// route, then service, then global (docs/config.md#precedence).
enum class PluginScope : std::uint8_t { global, service, route, consumer, consumer_route };

const char* plugin_scope_name(PluginScope scope) noexcept;

// One {"name", "config", "enabled"} entry of a "plugins" array.
struct PluginEntry {
  std::string name;
  // The entry's "config" object inside the document given to
  // read_gateway_config (a shared empty object when the entry has none).
  // Borrowed: valid while that document lives. Moving the document's
  // picojson::value keeps it valid (picojson keeps arrays and objects on the
  // heap); copying the document does not carry it over to the copy.
  const picojson::value* config = nullptr;
  std::string path;         // "routes[2].plugins[0]"
  std::string config_path;  // "routes[2].plugins[0].config", for the plugin's own problems
  // A disabled entry still takes part in precedence: on a route it turns a
  // global or service entry of the same name off for that route.
  bool enabled = true;
  PluginScope scope = PluginScope::global;
  // The service or route name or the consumer id; empty when global.
  std::string owner;
  // consumer_route only (an entry of a route's plugins with "consumer"):
  // the consumer id; `owner` is the route.
  std::string consumer;
};

struct ListenerConfig {
  std::string address = "127.0.0.1";  // a numeric IPv4 or IPv6 address
  std::uint16_t port = 8080;          // 0: an ephemeral port
  unsigned workers = 0;               // threads sharing the port; 0: one per core
};

struct AdminConfig {
  bool enabled = true;
  std::string address = "127.0.0.1";
  std::uint16_t port = 8001;
};

struct AccessLogConfig {
  bool enabled = true;
  std::string path;  // a file (appended to); empty: standard output
};

// The proxy::ServerOptions fields that do not depend on the listener.
struct ServerSettings {
  int backlog = 1024;
  http::Limits limits;
  Duration header_timeout = std::chrono::seconds(10);
  Duration idle_timeout = std::chrono::seconds(60);
  Duration request_timeout = Duration::zero();  // 0: none
  std::vector<std::string> trusted_proxies;     // validated CIDRs or addresses
  // How long a stop or a reload lets requests in flight finish.
  Duration drain_timeout = std::chrono::seconds(30);
};

struct ServiceConfig {
  proxy::ClusterOptions cluster;  // cluster.name is the service name
  // Not empty: served by the host's in-process handler of this name
  // (gateway::NamedHandler) instead of the cluster's endpoints.
  std::string handler;
  std::vector<PluginEntry> plugins;
};

// One path pattern of a route and what strip_path removes from a request
// path it matched: the pattern's static text before its first capture,
// without a trailing '/' ("/api/users/{id}" -> "/api/users", "/api/**" ->
// "/api", "/health" -> "/health").
struct RoutePath {
  std::string pattern;
  std::string strip_prefix;
};

// A piece of a rewrite template: literal text, or the value of a capture.
struct RewritePart {
  bool is_capture = false;
  std::string text;  // the literal, or the capture name ("*" for `/**`)
};

struct RouteConfig {
  std::string name;
  std::vector<RoutePath> paths;    // at least one
  std::vector<std::string> hosts;  // router host patterns; empty: any host
  MethodSet methods = MethodSet::any();
  std::vector<Predicate> predicates;  // header and query conditions
  // The services requests go to, in proportion to the weights (one entry of
  // weight 1 for "service"). Every name is a service of the config.
  std::vector<WeightedTarget> services;
  bool strip_path = false;
  std::string rewrite;                     // the template as written; empty: none
  std::vector<RewritePart> rewrite_parts;  // the template, parsed
  std::uint64_t max_body_bytes = 8u << 20;
  std::vector<PluginEntry> plugins;  // scope route or consumer_route
  // Plugins named here run first, in this order; the others that apply run
  // after them by default priority.
  std::vector<std::string> plugin_order;
};

struct ConsumerEntry {
  filters::ConsumerConfig consumer;
  std::vector<PluginEntry> plugins;  // scope consumer
};

struct GatewayConfig {
  std::vector<ListenerConfig> listeners;  // at least one
  AdminConfig admin;
  AccessLogConfig access_log;
  ServerSettings server;
  std::vector<ServiceConfig> services;
  std::vector<RouteConfig> routes;
  std::vector<filters::PlanConfig> plans;
  std::vector<ConsumerEntry> consumers;
  std::vector<PluginEntry> plugins;  // global
  // The router that checked the routes for conflicts, holding every (path,
  // host) pair of `routes` in the order the gateway gives them to the
  // proxy: handed to it (proxy::ServerOptions::router) so that the routes
  // are compiled once per configuration, not twice.
  std::shared_ptr<const Router> router;
};

// Reads and validates a whole document (see the top of this file). Every
// problem is added to `problems` as "json.path: message"; the returned model
// is complete only when `problems` is empty. Never throws for any document.
GatewayConfig read_gateway_config(const picojson::value& document, ConfigProblems& problems);

}  // namespace portico::detail

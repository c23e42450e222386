// The readers of gateway_config.cpp's sections, shared between its files:
// services (service_config.cpp), routes (route_config.cpp), plugin entries
// and address checks (gateway_config.cpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gateway_config.hpp"

namespace portico::detail {

// A numeric IPv4 or IPv6 address ("10.0.0.1", "::1").
bool is_ip_address(std::string_view text);
// A required string field that may not be empty either.
std::string read_name(JsonObject& object, std::string_view key);

// "5s", "250ms": a duration as configuration messages show it.
std::string duration_text(Duration duration);

// The "plugins" array of `owner` (absent: none).
std::vector<PluginEntry> read_plugins(JsonObject& owner, PluginScope scope,
                                      const std::string& owner_name);
// Reports an entry whose name another entry of the same list already uses.
void check_duplicate_plugins(const std::vector<PluginEntry>& entries, ConfigProblems& problems);

// A circuit breaker's settings (a service's "breaker" object, and the C
// ABI's portico_breaker_new), validated by CircuitBreaker::create.
BreakerConfig read_breaker_config(JsonObject& breaker);

// One element of "services".
ServiceConfig read_service(JsonObject& service);

// What routes refer to, read before them.
struct RouteContext {
  std::unordered_map<std::string, const ServiceConfig*> services;
  std::unordered_set<std::string> consumers;
  // Names of the global and consumer entries: they may apply to any route.
  std::unordered_set<std::string> shared_plugins;
  // The routes read so far, so that the router itself reports conflicts;
  // handed over as GatewayConfig::router.
  std::shared_ptr<Router> router = std::make_shared<Router>();
};

// One element of "routes".
RouteConfig read_route(JsonObject& route, RouteContext& context);

// Reports a primitive's validation error (CircuitBreaker::create,
// Balancer::create) at the field it names when the message starts with
// `prefix` followed by one of `fields`, else at the object itself.
void report_primitive_error(JsonObject& object, const Error& error, std::string_view prefix,
                            std::initializer_list<std::string_view> fields);

}  // namespace portico::detail

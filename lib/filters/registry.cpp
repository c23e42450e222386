#include "registry.hpp"

#include <array>

namespace portico::detail {

namespace {

// Ordered by default priority. The order puts what every request needs
// (an id, the trace) first, cheap refusals (address, CORS preflight, size)
// before identity, identity before the limits keyed by it, and the
// transformations last, around the upstream.
constexpr std::array kFactories{
    PluginFactory{"request-id", 1000, build_request_id},
    PluginFactory{"ip-restriction", 900, build_ip_restriction},
    PluginFactory{"cors", 850, build_cors},
    PluginFactory{"request-size-limiting", 800, build_request_size_limiting},
    PluginFactory{"key-auth", 710, build_key_auth},
    PluginFactory{"jwt-auth", 700, build_jwt_auth},
    PluginFactory{"rate-limit", 600, build_rate_limit},
    PluginFactory{"request-transformer", 500, build_request_transformer},
    PluginFactory{"response-transformer", 400, build_response_transformer},
    PluginFactory{"fallback", 300, build_fallback},
};

}  // namespace

std::span<const PluginFactory> plugin_factories() noexcept {
  return kFactories;
}

const PluginFactory* find_plugin(std::string_view name) noexcept {
  for (const auto& f : kFactories)
    if (f.name == name) return &f;
  return nullptr;
}

const gateway::CustomPlugin* find_custom_plugin(const PluginEnv& env,
                                                std::string_view name) noexcept {
  if (env.custom_plugins == nullptr) return nullptr;
  for (const auto& p : *env.custom_plugins)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace portico::detail

// The "cors" plugin's JSON config (docs/policies.md).
#include "../option_error.hpp"
#include "../registry.hpp"
#include "portico/filters/cors.hpp"

namespace portico::detail {

std::shared_ptr<proxy::Filter> build_cors(JsonObject& config, const PluginEnv&) {
  const std::size_t problems_before = config.problems().size();
  filters::CorsOptions o;
  o.origins = config.strings("origins", true);
  if (config.has("methods")) o.methods = config.strings("methods");
  o.headers = config.strings("headers");
  o.exposed_headers = config.strings("exposed_headers");
  o.credentials = config.boolean("credentials", o.credentials);
  o.max_age = config.duration("max_age", o.max_age, Duration::zero(), std::chrono::hours(24));
  config.finish();
  if (config.problems().size() != problems_before) return nullptr;
  auto filter = filters::make_cors(std::move(o));
  if (!filter) {
    report_option_error(config, filter.error());
    return nullptr;
  }
  return std::move(*filter);
}

}  // namespace portico::detail

// The "request-size-limiting" plugin's JSON config (docs/policies.md).
#include "option_error.hpp"
#include "portico/filters/request_size_limiting.hpp"
#include "registry.hpp"

namespace portico::detail {

std::shared_ptr<proxy::Filter> build_request_size_limiting(JsonObject& config, const PluginEnv&) {
  const std::size_t problems_before = config.problems().size();
  filters::RequestSizeLimitingOptions o;
  // Up to 2^53: what a JSON number holds exactly.
  o.max_body_bytes = static_cast<std::uint64_t>(
      config.integer("max_body_bytes", 0, 1, std::int64_t{1} << 53, true));
  o.require_content_length = config.boolean("require_content_length", o.require_content_length);
  config.finish();
  if (config.problems().size() != problems_before) return nullptr;
  auto filter = filters::make_request_size_limiting(o);
  if (!filter) {
    report_option_error(config, filter.error());
    return nullptr;
  }
  return std::move(*filter);
}

}  // namespace portico::detail

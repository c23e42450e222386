// The "ip-restriction" plugin's JSON config (docs/policies.md).
#include "option_error.hpp"
#include "portico/filters/ip_restriction.hpp"
#include "registry.hpp"

namespace portico::detail {

std::shared_ptr<proxy::Filter> build_ip_restriction(JsonObject& config, const PluginEnv&) {
  const std::size_t problems_before = config.problems().size();
  filters::IpRestrictionOptions o;
  o.allow = config.strings("allow");
  o.deny = config.strings("deny");
  o.message = config.string("message", o.message);
  config.finish();
  if (config.problems().size() != problems_before) return nullptr;
  auto filter = filters::make_ip_restriction(std::move(o));
  if (!filter) {
    report_option_error(config, filter.error());
    return nullptr;
  }
  return std::move(*filter);
}

}  // namespace portico::detail

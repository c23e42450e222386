// The "key-auth" plugin's JSON config (docs/policies.md).
#include "option_error.hpp"
#include "portico/filters/key_auth.hpp"
#include "registry.hpp"

namespace portico::detail {

std::shared_ptr<proxy::Filter> build_key_auth(JsonObject& config, const PluginEnv& env) {
  const std::size_t problems_before = config.problems().size();
  filters::KeyAuthOptions o;
  o.consumers = env.consumers;
  if (config.has("header_names")) o.header_names = config.strings("header_names");
  o.query_names = config.strings("query_names");
  o.anonymous = config.string("anonymous");
  o.hide_credentials = config.boolean("hide_credentials", o.hide_credentials);
  o.realm = config.string("realm", o.realm);
  o.consumer_id_header = config.string("consumer_id_header", o.consumer_id_header);
  o.consumer_plan_header = config.string("consumer_plan_header", o.consumer_plan_header);
  o.anonymous_header = config.string("anonymous_header", o.anonymous_header);
  config.finish();
  if (config.problems().size() != problems_before) return nullptr;
  auto filter = filters::make_key_auth(std::move(o));
  if (!filter) {
    report_option_error(config, filter.error());
    return nullptr;
  }
  return std::move(*filter);
}

}  // namespace portico::detail

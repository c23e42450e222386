// The "fallback" plugin's JSON config (docs/policies.md).
#include "../option_error.hpp"
#include "../registry.hpp"
#include "portico/filters/fallback.hpp"

namespace portico::detail {

std::shared_ptr<proxy::Filter> build_fallback(JsonObject& config, const PluginEnv& env) {
  const std::size_t problems_before = config.problems().size();
  filters::FallbackOptions o;
  if (auto s = config.object("static_response")) {
    filters::FallbackResponse r;
    r.status = static_cast<int>(s->integer("status", 200, 200, 599));
    r.content_type = s->string("content_type", r.content_type);
    r.body = s->string("body");
    s->finish();
    o.static_response = std::move(r);
  }
  o.cache = config.boolean("cache", o.cache);
  o.cache_max_body_bytes = static_cast<std::size_t>(
      config.integer("cache_max_body_bytes", 64 * 1024, 1, std::int64_t{8} << 20));
  o.cache_entries = static_cast<std::size_t>(config.integer("cache_entries", 128, 1, 100000));
  o.cache_max_age = config.duration("cache_max_age", o.cache_max_age, std::chrono::seconds(1),
                                    std::chrono::hours(24 * 30));
  o.on_breaker_open = config.boolean("on_breaker_open", o.on_breaker_open);
  o.on_no_healthy_endpoint = config.boolean("on_no_healthy_endpoint", o.on_no_healthy_endpoint);
  o.workers = env.workers;
  config.finish();
  if (config.problems().size() != problems_before) return nullptr;
  auto filter = filters::make_fallback(std::move(o));
  if (!filter) {
    report_option_error(config, filter.error());
    return nullptr;
  }
  return std::move(*filter);
}

}  // namespace portico::detail

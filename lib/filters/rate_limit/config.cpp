// The "rate-limit" plugin's JSON config (docs/policies.md).
#include "../option_error.hpp"
#include "../registry.hpp"
#include "portico/filters/rate_limit.hpp"

namespace portico::detail {

namespace {

struct NamedWindow {
  std::string_view key;
  Duration period;
};

constexpr NamedWindow kWindows[] = {
    {"second", std::chrono::seconds(1)},
    {"minute", std::chrono::minutes(1)},
    {"hour", std::chrono::hours(1)},
    {"day", std::chrono::hours(24)},
};

filters::RateLimitKey key_of(const std::string& name) {
  if (name == "ip") return filters::RateLimitKey::ip;
  if (name == "route") return filters::RateLimitKey::route;
  if (name == "header") return filters::RateLimitKey::header;
  if (name == "global") return filters::RateLimitKey::global;
  return filters::RateLimitKey::consumer;
}

}  // namespace

std::shared_ptr<proxy::Filter> build_rate_limit(JsonObject& config, const PluginEnv& env) {
  const std::size_t problems_before = config.problems().size();
  filters::RateLimitOptions o;
  o.limit_by = key_of(
      config.choice("limit_by", {"consumer", "ip", "route", "header", "global"}, "consumer"));
  o.header = config.string("header");
  if (auto limits = config.object("limits")) {
    for (const NamedWindow& w : kWindows) {
      const std::int64_t limit = limits->integer(w.key, 0, 1, 1'000'000'000);
      if (limit > 0) o.limits.push_back({w.period, static_cast<std::uint64_t>(limit)});
    }
    limits->finish();
  }
  o.daily_quota = static_cast<std::uint64_t>(config.integer("daily_quota", 0, 0, 0xffffffffLL));
  o.max_keys = config.integer("max_keys", o.max_keys, 1, std::int64_t{1} << 24);
  o.max_plans = static_cast<std::size_t>(config.integer("max_plans", 64, 1, 1024));
  o.headers = config.boolean("headers", o.headers);
  if (config.boolean("use_plans", true) && env.consumers) {
    o.plan_of = [consumers = env.consumers](std::string_view name) {
      return consumers->plan(name);
    };
  }
  if (env.rejection_counter) {
    // The plugin entry's path ("routes[2].plugins[1]") names the scope.
    std::string scope = config.path();
    if (scope.ends_with(".config")) scope.resize(scope.size() - 7);
    o.rejections = env.rejection_counter(scope);
  }
  config.finish();
  // Plans' limits replace these defaults, but requests without a plan
  // (anonymous ones, for a start) must not go unlimited by omission.
  if (o.limits.empty() && o.daily_quota == 0)
    config.problem("limits",
                   "at least one window (second, minute, hour, day) or a daily_quota is required");
  if (config.problems().size() != problems_before) return nullptr;
  auto filter = filters::make_rate_limit(std::move(o));
  if (!filter) {
    report_option_error(config, filter.error());
    return nullptr;
  }
  return std::move(*filter);
}

}  // namespace portico::detail

// rate-limit: validation of the options, each error naming its field, and
// the JSON config.
#include <doctest/doctest.h>

#include "../../lib/filters/registry.hpp"
#include "portico/filters/consumers.hpp"
#include "portico/filters/rate_limit.hpp"

using namespace portico;
using filters::RateLimitOptions;

namespace {

std::string error_of(const RateLimitOptions& o) {
  auto r = filters::make_rate_limit(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == ErrorKind::invalid_argument);
  return r.error().message;
}

RateLimitOptions minute(std::uint64_t limit) {
  RateLimitOptions o;
  o.limits = {{std::chrono::minutes(1), limit}};
  o.max_keys = 1024;
  return o;
}

}  // namespace

TEST_CASE("make_rate_limit: valid options build a filter") {
  auto r = filters::make_rate_limit(minute(10));
  REQUIRE(r);
  CHECK((*r)->name() == "rate-limit");
  RateLimitOptions quota_only;
  quota_only.daily_quota = 1000;
  quota_only.max_keys = 16;
  CHECK(filters::make_rate_limit(quota_only));
  // With plans, the defaults may be empty: requests without a plan pass.
  RateLimitOptions plans_only;
  plans_only.plan_of = [](std::string_view) { return nullptr; };
  plans_only.max_keys = 16;
  CHECK(filters::make_rate_limit(plans_only));
}

TEST_CASE("make_rate_limit: each invalid field is named") {
  CHECK(error_of(RateLimitOptions{}).rfind("limits:", 0) == 0);
  auto o = minute(0);
  CHECK(error_of(o).rfind("limits[0].limit:", 0) == 0);
  o = minute(10);
  o.limits.push_back({std::chrono::milliseconds(1500), 3});
  CHECK(error_of(o).rfind("limits[1].period:", 0) == 0);
  o = minute(10);
  o.limits.push_back({std::chrono::minutes(1), 3});
  CHECK(error_of(o) == "limits[1].period: two windows with the same period");
  o = minute(10);
  o.limits[0].period = std::chrono::hours(24 * 400);
  CHECK(error_of(o).rfind("limits[0].period:", 0) == 0);
  o = minute(10);
  o.limit_by = filters::RateLimitKey::header;
  CHECK(error_of(o).rfind("header:", 0) == 0);
  o = minute(10);
  o.max_keys = 0;
  CHECK(error_of(o).rfind("max_keys:", 0) == 0);
  o = minute(10);
  o.max_plans = 0;
  CHECK(error_of(o).rfind("max_plans:", 0) == 0);
  o = minute(10);
  o.daily_quota = std::uint64_t{1} << 33;
  CHECK(error_of(o).rfind("daily_quota:", 0) == 0);
}

TEST_CASE("rate-limit config: windows by name, plans from the consumers, problems at paths") {
  auto build = [](std::string_view json, detail::ConfigProblems& problems,
                  const detail::PluginEnv& env) {
    auto doc = detail::parse_json_document(json);
    REQUIRE(doc);
    detail::JsonObject config(*doc, "plugins[3].config", problems);
    return detail::build_rate_limit(config, env);
  };
  auto consumers = filters::Consumers::create(
      {}, {filters::PlanConfig{"gold", {{std::chrono::seconds(1), 50}}, 100000}});
  REQUIRE(consumers);
  detail::PluginEnv env;
  env.consumers = *consumers;

  detail::ConfigProblems ok;
  CHECK(build(R"({"limit_by": "header", "header": "X-Tenant",
                  "limits": {"second": 5, "minute": 100, "hour": 1000, "day": 5000},
                  "daily_quota": 10000, "max_keys": 1024, "max_plans": 8, "headers": false,
                  "use_plans": true})",
              ok, env));
  CHECK(ok.empty());

  detail::ConfigProblems bad;
  CHECK_FALSE(build(R"({"limit_by": "user", "limits": {"minute": 0, "week": 3},
                        "max_keys": 0})",
                    bad, env));
  const std::string text = bad.to_string();
  CHECK(text.find("plugins[3].config.limit_by: expected one of") != std::string::npos);
  CHECK(text.find("plugins[3].config.limits.minute: expected an integer from 1") !=
        std::string::npos);
  CHECK(text.find("plugins[3].config.limits.week") != std::string::npos);
  CHECK(text.find("plugins[3].config.max_keys") != std::string::npos);

  detail::ConfigProblems empty;
  CHECK_FALSE(build("{}", empty, env));
  CHECK(empty.to_string().find("plugins[3].config.limits: at least one window") !=
        std::string::npos);

  detail::ConfigProblems no_header;
  CHECK_FALSE(build(R"({"limit_by": "header", "limits": {"second": 1}})", no_header, env));
  CHECK(no_header.to_string().find("plugins[3].config.header: required") != std::string::npos);
}

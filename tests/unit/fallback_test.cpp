// fallback: the options' validation and the JSON config.
#include <doctest/doctest.h>

#include "../../lib/filters/registry.hpp"
#include "portico/filters/fallback.hpp"

using namespace portico;

namespace {

filters::FallbackResponse static_json() {
  return filters::FallbackResponse{200, "application/json", "[]"};
}

}  // namespace

TEST_CASE("make_fallback: validation names the field") {
  filters::FallbackOptions o;
  CHECK(filters::make_fallback(o).error().message.rfind("static_response:", 0) == 0);
  o.static_response = filters::FallbackResponse{99, "text/plain", ""};
  CHECK(filters::make_fallback(o).error().message.rfind("static_response.status:", 0) == 0);
  o.static_response = filters::FallbackResponse{200, "text/plain\r\nx: y", ""};
  CHECK(filters::make_fallback(o).error().message.rfind("static_response.content_type:", 0) == 0);
  o.static_response = static_json();
  o.cache_entries = 0;
  CHECK(filters::make_fallback(o).error().message.rfind("cache_entries:", 0) == 0);
  o.cache_entries = 10;
  o.cache_max_body_bytes = std::size_t{64} << 20;
  CHECK(filters::make_fallback(o).error().message.rfind("cache_max_body_bytes:", 0) == 0);
  o.cache_max_body_bytes = 1024;
  o.workers = 0;
  CHECK(filters::make_fallback(o).error().message.rfind("workers:", 0) == 0);
}

TEST_CASE("fallback config: fields, problems at their JSON paths") {
  auto build = [](std::string_view json, detail::ConfigProblems& problems) {
    auto doc = detail::parse_json_document(json);
    REQUIRE(doc);
    detail::JsonObject config(*doc, "services[1].plugins[0].config", problems);
    detail::PluginEnv env;
    env.workers = 4;
    return detail::build_fallback(config, env);
  };
  detail::ConfigProblems ok;
  CHECK(build(R"({"static_response": {"status": 200, "content_type": "application/json",
                                      "body": "{\"items\": []}"},
                  "cache": true, "cache_max_body_bytes": 65536, "cache_entries": 256,
                  "cache_max_age": "10m", "on_breaker_open": true,
                  "on_no_healthy_endpoint": false})",
              ok));
  CHECK(ok.empty());
  detail::ConfigProblems bad;
  CHECK_FALSE(build(R"({"static_response": {"status": 700, "bdy": ""}, "cache_entries": 0,
                        "cache_max_age": "forever"})",
                    bad));
  const std::string text = bad.to_string();
  CHECK(text.find("services[1].plugins[0].config.static_response.status: expected an integer") !=
        std::string::npos);
  CHECK(text.find("services[1].plugins[0].config.static_response.bdy") != std::string::npos);
  CHECK(text.find("services[1].plugins[0].config.cache_entries") != std::string::npos);
  CHECK(text.find("services[1].plugins[0].config.cache_max_age") != std::string::npos);
  detail::ConfigProblems nothing;
  CHECK_FALSE(build("{}", nothing));
  CHECK(nothing.to_string().find("services[1].plugins[0].config.static_response: a static") !=
        std::string::npos);
}

// cors: origin rules and matching, the options' validation, the JSON
// config.
#include <doctest/doctest.h>

#include "../../lib/filters/cors/origins.hpp"
#include "../../lib/filters/registry.hpp"
#include "portico/filters/cors.hpp"

using namespace portico;
using detail::origin_matches;
using detail::parse_origin_rule;

namespace {

bool allows(std::string_view rule_text, std::string_view origin) {
  auto rule = parse_origin_rule(rule_text);
  REQUIRE_MESSAGE(rule, (rule ? "" : rule.error().message));
  return detail::is_serialized_origin(origin) && origin_matches(*rule, origin);
}

}  // namespace

TEST_CASE("cors origins: exact origins ignore ASCII case, nothing else") {
  CHECK(allows("https://app.example.com", "https://app.example.com"));
  CHECK(allows("https://app.example.com", "HTTPS://App.Example.COM"));
  CHECK(allows("http://localhost:3000", "http://localhost:3000"));
  CHECK_FALSE(allows("https://app.example.com", "https://app.example.com:443"));
  CHECK_FALSE(allows("https://app.example.com", "http://app.example.com"));
  CHECK_FALSE(allows("https://app.example.com", "https://app.example.com.evil.net"));
  CHECK(allows("null", "null"));
  CHECK_FALSE(allows("https://app.example.com", "null"));
  CHECK(allows("*", "https://anything.example"));
  CHECK(allows("https://[::1]:8443", "https://[::1]:8443"));
}

TEST_CASE("cors origins: subdomain patterns need whole labels, the scheme and the port") {
  const char* rule = "https://*.example.com";
  CHECK(allows(rule, "https://a.example.com"));
  CHECK(allows(rule, "https://a.b-c.example.com"));
  CHECK(allows(rule, "https://A.EXAMPLE.com"));
  CHECK_FALSE(allows(rule, "https://example.com"));
  CHECK_FALSE(allows(rule, "https://.example.com"));
  CHECK_FALSE(allows(rule, "https://a..example.com"));
  CHECK_FALSE(allows(rule, "https://evilexample.com"));
  CHECK_FALSE(allows(rule, "http://a.example.com"));
  CHECK_FALSE(allows(rule, "https://a.example.com:8443"));
  CHECK_FALSE(allows(rule, "https://a.example.com.evil.net"));
  CHECK_FALSE(allows(rule, "https://evil.net/.example.com"));
  CHECK_FALSE(allows(rule, "https://user@a.example.com"));
  CHECK(allows("https://*.example.com:8443", "https://a.example.com:8443"));
  CHECK_FALSE(allows("https://*.example.com:8443", "https://a.example.com"));
}

TEST_CASE("cors origins: malformed rules and request origins") {
  for (const char* bad :
       {"", "example.com", "https://", "https://app.example.com/", "*.example.com", "https://*.com",
        "https://*example.com", "https://a.*.example.com", "https://*.example.com/path",
        "ht tp://x", "https://x y", "https://a.*.example.com:1", "https://a%2e.com"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_origin_rule(bad));
  }
  for (const char* bad :
       {"", "garbage", "https://a.example.com/path", "https://a.example.com?q", "//a.example.com",
        "https://a b.com", "https://u:p@a.example.com", "https://a.example.com#x"}) {
    CAPTURE(bad);
    CHECK_FALSE(detail::is_serialized_origin(bad));
  }
}

TEST_CASE("make_cors: validation names the field") {
  filters::CorsOptions o;
  auto r = filters::make_cors(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.rfind("origins:", 0) == 0);
  o.origins = {"https://a.example.com", "https://*.com"};
  r = filters::make_cors(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.rfind("origins[1]:", 0) == 0);
  o.origins = {"*"};
  o.methods = {"GET", "BAD METHOD"};
  r = filters::make_cors(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.rfind("methods[1]:", 0) == 0);
  o.methods = {"GET"};
  o.headers = {"X-Ok", "X:Bad"};
  CHECK(filters::make_cors(o).error().message.rfind("headers[1]:", 0) == 0);
  o.headers = {};
  o.max_age = std::chrono::hours(48);
  CHECK(filters::make_cors(o).error().message.rfind("max_age:", 0) == 0);
  o.max_age = std::chrono::minutes(10);
  CHECK(filters::make_cors(o));
}

TEST_CASE("cors config: fields, problems at their JSON paths") {
  auto build = [](std::string_view json, detail::ConfigProblems& problems) {
    auto doc = detail::parse_json_document(json);
    REQUIRE(doc);
    detail::JsonObject config(*doc, "routes[0].plugins[1].config", problems);
    return detail::build_cors(config, detail::PluginEnv{});
  };
  detail::ConfigProblems ok;
  CHECK(build(R"({"origins": ["https://*.example.com"], "methods": ["GET", "POST"],
                  "headers": ["Authorization"], "exposed_headers": ["X-Request-ID"],
                  "credentials": true, "max_age": "10m"})",
              ok));
  CHECK(ok.empty());
  detail::ConfigProblems bad;
  CHECK_FALSE(build(R"({"origins": ["https://ok.example.com", "nope"], "max_age": "2d"})", bad));
  const std::string text = bad.to_string();
  CHECK(text.find("routes[0].plugins[1].config.max_age: expected a duration from 0s to 86400s") !=
        std::string::npos);
  detail::ConfigProblems bad_origin;
  CHECK_FALSE(build(R"({"origins": ["https://ok.example.com", "nope"]})", bad_origin));
  CHECK(bad_origin.to_string().find("routes[0].plugins[1].config.origins[1]: expected") !=
        std::string::npos);
  detail::ConfigProblems missing;
  CHECK_FALSE(build(R"({"credentials": true})", missing));
  CHECK(missing.to_string().find("routes[0].plugins[1].config.origins: is required") !=
        std::string::npos);
}

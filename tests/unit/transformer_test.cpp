// request-transformer / response-transformer: top-level JSON member edits,
// value templates, the options' validation and the JSON config.
#include <doctest/doctest.h>

#include "../../lib/filters/registry.hpp"
#include "../../lib/filters/transformer/json_fields.hpp"
#include "../../lib/filters/transformer/value_template.hpp"
#include "portico/filters/request_transformer.hpp"
#include "portico/filters/response_transformer.hpp"

using namespace portico;
using detail::edit_json_members;
using filters::Rename;

namespace {

std::optional<std::string> edit(std::string_view body, std::vector<std::string> remove,
                                std::vector<Rename> rename = {}) {
  return edit_json_members(body, remove, rename);
}

}  // namespace

TEST_CASE("json members: removed and renamed at the top level only, values byte for byte") {
  const std::string body =
      R"({"id": 12345678901234567890, "internal_metadata": {"shard": 3},
          "nested": {"internal_metadata": 1}, "price": 1.10e+2, "name": "caf\u00e9"})";
  const auto out = edit(body, {"internal_metadata"}, {{"name", "title"}});
  REQUIRE(out);
  CHECK(
      *out ==
      R"({"id":12345678901234567890,"nested":{"internal_metadata": 1},"price":1.10e+2,"title":"caf\u00e9"})");
}

TEST_CASE("json members: escaped keys match, duplicates all go, renames replace targets") {
  CHECK(edit(R"({"internal\u005fmetadata": 1, "a": 2})", {"internal_metadata"}) ==
        std::optional<std::string>(R"({"a":2})"));
  CHECK(edit(R"({"x": 1, "x": 2, "y": 3})", {"x"}) == std::optional<std::string>(R"({"y":3})"));
  // "old" renamed onto "new": the existing "new" is replaced, wherever it is.
  CHECK(edit(R"({"new": "stale", "old": "fresh"})", {}, {{"old", "new"}}) ==
        std::optional<std::string>(R"({"new":"fresh"})"));
  // Without the source, the target stays.
  CHECK_FALSE(edit(R"({"new": 1})", {}, {{"old", "new"}}));
  // A target name is escaped on the way out.
  CHECK(edit(R"({"a": 1})", {}, {{"a", "q\"uote"}}) ==
        std::optional<std::string>(R"({"q\"uote":1})"));
  CHECK(edit(R"({"a": 1, "b": 2})", {"a", "b"}) == std::optional<std::string>("{}"));
  CHECK(edit(" \r\n{\"a\":[1,{\"b\":[]}],\"c\":true}\n ", {"c"}) ==
        std::optional<std::string>(R"({"a":[1,{"b":[]}]})"));
}

TEST_CASE("json members: anything but one valid object, or no change, yields nothing") {
  const std::vector<std::string> bad = {
      "",
      "[1, 2]",
      "\"internal_metadata\"",
      "{\"a\": 1,}",
      "{a: 1}",
      "{\"a\" 1}",
      "{\"a\": 01}",
      "{\"a\": 1.}",
      "{\"a\": -}",
      "{\"a\": tru}",
      "{\"a\": \"x\ny\"}",
      "{\"a\": \"\\x\"}",
      "{\"a\": \"\\u12\"}",
      "{\"a\": 1",
      "{\"a\": 1} {}",
      "{\"a\": 1} x",
      "{\"a\": [1, 2}",
      "{\"a\": {\"b\": 1]}",
      "{\"internal_metadata\": 1, \"a\": NaN}",
      std::string(100, '[') + std::string(100, ']'),
  };
  for (const auto& body : bad) {
    CAPTURE(body.substr(0, 40));
    CHECK_FALSE(edit(body, {"internal_metadata", "a"}));
  }
  // Nesting beyond 64 levels is refused before it can exhaust the stack.
  const std::string deep =
      "{\"internal_metadata\": " + std::string(70, '[') + std::string(70, ']') + "}";
  CHECK_FALSE(edit(deep, {"internal_metadata"}));
  const std::string ok_depth =
      "{\"internal_metadata\": " + std::string(60, '[') + std::string(60, ']') + "}";
  CHECK(edit(ok_depth, {"internal_metadata"}) == std::optional<std::string>("{}"));
  CHECK_FALSE(edit(R"({"a": 1})", {"absent"}));
}

TEST_CASE("value templates: references are checked when parsed") {
  using detail::ValueTemplate;
  for (const char* good : {"plain", "$(claims.sub)", "Bearer $(claims.realm_access.roles)",
                           "$(consumer.id)/$(consumer.plan)", "$(route.param.id)", "$(request_id)",
                           "$(trace_id)-$(span_id)", "$(client_ip)", "$(headers.x-forwarded-for)",
                           "$(credential) $(route.name)", "$5 and $ alone", ""}) {
    CAPTURE(good);
    CHECK(ValueTemplate::parse(good));
  }
  for (const char* bad : {"$(claims.sub", "$(nope)", "$(claims.)", "$(route.param.)", "$(headers.)",
                          "a\r\nb", "$()"}) {
    CAPTURE(bad);
    CHECK_FALSE(ValueTemplate::parse(bad));
  }
  std::string many;
  for (int i = 0; i < 17; ++i)
    many += "x$(request_id)";
  CHECK_FALSE(ValueTemplate::parse(many));
}

TEST_CASE("make_*_transformer: validation names the field") {
  filters::RequestTransformerOptions o;
  o.headers.add = {{"X-Ok", "1"}, {"Bad Name", "2"}};
  auto r = filters::make_request_transformer(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.rfind("headers.add[1]:", 0) == 0);
  o.headers.add = {};
  o.headers.remove = {"Content-Length"};
  r = filters::make_request_transformer(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "headers.remove[0]: \"Content-Length\" is managed by the proxy");
  o.headers.remove = {};
  o.headers.replace = {{"X-A", "$(oops)"}};
  CHECK(filters::make_request_transformer(o).error().message.rfind("headers.replace[0]:", 0) == 0);
  o.headers.replace = {};
  o.headers.rename = {{"X-A", "Host"}};
  CHECK(filters::make_request_transformer(o).error().message.rfind("headers.rename[0]:", 0) == 0);

  filters::ResponseTransformerOptions p;
  p.rename_json = {{"a", "b"}, {"c", "b"}};
  CHECK(filters::make_response_transformer(p).error().message.rfind("rename_json[1]:", 0) == 0);
  p.rename_json = {};
  p.remove_json = {""};
  CHECK(filters::make_response_transformer(p).error().message.rfind("remove_json[0]:", 0) == 0);
  p.remove_json = {"internal_metadata"};
  p.max_body_bytes = 0;
  CHECK(filters::make_response_transformer(p).error().message.rfind("max_body_bytes:", 0) == 0);
  p.max_body_bytes = 4096;
  CHECK(filters::make_response_transformer(p));
}

TEST_CASE("transformer config: Kong's shape, problems at their JSON paths") {
  auto build = [](std::string_view json, detail::ConfigProblems& problems, bool response) {
    auto doc = detail::parse_json_document(json);
    REQUIRE(doc);
    detail::JsonObject config(*doc, "routes[2].plugins[0].config", problems);
    return response ? detail::build_response_transformer(config, detail::PluginEnv{})
                    : detail::build_request_transformer(config, detail::PluginEnv{});
  };
  detail::ConfigProblems ok;
  CHECK(build(R"J({"remove": {"headers": ["X-User-Id"]}, "rename": {"headers": ["X-A:X-B"]},
                  "replace": {"headers": ["X-Env: prod"]},
                  "add": {"headers": ["X-User-Id: $(claims.sub)", "X-Url:http://a:1/"]},
                  "append": {"headers": ["X-Via:portico"]}})J",
              ok, false));
  CHECK(ok.empty());
  detail::ConfigProblems ok_response;
  CHECK(build(R"({"remove": {"headers": ["X-Internal-Trace-Id"], "json": ["internal_metadata"]},
                  "rename": {"json": ["old:new"]}, "max_body_bytes": 65536})",
              ok_response, true));
  CHECK(ok_response.empty());

  detail::ConfigProblems bad;
  CHECK_FALSE(build(R"({"add": {"headers": ["no colon"], "hedares": []},
                        "remove": {"json": ["x"]}, "max_body_bytes": 1})",
                    bad, false));
  const std::string text = bad.to_string();
  CHECK(text.find("routes[2].plugins[0].config.add.headers[0]: expected \"name:value\"") !=
        std::string::npos);
  CHECK(text.find("routes[2].plugins[0].config.add.hedares") != std::string::npos);
  CHECK(text.find("routes[2].plugins[0].config.remove.json") != std::string::npos);
  CHECK(text.find("routes[2].plugins[0].config.max_body_bytes") != std::string::npos);

  detail::ConfigProblems bad_template;
  CHECK_FALSE(build(R"({"add": {"headers": ["X-A:1", "X-B:$(claims.sub"]}})", bad_template, true));
  CHECK(bad_template.to_string().find("routes[2].plugins[0].config.add.headers[1]: \"$(\"") !=
        std::string::npos);
  detail::ConfigProblems bad_rename;
  CHECK_FALSE(build(R"({"rename": {"json": ["a:b", "c:b"]}})", bad_rename, true));
  CHECK(bad_rename.to_string().find("routes[2].plugins[0].config.rename.json[1]:") !=
        std::string::npos);
}

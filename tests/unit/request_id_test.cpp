// request-id: the traceparent grammar, request id validation, id generation,
// and the plugin's JSON config.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../lib/filters/registry.hpp"
#include "../../lib/filters/request_id/trace_context.hpp"
#include "portico/filters/request_id.hpp"

using namespace portico;
using detail::parse_traceparent;

namespace {

constexpr std::string_view kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// Reads `json` as a plugin config and builds the filter; the problems are
// left in `problems`.
std::shared_ptr<proxy::Filter> build(std::string_view json, detail::ConfigProblems& problems) {
  auto doc = detail::parse_json_document(json);
  REQUIRE(doc);
  detail::JsonObject config(*doc, "plugins[0].config", problems);
  return detail::build_request_id(config, detail::PluginEnv{});
}

}  // namespace

TEST_CASE("traceparent: a valid version 00 header is split into its fields") {
  const auto tp = parse_traceparent(kValid);
  REQUIRE(tp);
  CHECK(tp->version == "00");
  CHECK(tp->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(tp->parent_id == "00f067aa0ba902b7");
  CHECK(tp->flags == "01");
}

TEST_CASE("traceparent: malformed values are refused") {
  const std::string valid(kValid);
  const std::vector<std::string> bad = {
      "",
      "00",
      valid.substr(0, 54),                                                // short
      valid + "-",                                                        // version 00 is exact
      valid + "x",                                                        // trailing byte
      "ff" + valid.substr(2),                                             // forbidden version
      "0g" + valid.substr(2),                                             // not hex
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",          // upper case
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",          // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",          // zero parent id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",          // bad flags
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",          // separator
      "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",          // misplaced dash
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",         // trailing space
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-is",  // later version, no dash
  };
  for (const auto& value : bad) {
    CAPTURE(value);
    CHECK_FALSE(parse_traceparent(value));
  }
}

TEST_CASE("traceparent: a later version may carry more fields after a dash") {
  const auto tp =
      parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future");
  REQUIRE(tp);
  CHECK(tp->version == "cc");
  CHECK(tp->flags == "01");
  CHECK(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09"));
}

TEST_CASE("request id: visible ASCII within the length bound") {
  CHECK(detail::is_valid_request_id("abc-123_XYZ.~!", 128));
  CHECK(detail::is_valid_request_id(std::string(128, 'a'), 128));
  CHECK_FALSE(detail::is_valid_request_id(std::string(129, 'a'), 128));
  CHECK_FALSE(detail::is_valid_request_id("", 128));
  CHECK_FALSE(detail::is_valid_request_id("a b", 128));
  CHECK_FALSE(detail::is_valid_request_id("a\tb", 128));
  CHECK_FALSE(detail::is_valid_request_id("caf\xc3\xa9", 128));
  CHECK_FALSE(detail::is_valid_request_id(std::string("a\0b", 3), 128));
}

TEST_CASE("generated ids: every hex digit shows up at every position") {
  // A digit the conversion could never write, or one stuck at a position,
  // would not show in the test below, which only checks the alphabet.
  std::set<char> seen[48];
  char id[48];
  for (int i = 0; i < 4000; ++i) {
    detail::random_hex(id, 3);
    for (int at = 0; at < 48; ++at)
      seen[at].insert(id[at]);
  }
  for (int at = 0; at < 48; ++at) {
    INFO("position " << at);
    CHECK(seen[at] == std::set<char>{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b',
                                     'c', 'd', 'e', 'f'});
  }
}

TEST_CASE("generated ids: lower-case hex, distinct within and across threads") {
  constexpr int kPerThread = 20000;
  std::vector<std::vector<std::string>> drawn(4);
  std::vector<std::thread> threads;
  for (auto& out : drawn) {
    threads.emplace_back([&out] {
      char id[32];
      for (int i = 0; i < kPerThread; ++i) {
        detail::random_hex(id, 2);
        out.emplace_back(id, 32);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  std::set<std::string> all;
  for (const auto& out : drawn) {
    for (const auto& id : out) {
      CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
      all.insert(id);
    }
  }
  CHECK(all.size() == 4u * kPerThread);
}

TEST_CASE("request-id config: every field read, problems at their JSON paths") {
  detail::ConfigProblems problems;
  auto filter = build(R"({"header": "X-Correlation-ID", "trust_incoming": false,
                          "max_length": 64, "echo_on_response": false, "trace_context": true,
                          "trust_incoming_trace": false, "sample_new_traces": false})",
                      problems);
  CHECK(problems.empty());
  REQUIRE(filter);
  CHECK(filter->name() == "request-id");

  detail::ConfigProblems bad;
  CHECK_FALSE(build(R"({"max_length": 0, "trust_incoming": "yes", "hedaer": "x"})", bad));
  const std::string text = bad.to_string();
  CHECK(text.find("plugins[0].config.max_length: expected an integer from 1 to 1024") !=
        std::string::npos);
  CHECK(text.find("plugins[0].config.trust_incoming: expected true or false") != std::string::npos);
  CHECK(text.find("plugins[0].config.hedaer") != std::string::npos);

  detail::ConfigProblems bad_header;
  CHECK_FALSE(build(R"({"header": "X Request"})", bad_header));
  CHECK(bad_header.to_string().find("plugins[0].config.header: \"X Request\" is not a header") !=
        std::string::npos);
}

TEST_CASE("make_request_id: validation errors name the field") {
  filters::RequestIdOptions o;
  o.max_length = 5000;
  auto r = filters::make_request_id(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == ErrorKind::invalid_argument);
  CHECK(r.error().message.rfind("max_length:", 0) == 0);
  o = {};
  o.header = "";
  CHECK_FALSE(filters::make_request_id(o));
  CHECK(filters::make_request_id(filters::RequestIdOptions{}));
}

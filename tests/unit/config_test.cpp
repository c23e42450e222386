// The gateway's declarative configuration: one test per class of
// validation error, each asserting the JSON path and the message, a full
// document read into the expected model, and the example of docs/config.md.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../../lib/config/gateway_config.hpp"

using namespace portico;
using namespace portico::detail;

namespace {

// A parsed document and what was read from it; the document outlives the
// model, as PluginEntry::config requires.
struct Loaded {
  picojson::value document;
  ConfigProblems problems;
  GatewayConfig config;
};

Loaded load(std::string_view text) {
  Loaded out;
  auto parsed = parse_json_document(text);
  REQUIRE_MESSAGE(parsed.ok(), parsed.error().message);
  out.document = std::move(*parsed);
  out.config = read_gateway_config(out.document, out.problems);
  return out;
}

// Every problem as "path: message".
std::vector<std::string> problems_of(std::string_view text) {
  std::vector<std::string> out;
  const Loaded loaded = load(text);
  for (const ConfigProblem& p : loaded.problems.all())
    out.push_back(p.path + ": " + p.message);
  return out;
}

std::string one_problem(std::string_view text) {
  const auto all = problems_of(text);
  REQUIRE_MESSAGE(all.size() == 1, [&] {
    std::string s;
    for (const auto& p : all)
      s += p + "\n";
    return s;
  }());
  return all.front();
}

// A small valid document with `extra` fields added to its top level and
// `route` as its only route (a service "users" exists).
std::string with_route(std::string_view route, std::string_view extra = "") {
  return std::string(R"({"services": [{"name": "users", "urls": ["http://127.0.0.1:9001"]},
                                       {"name": "users-v2", "urls": ["http://127.0.0.1:9002"]}],
                         "routes": [)") +
         std::string(route) + "]" + (extra.empty() ? "" : ", ") + std::string(extra) + "}";
}

std::string with_service(std::string_view service) {
  return std::string(R"({"services": [)") + std::string(service) + "]}";
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("config: malformed JSON names the line") {
    auto parsed = parse_json_document("{\n  \"listeners\": [\n    {\"port\": 80,}\n  ]\n}");
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.starts_with("invalid JSON: syntax error at line 3"));
    auto trailing = parse_json_document("{}\n{}");
    REQUIRE_FALSE(trailing.ok());
    CHECK(trailing.error().message == "invalid JSON: text after the document at line 2");
  }

  TEST_CASE("config: a number beyond a double's range is malformed JSON, not an exception") {
    for (std::string_view text : {R"({"server": {"backlog": 1e999}})", "[-1e400]", "1E+999999"}) {
      auto parsed = parse_json_document(text);
      REQUIRE_FALSE(parsed.ok());
      CHECK(parsed.error().kind == ErrorKind::malformed);
      CHECK(parsed.error().message == "invalid JSON: a number out of range");
    }
    CHECK(parse_json_document("[1e308, 1e-400]").ok());
  }

  TEST_CASE("config: nesting deeper than the limit is refused before parsing") {
    std::string deep(100, '[');
    deep += std::string(100, ']');
    auto parsed = parse_json_document(deep);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message == "JSON nested deeper than 64 levels");
  }

  TEST_CASE("config: the document must be an object") {
    CHECK(one_problem("[]") == ": expected an object, found an array");
  }

  TEST_CASE("config: an empty document is a gateway on 127.0.0.1:8080 with nothing routed") {
    Loaded l = load("{}");
    CHECK(l.problems.empty());
    REQUIRE(l.config.listeners.size() == 1);
    CHECK(l.config.listeners[0].address == "127.0.0.1");
    CHECK(l.config.listeners[0].port == 8080);
    CHECK(l.config.listeners[0].workers == 0);
    CHECK(l.config.admin.enabled);
    CHECK(l.config.admin.port == 8001);
    CHECK(l.config.access_log.enabled);
    CHECK(l.config.access_log.path.empty());
  }

  TEST_CASE("config: wrong types") {
    CHECK(one_problem(R"({"listeners": {"port": 80}})") ==
          "listeners: expected an array of objects, found an object");
    CHECK(one_problem(R"({"listeners": [{"port": "80"}]})") ==
          "listeners[0].port: expected an integer, found a string");
    CHECK(one_problem(R"({"admin": {"enabled": "yes"}})") ==
          "admin.enabled: expected true or false, found a string");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": "/users", "service": "users"})")) ==
          "routes[0].paths: expected an array of strings, found a string");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a", 7], "service": "users"})")) ==
          "routes[0].paths[1]: expected a string, found a number");
    CHECK(one_problem(R"({"plugins": [{"name": "cors", "config": []}]})") ==
          "plugins[0].config: expected an object, found an array");
    CHECK(one_problem(R"({"services": ["users"]})") ==
          "services[0]: expected an object, found a string");
  }

  TEST_CASE("config: numbers out of range") {
    CHECK(one_problem(R"({"listeners": [{"port": 70000}]})") ==
          "listeners[0].port: expected an integer from 0 to 65535, found 70000");
    CHECK(one_problem(R"({"listeners": [{"workers": 1.5}]})") ==
          "listeners[0].workers: expected an integer from 0 to 1024, found 1.5");
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1"],
                                       "retries": {"max_retries": 11}})")) ==
          "services[0].retries.max_retries: expected an integer from 0 to 10, found 11");
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1"],
                                       "breaker": {"failure_ratio": 1.5}})")) ==
          "services[0].breaker.failure_ratio: expected a number from 0 to 1, found 1.5");
  }

  TEST_CASE("config: durations") {
    CHECK(one_problem(R"({"server": {"header_timeout": "10 seconds"}})") ==
          "server.header_timeout: expected a duration such as \"250ms\", \"5s\" or \"2m\", "
          "found \"10 seconds\"");
    CHECK(one_problem(R"({"server": {"header_timeout": "0s"}})") ==
          "server.header_timeout: expected a duration from 1ms to 3600s");
    Loaded l = load(R"({"server": {"header_timeout": "250ms", "idle_timeout": 1.5,
                                   "request_timeout": "2m"}})");
    CHECK(l.problems.empty());
    CHECK(l.config.server.header_timeout == std::chrono::milliseconds(250));
    CHECK(l.config.server.idle_timeout == std::chrono::milliseconds(1500));
    CHECK(l.config.server.request_timeout == std::chrono::minutes(2));
  }

  TEST_CASE("config: unknown fields, at every depth") {
    CHECK(one_problem(R"({"listener": []})") == "listener: unknown field");
    CHECK(one_problem(R"({"admin": {"prot": 9000}})") == "admin.prot: unknown field");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "strip_paths": true})")) ==
          "routes[0].strip_paths: unknown field");
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1"],
                                       "breaker": {"open_duraton": "5s"}})")) ==
          "services[0].breaker.open_duraton: unknown field");
    CHECK(one_problem(R"({"plugins": [{"name": "cors", "enable": false}]})") ==
          "plugins[0].enable: unknown field");
  }

  TEST_CASE("config: a name that cannot be written in a path is named in the message") {
    // A path is one token that starts with a letter; such names are
    // reported at the object holding them, quoted and made printable.
    CHECK(one_problem(R"({"admin": {"p rt": 9000}})") == "admin: 'p rt': unknown field");
    CHECK(one_problem(R"({"admin": {"a.b": 1}})") == "admin: 'a.b': unknown field");
    CHECK(one_problem(R"({"admin": {"": 1}})") == "admin: '': unknown field");
    CHECK(one_problem("{\"admin\": {\"\\u0007x\": 1}}") == "admin: '?x': unknown field");
    CHECK(one_problem(R"({"1st": true})") == ": '1st': unknown field");
    CHECK(one_problem(R"({"_x": true})") == ": '_x': unknown field");
    CHECK(one_problem(R"({"x-1_y": true})") == "x-1_y: unknown field");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "headers": {"X:V": 1}})")) ==
          "routes[0].headers: 'X:V': expected a string, found a number");
  }

  TEST_CASE("config: missing required fields") {
    CHECK(one_problem(with_service(R"({"urls": ["http://10.0.0.1"]})")) ==
          "services[0].name: is required (a string)");
    CHECK(one_problem(with_service(R"({"name": "s"})")) ==
          "services[0]: needs at least one endpoint (\"endpoints\" or \"urls\")");
    CHECK(one_problem(with_service(R"({"name": "s", "endpoints": [], "urls": []})")) ==
          "services[0]: needs at least one endpoint (\"endpoints\" or \"urls\")");
    CHECK(one_problem(with_service(R"({"name": "s", "endpoints": [{"address": "10.0.0.1"}]})")) ==
          "services[0].endpoints[0].port: is required (an integer)");
    CHECK(one_problem(with_route(R"({"name": "r", "service": "users"})")) ==
          "routes[0].paths: is required (an array of strings)");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"]})")) ==
          "routes[0]: needs \"service\" (a name) or \"services\" (weighted)");
    CHECK(one_problem(R"({"plugins": [{"config": {}}]})") ==
          "plugins[0].name: is required (a string)");
    CHECK(one_problem(R"({"consumers": [{"api_keys": ["k"]}]})") ==
          "consumers[0].id: is required (a string)");
    CHECK(one_problem(R"({"listeners": []})") ==
          "listeners: needs at least one listener (leave it out for 127.0.0.1:8080)");
  }

  TEST_CASE("config: bad route patterns are the router's own messages") {
    CHECK(
        one_problem(with_route(R"({"name": "r", "paths": ["/users/{id"], "service": "users"})")) ==
        "routes[0].paths[0]: path pattern '/users/{id': unclosed '{'");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a", "/files/**/x"],
                                     "service": "users"})")) ==
          "routes[0].paths[1]: path pattern '/files/**/x': '/**' may only end the pattern");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["users"], "service": "users"})")) ==
          "routes[0].paths[0]: path pattern 'users': must start with '/'");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "hosts": ["api.example.com:80"],
                                     "service": "users"})"))
              .starts_with("routes[0].hosts[0]: host pattern 'api.example.com:80': "));
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "methods": ["get"],
                                     "service": "users"})")) ==
          "routes[0].methods[0]: 'get' is not one of GET, HEAD, POST, PUT, DELETE, CONNECT, "
          "OPTIONS, TRACE, PATCH (methods are upper case)");
  }

  TEST_CASE("config: header and query conditions") {
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "headers": [{"name": "X-V", "regex": "(unclosed"}]})"))
              .starts_with("routes[0].headers[0]: bad regular expression '(unclosed': "));
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "headers": {"X Bad": "1"}})")) ==
          "routes[0].headers: 'X Bad' is not a header name (RFC 9110 token)");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "query": [{"name": "v", "prefix": "1"}]})")) ==
          "routes[0].query[0].prefix: query conditions take \"equals\" or \"present\"");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "headers": [{"name": "X-V", "equals": "1", "present": true}]})")) ==
          "routes[0].headers[0]: needs exactly one of \"equals\", \"prefix\", \"regex\" or "
          "\"present\"");
  }

  TEST_CASE("config: unknown service") {
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "orders"})")) ==
          "routes[0].service: no service named 'orders'");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"],
                                     "services": [{"name": "users"}, {"name": "users-v3"}]})")) ==
          "routes[0].services[1].name: no service named 'users-v3'");
  }

  TEST_CASE("config: service and services together") {
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "services": [{"name": "users"}]})")) ==
          "routes[0]: has both \"service\" and \"services\"; give one");
  }

  TEST_CASE("config: duplicate names") {
    CHECK(one_problem(R"({"services": [{"name": "a", "urls": ["http://10.0.0.1"]},
                                       {"name": "a", "urls": ["http://10.0.0.2"]}]})") ==
          "services[1].name: service 'a' is already defined at services[0].name");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users"},
                                    {"name": "r", "paths": ["/b"], "service": "users"})")) ==
          "routes[1].name: route 'r' is already defined at routes[0].name");
    CHECK(one_problem(R"({"consumers": [{"id": "alice"}, {"id": "alice"}]})") ==
          "consumers[1].id: consumer 'alice' is already defined at consumers[0].id");
    CHECK(one_problem(R"({"plans": [{"name": "gold"}, {"name": "gold"}]})") ==
          "plans[1].name: plan 'gold' is already defined at plans[0].name");
    CHECK(one_problem(R"({"plugins": [{"name": "cors"}, {"name": "cors"}]})") ==
          "plugins[1].name: 'cors' is already attached here at plugins[0]");
  }

  TEST_CASE("config: conflicting routes are reported at the later route's path") {
    CHECK(one_problem(with_route(R"({"name": "a", "paths": ["/users/{id}"], "service": "users"},
                                    {"name": "b", "paths": ["/x", "/users/{id}"],
                                     "methods": ["GET"], "service": "users"})")) ==
          "routes[1].paths[1]: route 'b' conflicts with route 'a': same host, path and "
          "predicates, and both accept GET");
    CHECK(one_problem(with_route(R"({"name": "a", "paths": ["/users/{id}"], "service": "users"},
                                    {"name": "b", "paths": ["/users/{user}/x"],
                                     "service": "users"})")) ==
          "routes[1].paths[0]: route 'b' names a capture {user} where route 'a' names it {id}");
    // A header-selected version of the same path is not a conflict.
    CHECK(problems_of(with_route(R"({"name": "a", "paths": ["/users/{id}"], "service": "users"},
                                    {"name": "b", "paths": ["/users/{id}"], "service": "users-v2",
                                     "headers": {"X-API-Version": "2"}})"))
              .empty());
  }

  TEST_CASE("config: addresses and CIDRs") {
    CHECK(one_problem(R"({"listeners": [{"address": "localhost"}]})") ==
          "listeners[0].address: 'localhost' is not a numeric IPv4 or IPv6 address");
    CHECK(one_problem(R"({"admin": {"address": "10.0.0.256"}})") ==
          "admin.address: '10.0.0.256' is not a numeric IPv4 or IPv6 address");
    // The parser and the messages of ip-restriction's allow and deny.
    CHECK(one_problem(R"({"server": {"trusted_proxies": ["10.0.0.0/8", "10.0.0.0/33"]}})") ==
          "server.trusted_proxies[1]: \"10.0.0.0/33\": the prefix length must be a number from 0 "
          "to 32");
    CHECK(one_problem(R"({"server": {"trusted_proxies": ["10.0.0.1/8"]}})") ==
          "server.trusted_proxies[0]: \"10.0.0.1/8\": bits are set after the /8 prefix (the "
          "network is 10.0.0.0/8)");
    CHECK(one_problem(R"({"server": {"trusted_proxies": ["::1", "2001:db8::1/32"]}})") ==
          "server.trusted_proxies[1]: \"2001:db8::1/32\": bits are set after the /32 prefix (the "
          "network is 2001:db8::/32)");
    CHECK(one_problem(R"({"server": {"trusted_proxies": ["10.0.0.0/08"]}})") ==
          "server.trusted_proxies[0]: \"10.0.0.0/08\": the prefix length must be a number from 0 "
          "to 32");
    // A zone id belongs to an address as seen on one interface, not to a
    // network: refused, saying so.
    CHECK(one_problem(R"({"server": {"trusted_proxies": ["fe80::/10", "fe80::1%eth0"]}})") ==
          "server.trusted_proxies[1]: \"fe80::1%eth0\": a zone id (\"%eth0\") cannot be part of "
          "a network: write the address without it (an X-Forwarded-For address with a zone "
          "matches the network of its address)");
    CHECK(
        one_problem(R"({"listeners": [{"port": 8080}, {"address": "127.0.0.1", "port": 8080}]})") ==
        "listeners[1].port: 127.0.0.1 port 8080 is already used by listeners[0]");
    CHECK(one_problem(R"({"listeners": [{"port": 8001}]})") ==
          "admin.port: 127.0.0.1 port 8001 is already used by listeners[0]");
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["https://10.0.0.1"]})")) ==
          "services[0].urls[0]: 'https://10.0.0.1': https upstreams are not supported; use "
          "http://");
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1/api"]})")) ==
          "services[0].urls[0]: 'http://10.0.0.1/api': expected \"http://host:port\" (no path, "
          "query or user name)");
    CHECK(one_problem(
              with_service(R"({"name": "s", "endpoints": [{"address": "a b", "port": 1}]})")) ==
          "services[0].endpoints[0].address: 'a b' is neither an address nor a host name");
    Loaded l = load(
        R"({"server": {"trusted_proxies": ["10.0.0.0/8", "::1", "fd00::/8", "192.0.2.7/32"]}})");
    CHECK(l.problems.empty());
    CHECK(l.config.server.trusted_proxies.size() == 4);
  }

  TEST_CASE("config: weights") {
    CHECK(one_problem(with_service(R"({"name": "s",
                                       "endpoints": [{"address": "10.0.0.1", "port": 80,
                                                      "weight": 0}]})")) ==
          "services[0].endpoints[0].weight: expected an integer from 1 to 10000, found 0");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"],
                                     "services": [{"name": "users", "weight": 0},
                                                  {"name": "users-v2", "weight": 0}]})")) ==
          "routes[0].services: every weight is 0: at least one service must take traffic");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"],
                                     "services": [{"name": "users", "weight": 10001}]})")) ==
          "routes[0].services[0].weight: expected an integer from 0 to 10000, found 10001");
  }

  TEST_CASE("config: rewrite must name captured parameters") {
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/users/{id}", "/people/{name}"],
                                     "service": "users", "rewrite": "/v2/users/{id}"})")) ==
          "routes[0].rewrite: names {id}, which paths[1] does not capture");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/users/{id}"], "service": "users",
                                     "rewrite": "/v2/users/{id"})")) ==
          "routes[0].rewrite: '/v2/users/{id': unclosed '{'");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/users/{id}"], "service": "users",
                                     "rewrite": "/v2/{id}", "strip_path": true})")) ==
          "routes[0].strip_path: cannot be combined with rewrite, which sets the whole path");
  }

  TEST_CASE("config: cross-field checks of services") {
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1"],
                                       "breaker": {"open_duration": "10s",
                                                   "max_open_duration": "5s"}})")) ==
          "services[0].breaker.max_open_duration: must be at least open_duration (10s)");
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1"],
                                       "retries": {"backoff_base": "1s", "backoff_max": "100ms"}})")) ==
          "services[0].retries.backoff_max: must be at least backoff_base (1s)");
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1"],
                                       "health_check": {"path": "/health", "min_status": 300,
                                                        "max_status": 200}})")) ==
          "services[0].health_check.max_status: must be at least min_status (300)");
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1"],
                                       "policy": "random"})")) ==
          "services[0].policy: expected one of \"round_robin\", \"weighted_round_robin\", "
          "\"least_request\", \"power_of_two_choices\", \"peak_ewma\", \"maglev\", found "
          "\"random\"");
  }

  TEST_CASE("config: plans and consumers") {
    CHECK(one_problem(R"({"consumers": [{"id": "alice", "plan": "platinum"}]})") ==
          "consumers[0].plan: no plan named 'platinum'");
    CHECK(one_problem(R"({"consumers": [{"id": "a", "api_keys": ["k1"]},
                                        {"id": "b", "api_keys": ["k1"]}]})") ==
          "consumers[1].api_keys[0]: this key is already given to consumer 'a'");
    // The same key written as its digest is the same key (never shown).
    CHECK(one_problem(R"({"consumers": [{"id": "a", "api_keys": ["abc"]},
        {"id": "b", "api_keys": ["sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"]}]})") ==
          "consumers[1].api_keys[0]: this key is already given to consumer 'a'");
    CHECK(one_problem(R"({"consumers": [{"id": "a", "api_keys": ["sha256:abc"]}]})") ==
          "consumers[0].api_keys[0]: a \"sha256:\" key must hold 64 hexadecimal digits");
    CHECK(one_problem(R"({"consumers": [{"id": "a", "jwt": [{"issuer": "i", "subject": "s"}]},
                                        {"id": "b", "jwt": [{"issuer": "i", "subject": "s"}]}]})") ==
          "consumers[1].jwt[0]: issuer 'i' and subject 's' already identify consumer 'a'");
    CHECK(one_problem(R"({"plans": [{"name": "p", "limits": {"minute": 0}}]})") ==
          "plans[0].limits.minute: expected an integer from 1 to 1000000000, found 0");
    CHECK(one_problem(R"({"plans": [{"name": "p", "limits": {"week": 10}}]})") ==
          "plans[0].limits.week: unknown field");
  }

  TEST_CASE("config: plugin entries") {
    CHECK(one_problem(R"({"consumers": [{"id": "a", "plugins": [{"name": "key-auth"}]}]})") ==
          "consumers[0].plugins[0].name: 'key-auth' cannot be attached to a consumer: the "
          "consumer is known only once authentication has run");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "plugins": [{"name": "rate-limit", "consumer": "bob"}]})")) ==
          "routes[0].plugins[0].consumer: no consumer with id 'bob'");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "plugin_order": ["cors"]})")) ==
          "routes[0].plugin_order[0]: 'cors' is not attached to this route, its services, a "
          "consumer or globally");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "plugins": [{"name": "cors"}],
                                     "plugin_order": ["cors", "cors"]})")) ==
          "routes[0].plugin_order[1]: 'cors' is listed twice");
    CHECK(one_problem(R"({"plugins": [{"name": ""}]})") == "plugins[0].name: must not be empty");
  }

  TEST_CASE("config: every problem is reported at once") {
    const auto all = problems_of(R"({
      "listeners": [{"address": "nowhere", "port": -1}],
      "server": {"trusted_proxies": ["300.0.0.1"], "idle_timeout": "forever"},
      "services": [{"name": "users", "urls": ["ftp://x"], "policy": "fastest"}],
      "routes": [{"name": "r", "paths": ["/a/{"], "service": "orders", "colour": "blue"}],
      "consumers": [{"id": "alice", "plan": "gold"}]
    })");
    const std::vector<std::string> expected{
        "listeners[0].address: 'nowhere' is not a numeric IPv4 or IPv6 address",
        "listeners[0].port: expected an integer from 0 to 65535, found -1",
        "server.idle_timeout: expected a duration such as \"250ms\", \"5s\" or \"2m\", found "
        "\"forever\"",
        "server.trusted_proxies[0]: \"300.0.0.1\": not an IPv4 or IPv6 address",
        "consumers[0].plan: no plan named 'gold'",
        "services[0].urls[0]: 'ftp://x': expected \"http://host:port\"",
        "services[0].policy: expected one of \"round_robin\", \"weighted_round_robin\", "
        "\"least_request\", \"power_of_two_choices\", \"peak_ewma\", \"maglev\", found "
        "\"fastest\"",
        "routes[0].paths[0]: path pattern '/a/{': unclosed '{'",
        "routes[0].service: no service named 'orders'",
        "routes[0].colour: unknown field",
    };
    CHECK(all == expected);
  }

  TEST_CASE("config: deep paths") {
    CHECK(one_problem(with_service(R"({"name": "s", "urls": ["http://10.0.0.1"],
                                       "retries": {"retry_on_statuses": [502, 700]}})")) ==
          "services[0].retries.retry_on_statuses[1]: expected an HTTP status from 100 to 599, "
          "found 700");
    CHECK(one_problem(with_route(R"({"name": "r", "paths": ["/a"], "service": "users",
                                     "headers": [{"name": "X-V", "present": false}]})")) ==
          "routes[0].headers[0].present: must be true (a condition cannot ask for an absent "
          "field)");
    CHECK(one_problem(R"({"consumers": [{"id": "a", "jwt": [{"issuer": "i", "subject": 3}]}]})") ==
          "consumers[0].jwt[0].subject: expected a string, found a number");
  }

  TEST_CASE("config: a full document read into the model") {
    Loaded l = load(R"({
      "$schema": "https://example.com/config.schema.json",
      "listeners": [{"address": "0.0.0.0", "port": 8000, "workers": 4},
                    {"address": "::", "port": 8443}],
      "admin": {"address": "127.0.0.1", "port": 9901},
      "access_log": {"path": "/var/log/portico/access.log"},
      "server": {"backlog": 512, "max_request_line": 4096, "max_head_bytes": 16384,
                 "max_headers": 64, "header_timeout": "5s", "idle_timeout": "30s",
                 "request_timeout": "60s", "drain_timeout": "10s",
                 "trusted_proxies": ["10.0.0.0/8"]},
      "plans": [{"name": "gold", "limits": {"second": 50, "day": 100000}, "daily_quota": 50000}],
      "consumers": [{"id": "alice", "plan": "gold", "api_keys": ["alice-key"],
                     "jwt": [{"issuer": "https://idp.example.com", "subject": "alice"}],
                     "plugins": [{"name": "rate-limit", "config": {"limits": {"second": 100}}}]}],
      "services": [{
        "name": "users",
        "endpoints": [{"address": "10.0.0.2", "port": 8080, "weight": 3}],
        "urls": ["http://[::1]:9000", "http://users.internal"],
        "policy": "least_request",
        "timeouts": {"connect": "1s", "response": "10s", "idle_between_bytes": "5s"},
        "pool": {"max_idle": 64, "idle_timeout": "30s", "max_requests": 1000},
        "retries": {"max_retries": 2, "retry_on_statuses": [502, 503], "backoff_base": "10ms",
                    "backoff_max": "100ms", "budget_percent": 10, "budget_min_concurrent": 2,
                    "replay_buffer_bytes": 4096},
        "health_check": {"path": "/health", "host": "users", "interval": "2s", "timeout": "1s",
                         "healthy_threshold": 1, "unhealthy_threshold": 2,
                         "min_status": 200, "max_status": 204},
        "breaker": {"consecutive_failures": 3, "failure_ratio": 0, "open_duration": "2s",
                    "max_open_duration": "30s", "max_in_flight": 100},
        "outlier": {"consecutive_failures": 4, "base_ejection_time": "10s",
                    "max_ejection_time": "1m", "max_ejection_percent": 50},
        "dns_refresh": "10s",
        "plugins": [{"name": "fallback", "config": {"cache": true}}]
      }, {"name": "users-v2", "urls": ["http://10.0.0.3:8080"]}],
      "routes": [{
        "name": "users",
        "paths": ["/api/users/{id}", "/api/people/{id}/**"],
        "methods": ["GET", "PUT"],
        "hosts": ["api.example.com", "*.example.org"],
        "headers": [{"name": "X-Beta", "present": true}, {"name": "X-Tier", "prefix": "gold"},
                    {"name": "X-Version", "regex": "2\\.[0-9]+"}],
        "query": {"format": "json"},
        "services": [{"name": "users", "weight": 90}, {"name": "users-v2", "weight": 10}],
        "rewrite": "/v2/users/{id}",
        "max_body_bytes": 1024,
        "plugins": [{"name": "cors", "enabled": false},
                    {"name": "rate-limit", "consumer": "alice", "config": {"limits": {"minute": 5}}}],
        "plugin_order": ["rate-limit", "cors"]
      }, {"name": "static", "paths": ["/static/**"], "service": "users", "strip_path": true}],
      "plugins": [{"name": "request-id"}]
    })");
    INFO(l.problems.to_string());
    REQUIRE(l.problems.empty());
    const GatewayConfig& c = l.config;

    REQUIRE(c.listeners.size() == 2);
    CHECK(c.listeners[0].address == "0.0.0.0");
    CHECK(c.listeners[0].port == 8000);
    CHECK(c.listeners[0].workers == 4);
    CHECK(c.listeners[1].address == "::");
    CHECK(c.admin.port == 9901);
    CHECK(c.access_log.enabled);
    CHECK(c.access_log.path == "/var/log/portico/access.log");
    CHECK(c.server.backlog == 512);
    CHECK(c.server.limits.max_request_line == 4096);
    CHECK(c.server.limits.max_head_bytes == 16384);
    CHECK(c.server.limits.max_headers == 64);
    CHECK(c.server.header_timeout == std::chrono::seconds(5));
    CHECK(c.server.request_timeout == std::chrono::seconds(60));
    CHECK(c.server.drain_timeout == std::chrono::seconds(10));
    CHECK(c.server.trusted_proxies == std::vector<std::string>{"10.0.0.0/8"});

    REQUIRE(c.plans.size() == 1);
    CHECK(c.plans[0].name == "gold");
    REQUIRE(c.plans[0].limits.size() == 2);
    CHECK(c.plans[0].limits[0].period == std::chrono::seconds(1));
    CHECK(c.plans[0].limits[0].limit == 50);
    CHECK(c.plans[0].limits[1].period == std::chrono::hours(24));
    CHECK(c.plans[0].daily_quota == 50000);

    REQUIRE(c.consumers.size() == 1);
    const filters::ConsumerConfig& alice = c.consumers[0].consumer;
    CHECK(alice.id == "alice");
    CHECK(alice.plan == "gold");
    CHECK(alice.api_keys == std::vector<std::string>{"alice-key"});
    REQUIRE(alice.jwt.size() == 1);
    CHECK(alice.jwt[0].issuer == "https://idp.example.com");
    CHECK(alice.jwt[0].subject == "alice");
    REQUIRE(c.consumers[0].plugins.size() == 1);
    CHECK(c.consumers[0].plugins[0].scope == PluginScope::consumer);
    CHECK(c.consumers[0].plugins[0].owner == "alice");

    REQUIRE(c.services.size() == 2);
    const proxy::ClusterOptions& users = c.services[0].cluster;
    CHECK(users.name == "users");
    REQUIRE(users.endpoints.size() == 3);
    CHECK(users.endpoints[0].address == "10.0.0.2");
    CHECK(users.endpoints[0].port == 8080);
    CHECK(users.endpoints[0].weight == 3);
    CHECK(users.endpoints[1].address == "::1");
    CHECK(users.endpoints[1].port == 9000);
    CHECK(users.endpoints[2].address == "users.internal");
    CHECK(users.endpoints[2].port == 80);
    CHECK(users.policy == BalancerPolicy::least_request);
    CHECK(users.connect_timeout == std::chrono::seconds(1));
    CHECK(users.response_timeout == std::chrono::seconds(10));
    CHECK(users.idle_between_bytes_timeout == std::chrono::seconds(5));
    CHECK(users.max_idle_per_endpoint == 64);
    CHECK(users.idle_timeout == std::chrono::seconds(30));
    CHECK(users.max_requests_per_connection == 1000);
    CHECK(users.retry.max_retries == 2);
    CHECK(users.retry.retry_on_statuses == std::vector<int>{502, 503});
    CHECK(users.retry.backoff_base == std::chrono::milliseconds(10));
    CHECK(users.retry.backoff_max == std::chrono::milliseconds(100));
    CHECK(users.retry.budget_percent == 10.0);
    CHECK(users.retry.budget_min_concurrent == 2);
    CHECK(users.retry.replay_buffer_bytes == 4096);
    CHECK(users.health_check.path == "/health");
    CHECK(users.health_check.host == "users");
    CHECK(users.health_check.interval == std::chrono::seconds(2));
    CHECK(users.health_check.healthy_threshold == 1);
    CHECK(users.health_check.max_status == 204);
    REQUIRE(users.breaker.has_value());
    CHECK(users.breaker->consecutive_failures == 3);
    CHECK(users.breaker->failure_ratio == 0.0);
    CHECK(users.breaker->open_duration == std::chrono::seconds(2));
    CHECK(users.breaker->max_in_flight == 100);
    CHECK(users.outlier.consecutive_failures == 4);
    CHECK(users.outlier.max_ejection_time == std::chrono::minutes(1));
    CHECK(users.outlier.max_ejection_percent == 50);
    CHECK(users.dns_refresh == std::chrono::seconds(10));
    CHECK_FALSE(c.services[1].cluster.breaker.has_value());
    REQUIRE(c.services[0].plugins.size() == 1);
    CHECK(c.services[0].plugins[0].scope == PluginScope::service);
    CHECK(c.services[0].plugins[0].owner == "users");
    CHECK(c.services[0].plugins[0].config->get("cache").get<bool>());

    REQUIRE(c.routes.size() == 2);
    const RouteConfig& r = c.routes[0];
    CHECK(r.name == "users");
    REQUIRE(r.paths.size() == 2);
    CHECK(r.paths[0].pattern == "/api/users/{id}");
    CHECK(r.paths[0].strip_prefix == "/api/users");
    CHECK(r.paths[1].strip_prefix == "/api/people");
    CHECK(r.methods == MethodSet{Method::get, Method::put});
    CHECK(r.hosts == std::vector<std::string>{"api.example.com", "*.example.org"});
    const std::vector<Predicate> predicates{Predicate::header_present("X-Beta"),
                                            Predicate::header_prefix("X-Tier", "gold"),
                                            Predicate::header_regex("X-Version", "2\\.[0-9]+"),
                                            Predicate::query_equals("format", "json")};
    CHECK(r.predicates == predicates);
    REQUIRE(r.services.size() == 2);
    CHECK(r.services[0].name == "users");
    CHECK(r.services[0].weight == 90);
    CHECK(r.services[1].weight == 10);
    CHECK(r.rewrite == "/v2/users/{id}");
    REQUIRE(r.rewrite_parts.size() == 2);
    CHECK_FALSE(r.rewrite_parts[0].is_capture);
    CHECK(r.rewrite_parts[0].text == "/v2/users/");
    CHECK(r.rewrite_parts[1].is_capture);
    CHECK(r.rewrite_parts[1].text == "id");
    CHECK(r.max_body_bytes == 1024);
    REQUIRE(r.plugins.size() == 2);
    CHECK_FALSE(r.plugins[0].enabled);
    CHECK(r.plugins[0].scope == PluginScope::route);
    CHECK(r.plugins[0].config->is<picojson::object>());
    CHECK(r.plugins[1].scope == PluginScope::consumer_route);
    CHECK(r.plugins[1].owner == "users");
    CHECK(r.plugins[1].consumer == "alice");
    CHECK(r.plugins[1].path == "routes[0].plugins[1]");
    CHECK(r.plugins[1].config_path == "routes[0].plugins[1].config");
    CHECK(r.plugin_order == std::vector<std::string>{"rate-limit", "cors"});

    const RouteConfig& s = c.routes[1];
    CHECK(s.strip_path);
    CHECK(s.paths[0].strip_prefix == "/static");
    REQUIRE(s.services.size() == 1);
    CHECK(s.services[0].name == "users");
    CHECK(s.services[0].weight == 1);
    CHECK(s.methods == MethodSet::any());
    CHECK(s.max_body_bytes == (8u << 20));

    REQUIRE(c.plugins.size() == 1);
    CHECK(c.plugins[0].name == "request-id");
    CHECK(c.plugins[0].scope == PluginScope::global);
    CHECK(c.plugins[0].enabled);
    CHECK(c.plugins[0].config->is<picojson::object>());
  }

  TEST_CASE("config: the example of docs/config.md reads without a problem") {
    std::ifstream file(PORTICO_TEST_DOCS_DIR "/config.md");
    REQUIRE(file.good());
    std::stringstream text;
    text << file.rdbuf();
    const std::string doc = text.str();
    // The example is the first JSON block after the heading that names it.
    const std::size_t heading = doc.find("\n## A complete example");
    REQUIRE(heading != std::string::npos);
    const std::size_t open = doc.find("```json\n", heading);
    REQUIRE(open != std::string::npos);
    const std::size_t start = open + 8;
    const std::size_t end = doc.find("\n```", start);
    REQUIRE(end != std::string::npos);
    Loaded l = load(doc.substr(start, end - start));
    INFO(l.problems.to_string());
    CHECK(l.problems.empty());
    CHECK(l.config.routes.size() >= 3);
    CHECK(l.config.consumers.size() >= 2);
  }
}

TEST_CASE("the router that checked the routes holds each (path, host) pair as the proxy gets it") {
  const Loaded loaded = load(with_route(R"({"name": "split", "paths": ["/a/{id}", "/b/**"],
      "hosts": ["api.example.com", "*.example.org"], "methods": ["GET"],
      "headers": {"X-Version": "2"},
      "services": [{"name": "users", "weight": 3}, {"name": "users-v2", "weight": 1}]})"));
  REQUIRE(loaded.problems.empty());
  REQUIRE(loaded.config.router != nullptr);
  const Router& router = *loaded.config.router;
  REQUIRE(router.size() == 4);
  const std::vector<std::pair<std::string, std::string>> order = {{"/a/{id}", "api.example.com"},
                                                                  {"/a/{id}", "*.example.org"},
                                                                  {"/b/**", "api.example.com"},
                                                                  {"/b/**", "*.example.org"}};
  for (RouteId i = 0; i < 4; ++i) {
    const RouteSpec& spec = router.route(i).spec();
    CHECK(spec.name == "split");
    CHECK(spec.path == order[i].first);
    CHECK(spec.host == order[i].second);
    CHECK(spec.methods == MethodSet{Method::get});
    CHECK(spec.predicates == std::vector{Predicate::header_equals("X-Version", "2")});
    CHECK(spec.targets == std::vector<WeightedTarget>{{"users", 3}, {"users-v2", 1}});
  }
  // One service is no weighted choice: the proxy sends to it directly.
  const Loaded single = load(with_route(R"({"name": "one", "paths": ["/x"], "service": "users"})"));
  REQUIRE(single.problems.empty());
  REQUIRE(single.config.router->size() == 1);
  CHECK(single.config.router->route(0).spec().targets.empty());
}

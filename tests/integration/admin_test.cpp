// The admin API on a real listener with a test backend: every endpoint,
// 404 and 405 in the JSON error shape, reload success and failure bodies.
#include <doctest/doctest.h>
#include <picojson.h>

#include <atomic>
#include <mutex>
#include <stdexcept>

#include "../../lib/gateway/admin.hpp"
#include "gateway.hpp"
#include "net.hpp"
#include "portico/metrics.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;
using namespace std::chrono_literals;

namespace {

class TestBackend final : public detail::AdminBackend {
 public:
  TestBackend() {
    auto f = registry.counter("portico_requests_total", "Requests.", {"route"});
    REQUIRE(f);
    f->series({"users"})->add(0, 3);
  }
  std::string metrics_text() override { return registry.render(); }
  std::string status_json() override {
    detail::AdminStatus s;
    s.version = "0.1.0";
    s.uptime = 1500ms;
    s.workers = 2;
    s.connections_active = 1;
    s.connections_total = 9;
    s.generation = generation.load();
    return detail::format_status_json(s);
  }
  std::string config_json() override {
    if (fail_config) throw std::runtime_error("config \"unavailable\"");
    return R"({"consumers":[{"id":"alice","keys":["[redacted]"]}]})";
  }
  std::string routes_json() override { return R"([{"name":"users","paths":["/users/**"]}])"; }
  detail::AdminReload reload(std::string_view body) override {
    std::lock_guard<std::mutex> lock(mu);
    bodies.emplace_back(body);
    detail::AdminReload r;
    if (body.find("bad") != std::string_view::npos) {
      r.generation = generation.load();
      r.problems.push_back({"routes[3].paths[0]", "pattern has an unclosed '{'"});
      r.problems.push_back({"services[0].endpoints", "expected an array, got a \"string\""});
      r.problems.push_back({"", "the document is empty"});
      return r;
    }
    r.reloaded = true;
    r.generation = ++generation;
    return r;
  }

  metrics::Registry registry;
  std::atomic<std::uint64_t> generation{1};
  std::atomic<bool> fail_config{false};
  std::mutex mu;
  std::vector<std::string> bodies;
};

struct Response {
  int status = 0;
  std::string head;  // lower-cased
  std::string body;
};

Response call(std::uint16_t port, const std::string& method, const std::string& path,
              const std::string& body = "") {
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: admin\r\n";
  // An empty POST goes without Content-Length, as `curl -X POST` sends it.
  if (!body.empty()) request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n" + body;
  const std::string raw = roundtrip(port, request);
  Response r;
  r.status = status_of(raw);
  const auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  r.head = raw.substr(0, end + 2);
  for (auto& ch : r.head)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  r.body = raw.substr(end + 4);
  return r;
}

picojson::value parse(const std::string& body) {
  picojson::value v;
  const std::string err = picojson::parse(v, body);
  REQUIRE_MESSAGE(err.empty(), err << " in " << body);
  return v;
}

struct AdminFixture {
  AdminFixture() : backend(std::make_shared<TestBackend>()), gw(options(backend)) {}
  static proxy::ServerOptions options(std::shared_ptr<TestBackend> b) {
    detail::AdminOptions ao;
    CHECK(ao.address == "127.0.0.1");  // loopback unless configured otherwise
    return detail::admin_server_options(ao, std::move(b));
  }
  std::shared_ptr<TestBackend> backend;
  Gateway gw;
};

void check_error_shape(const Response& r, const std::string& message) {
  CHECK(r.head.find("content-type: application/json\r\n") != std::string::npos);
  const picojson::value v = parse(r.body);
  REQUIRE(v.is<picojson::object>());
  const auto& o = v.get<picojson::object>();
  CHECK(o.at("error").get<std::string>() == message);
  REQUIRE(o.at("request_id").is<std::string>());
  CHECK(!o.at("request_id").get<std::string>().empty());
}

}  // namespace

TEST_CASE_FIXTURE(AdminFixture, "admin: GET /metrics serves the text format") {
  const Response r = call(gw.port(), "GET", "/metrics");
  CHECK(r.status == 200);
  CHECK(r.head.find("content-type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
        std::string::npos);
  CHECK(r.body ==
        "# HELP portico_requests_total Requests.\n"
        "# TYPE portico_requests_total counter\n"
        "portico_requests_total{route=\"users\"} 3\n");
}

TEST_CASE_FIXTURE(AdminFixture, "admin: GET /status, /config and /routes serve JSON") {
  Response r = call(gw.port(), "GET", "/status");
  CHECK(r.status == 200);
  CHECK(r.head.find("content-type: application/json\r\n") != std::string::npos);
  picojson::value v = parse(r.body);
  REQUIRE(v.is<picojson::object>());
  auto& s = v.get<picojson::object>();
  CHECK(s.at("version").get<std::string>() == "0.1.0");
  CHECK(s.at("uptime_seconds").get<double>() == 1.5);
  CHECK(s.at("workers").get<double>() == 2);
  CHECK(s.at("connections").get<picojson::object>().at("active").get<double>() == 1);
  CHECK(s.at("connections").get<picojson::object>().at("total").get<double>() == 9);
  CHECK(s.at("generation").get<double>() == 1);

  r = call(gw.port(), "GET", "/config");
  CHECK(r.status == 200);
  CHECK(r.body.find("[redacted]") != std::string::npos);
  CHECK(parse(r.body).is<picojson::object>());

  r = call(gw.port(), "GET", "/routes");
  CHECK(r.status == 200);
  v = parse(r.body);
  REQUIRE(v.is<picojson::array>());
  CHECK(v.get<picojson::array>().at(0).get<picojson::object>().at("name").get<std::string>() ==
        "users");
}

TEST_CASE("admin: the status lists each JWKS URL with its keys, fetches, times and last error") {
  using namespace std::chrono;
  detail::AdminStatus s;
  s.version = "0.1.0";
  s.uptime = 2s;
  s.workers = 1;
  s.generation = 4;
  CHECK(detail::format_status_json(s) ==
        R"({"version":"0.1.0","uptime_seconds":2.000,"workers":1,)"
        R"("connections":{"active":0,"total":0},"generation":4,"jwks":[]})"
        "\n");
  detail::JwksReport never;
  never.source = "plugins[0]";
  never.status.url = "https://idp.example/jwks?<redacted>";
  never.status.fetches_failed = 2;
  never.status.last_fetch_failed = true;
  never.status.last_failure = sys_days{2024y / May / 1} + 12h + 30s + 5ms;
  never.status.last_error = "jwks https://idp.example/jwks?<redacted>: answered \"HTTP\" 503";
  detail::JwksReport healthy;
  healthy.source = "routes[1].plugins[0]";
  healthy.status.url = "http://127.0.0.1:9000/certs";
  healthy.status.keys = 3;
  healthy.status.fetches_ok = 5;
  healthy.status.last_success = sys_days{2024y / May / 2};
  s.jwks = {never, healthy};
  CHECK(detail::format_status_json(s) ==
        R"({"version":"0.1.0","uptime_seconds":2.000,"workers":1,)"
        R"("connections":{"active":0,"total":0},"generation":4,"jwks":[)"
        R"({"source":"plugins[0]","url":"https://idp.example/jwks?<redacted>","keys":0,)"
        R"("fetches":{"ok":0,"error":2},"failing":true,"last_success":null,)"
        R"("last_failure":"2024-05-01T12:00:30.005Z",)"
        R"("last_error":"jwks https://idp.example/jwks?<redacted>: answered \"HTTP\" 503"},)"
        R"({"source":"routes[1].plugins[0]","url":"http://127.0.0.1:9000/certs","keys":3,)"
        R"("fetches":{"ok":5,"error":0},"failing":false,)"
        R"("last_success":"2024-05-02T00:00:00.000Z","last_failure":null,"last_error":null}]})"
        "\n");
  CHECK(parse(detail::format_status_json(s)).is<picojson::object>());
}

TEST_CASE_FIXTURE(AdminFixture, "admin: POST /reload answers the new generation or the errors") {
  Response r = call(gw.port(), "POST", "/reload");
  CHECK(r.status == 200);
  CHECK(r.body == "{\"reloaded\":true,\"generation\":2}\n");

  r = call(gw.port(), "POST", "/reload", "{\"bad\": true}");
  CHECK(r.status == 400);
  const picojson::value v = parse(r.body);
  const auto& o = v.get<picojson::object>();
  CHECK(o.at("reloaded").get<bool>() == false);
  CHECK(o.at("generation").get<double>() == 2);  // the old one keeps serving
  const auto& errors = o.at("errors").get<picojson::array>();
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].get<std::string>() == "routes[3].paths[0]: pattern has an unclosed '{'");
  CHECK(errors[1].get<std::string>() ==
        "services[0].endpoints: expected an array, got a \"string\"");
  CHECK(errors[2].get<std::string>() == "the document is empty");

  // The status follows.
  CHECK(parse(call(gw.port(), "GET", "/status").body)
            .get<picojson::object>()
            .at("generation")
            .get<double>() == 2);
  std::lock_guard<std::mutex> lock(backend->mu);
  CHECK(backend->bodies == std::vector<std::string>{"", "{\"bad\": true}"});
}

TEST_CASE_FIXTURE(AdminFixture, "admin: other methods get 405 with Allow; other paths 404") {
  Response r = call(gw.port(), "DELETE", "/metrics");
  CHECK(r.status == 405);
  CHECK(r.head.find("allow: get, head\r\n") != std::string::npos);
  check_error_shape(r, "method not allowed");

  r = call(gw.port(), "GET", "/reload");
  CHECK(r.status == 405);
  CHECK(r.head.find("allow: post\r\n") != std::string::npos);
  check_error_shape(r, "method not allowed");

  r = call(gw.port(), "POST", "/status", "x");
  CHECK(r.status == 405);

  for (const char* path : {"/", "/nope", "/metrics/extra", "/a/b/c"}) {
    INFO(path);
    r = call(gw.port(), "GET", path);
    CHECK(r.status == 404);
    check_error_shape(r, "no such admin endpoint");
  }
  r = call(gw.port(), "PUT", "/nope", "x");
  CHECK(r.status == 404);
  std::lock_guard<std::mutex> lock(backend->mu);
  CHECK(backend->bodies.empty());  // no reload ran
}

TEST_CASE_FIXTURE(AdminFixture, "admin: a backend that throws answers 500, the server goes on") {
  backend->fail_config = true;
  Response r = call(gw.port(), "GET", "/config");
  CHECK(r.status == 500);
  const picojson::value v = parse(r.body);
  CHECK(v.get<picojson::object>().at("error").get<std::string>() == "config \"unavailable\"");
  CHECK(call(gw.port(), "GET", "/routes").status == 200);
}

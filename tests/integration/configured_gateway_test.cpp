// The configured gateway (gateway::Gateway from a JSON document) as its
// operators see it: the request id of answers no route gives, in the body,
// the header and the access log; and the JWKS fetches of jwt-auth in
// /metrics and GET /status while the identity provider fails and recovers.
#include <doctest/doctest.h>
#include <picojson.h>

#include <unistd.h>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "headers.hpp"
#include "net.hpp"
#include "portico/gateway.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<gateway::Gateway> start(const std::string& document) {
  gateway::GatewayOptions o;
  o.port_overrides = {0};
  o.admin_port = 0;
  auto g = gateway::Gateway::start(document, std::move(o));
  REQUIRE_MESSAGE(g, (g ? "" : g.error().message));
  return std::move(*g);
}

std::string get(std::uint16_t port, const std::string& target, const std::string& headers = "") {
  return roundtrip(port, "GET " + target + " HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n");
}

picojson::value parse(const std::string& body) {
  picojson::value v;
  const std::string err = picojson::parse(v, body);
  REQUIRE_MESSAGE(err.empty(), err << " in " << body);
  return v;
}

// A file name in the temporary directory, removed with the object.
class TempPath {
 public:
  explicit TempPath(const std::string& stem)
      : path_(std::filesystem::temp_directory_path() /
              ("portico-" + stem + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove(path_);
  }
  ~TempPath() { std::filesystem::remove(path_); }
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;
  std::string path() const { return path_.string(); }
  std::string read() const {
    std::ifstream in(path_);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::filesystem::path path_;
};

// A JWKS endpoint on 127.0.0.1 that answers the set or fails with a 500.
class JwksEndpoint {
 public:
  JwksEndpoint() : up_(Upstream::Script([this](const std::string&) { return answer(); })) {}
  void set_failing(bool failing) { failing_ = failing; }
  int hits() const { return hits_.load(); }
  std::uint16_t port() const { return up_.port(); }

 private:
  Upstream::Answer answer() {
    ++hits_;
    if (failing_) return {"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"};
    // One HS256 key (32 bytes of secret, base64url).
    return {ok_response(
        R"({"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]})",
        "content-type: application/json\r\n")};
  }
  std::atomic<bool> failing_{true};
  std::atomic<int> hits_{0};
  Upstream up_;
};

// The single entry of GET /status's "jwks", once `ready` holds for it.
picojson::object jwks_status_when(std::uint16_t admin,
                                  const std::function<bool(const picojson::object&)>& ready) {
  picojson::object last;
  for (int i = 0; i < 100; ++i) {
    const std::string r = get(admin, "/status");
    REQUIRE(status_of(r) == 200);
    const picojson::value v = parse(body_of(r));
    const auto& list = v.get("jwks").get<picojson::array>();
    REQUIRE(list.size() == 1);
    last = list[0].get<picojson::object>();
    if (ready(last)) return last;
    std::this_thread::sleep_for(50ms);
  }
  FAIL("GET /status never showed the expected JWKS state: " << picojson::value(last).serialize());
  return last;
}

double fetches(const picojson::object& o, const char* result) {
  return o.at("fetches").get(result).get<double>();
}

// The value of the one series of /metrics that starts with `series`.
std::string metric(const std::string& text, const std::string& series) {
  const std::size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return "<absent>";
  const std::size_t start = at + 1 + series.size() + 1;
  return text.substr(start, text.find('\n', start) - start);
}

}  // namespace

TEST_CASE("gateway: a 404 carries the request id in its body, its header and the access log") {
  TempPath log("unrouted-access-log");
  RefusingPort down;
  auto gw = start(R"({"listeners": [{"port": 0, "workers": 1}], "admin": {"enabled": false},
      "access_log": {"path": ")" +
                  log.path() + R"("},
      "services": [{"name": "app", "urls": ["http://127.0.0.1:)" +
                  std::to_string(down.port()) + R"("]}],
      "routes": [{"name": "app", "paths": ["/app/**"], "service": "app", "methods": ["GET"],
                  "plugins": [{"name": "request-id", "enabled": false}]}],
      "plugins": [{"name": "request-id"}]})");

  std::string r = get(gw->port(), "/nowhere", "X-Request-ID: ops-404\r\n");
  CHECK(status_of(r) == 404);
  CHECK(header_value(r, "x-request-id") == "ops-404");
  CHECK(body_of(r) == R"({"error":"no route matches this request","request_id":"ops-404"})"
                      "\n");
  r = roundtrip(gw->port(), "DELETE /app/x HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 405);
  const std::string generated = header_value(r, "x-request-id");
  CHECK(generated.size() == 32);
  CHECK(body_of(r).find(R"("request_id":")" + generated + "\"") != std::string::npos);
  // The route switched the plugin off for itself: its own answers are not
  // marked, which shows the 404 and 405 above came from the global entry.
  r = get(gw->port(), "/app/x", "X-Request-ID: routed\r\n");
  CHECK(status_of(r) >= 500);
  CHECK_FALSE(has_header(r, "x-request-id"));

  gw->stop(0s);
  const std::string lines = log.read();
  INFO(lines);
  CHECK(lines.find(R"("request_id":"ops-404",)") != std::string::npos);
  CHECK(lines.find(R"("request_id":")" + generated + "\",") != std::string::npos);
  CHECK(
      count(
          lines,
          R"("route":"","service":"","endpoint":"","method":"GET","path":"/nowhere","status":404)") ==
      1);
}

TEST_CASE("gateway: JWKS fetch failures and recovery show in /metrics and GET /status") {
  JwksEndpoint idp;
  const std::string url = "http://127.0.0.1:" + std::to_string(idp.port()) + "/jwks";
  auto gw = start(R"({"listeners": [{"port": 0, "workers": 1}], "access_log": {"enabled": false},
      "plugins": [{"name": "jwt-auth", "config": {
          "jwks_url": ")" +
                  url + R"(?tenant=secret-tenant-token", "jwks_retry_interval": "100ms",
          "jwks_refresh_interval": "1h", "jwks_timeout": "1s"}}]})");
  const std::uint16_t admin = gw->admin_port();
  REQUIRE(admin != 0);
  const std::string shown_url = url + "?<redacted>";
  const std::string labels = R"({source="plugins[0]",url=")" + shown_url + "\"";

  // The identity provider fails: the failure, its reason, no keys.
  picojson::object s =
      jwks_status_when(admin, [](const picojson::object& o) { return fetches(o, "error") >= 1; });
  CHECK(s.at("source").get<std::string>() == "plugins[0]");
  CHECK(s.at("url").get<std::string>() == shown_url);
  CHECK(s.at("keys").get<double>() == 0);
  CHECK(fetches(s, "ok") == 0);
  CHECK(s.at("failing").get<bool>());
  CHECK(s.at("last_success").is<picojson::null>());
  CHECK(s.at("last_failure").is<std::string>());
  CHECK(s.at("last_error").get<std::string>() == "jwks " + shown_url + ": answered HTTP 500");
  std::string text = body_of(get(admin, "/metrics"));
  CHECK(std::stod(metric(text, "portico_jwks_fetches_total" + labels + R"(,result="error"})")) >=
        1);
  CHECK(metric(text, "portico_jwks_fetches_total" + labels + R"(,result="ok"})") == "0");
  CHECK(metric(text, "portico_jwks_keys" + labels + "}") == "0");
  CHECK(metric(text, "portico_jwks_last_success_timestamp_seconds" + labels + "}") == "0");
  // Requests no route takes are not the policy's to refuse.
  CHECK(status_of(get(gw->port(), "/nowhere")) == 404);

  // It recovers: the next retry fetches the set; the last error stays on
  // record, no longer current.
  idp.set_failing(false);
  s = jwks_status_when(admin, [](const picojson::object& o) { return fetches(o, "ok") >= 1; });
  CHECK(s.at("keys").get<double>() == 1);
  CHECK_FALSE(s.at("failing").get<bool>());
  CHECK(s.at("last_success").is<std::string>());
  CHECK(s.at("last_error").get<std::string>() == "jwks " + shown_url + ": answered HTTP 500");
  text = body_of(get(admin, "/metrics"));
  CHECK(metric(text, "portico_jwks_fetches_total" + labels + R"(,result="ok"})") == "1");
  CHECK(metric(text, "portico_jwks_keys" + labels + "}") == "1");
  const double last_success =
      std::stod(metric(text, "portico_jwks_last_success_timestamp_seconds" + labels + "}"));
  const auto now = static_cast<double>(std::time(nullptr));
  CHECK(last_success > now - 60);
  CHECK(last_success < now + 60);

  // The URL's query may hold a key: shown nowhere.
  CHECK(text.find("secret-tenant-token") == std::string::npos);
  CHECK(get(admin, "/status").find("secret-tenant-token") == std::string::npos);
  gw->stop(0s);
}

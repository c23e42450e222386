// The configured gateway (gateway::Gateway from a JSON document) as its
// operators see it: the request id of answers no route gives, in the body,
// the header and the access log.
#include <doctest/doctest.h>

#include <unistd.h>
#include <chrono>
#include <filesystem>
#include <fstream>
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

// fallback over real sockets: the proxy's 503 for an open breaker or a
// cluster without endpoints replaced by a static response or the last good
// cached one; what is never cached; what is never replaced.
#include <doctest/doctest.h>

#include <atomic>

#include "gateway.hpp"
#include "headers.hpp"
#include "net.hpp"
#include "portico/filters/fallback.hpp"
#include "portico/filters/request_state.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;
using namespace std::chrono_literals;

namespace {

// Stands in for key-auth: "X-Test-Consumer: <id>".
class FakeIdentity : public proxy::Filter {
 public:
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    const std::string_view consumer = ctx.request().header("x-test-consumer");
    if (!consumer.empty()) filters::request_state(ctx).consumer = filters::keep(ctx, consumer);
    return proxy::FilterStatus::next;
  }
};

std::string status_response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

filters::FallbackResponse static_json() {
  return filters::FallbackResponse{200, "application/json", R"({"items":[],"degraded":true})"};
}

proxy::ServerOptions breaker_gateway(std::uint16_t upstream_port, filters::FallbackOptions o) {
  auto f = filters::make_fallback(std::move(o));
  REQUIRE_MESSAGE(f, (f ? "" : f.error().message));
  auto cluster = cluster_of("svc", {upstream_port});
  BreakerConfig breaker;
  breaker.consecutive_failures = 2;
  breaker.open_duration = 10s;
  cluster.breaker = breaker;
  proxy::ServerOptions so;
  so.filters.push_back(std::make_shared<FakeIdentity>());
  so.clusters.push_back(cluster);
  auto route = cluster_route("/**", "svc");
  route.filters.push_back(*f);
  so.routes.push_back(route);
  return so;
}

std::string send(std::uint16_t port, const std::string& target, const std::string& headers = "",
                 const std::string& method = "GET") {
  return roundtrip(port, method + " " + target + " HTTP/1.1\r\nHost: a\r\n" + headers +
                             (method == "POST" ? "Content-Length: 3\r\n\r\nabc" : "\r\n"));
}

}  // namespace

TEST_CASE("fallback: an open breaker's 503 becomes the static response; upstream 5xx stay") {
  Upstream failing([](const std::string&) { return status_response(500, "broken"); });
  filters::FallbackOptions o;
  o.static_response = static_json();
  Gateway gw(breaker_gateway(failing.port(), o));
  // The upstream's own failures are not replaced: it answered.
  CHECK(status_of(send(gw.port(), "/a")) == 500);
  CHECK(body_of(send(gw.port(), "/a")) == "broken");
  for (int i = 0; i < 3; ++i) {
    const std::string r = send(gw.port(), "/a", "", i == 2 ? "POST" : "GET");
    CHECK(status_of(r) == 200);
    CHECK(header_value(r, "x-portico-fallback") == "static");
    CHECK(header_value(r, "content-type") == "application/json");
    CHECK(body_of(r) == R"({"items":[],"degraded":true})");
    CHECK_FALSE(has_header(r, "retry-after"));
  }
  CHECK(failing.requests().size() == 2);
}

TEST_CASE("fallback: without a trigger enabled, the proxy's 503 stands") {
  Upstream failing([](const std::string&) { return status_response(500, "broken"); });
  filters::FallbackOptions o;
  o.static_response = static_json();
  o.on_breaker_open = false;
  Gateway gw(breaker_gateway(failing.port(), o));
  send(gw.port(), "/a");
  send(gw.port(), "/a");
  const std::string r = send(gw.port(), "/a");
  CHECK(status_of(r) == 503);
  CHECK(r.find("circuit breakers are open") != std::string::npos);
  CHECK_FALSE(has_header(r, "x-portico-fallback"));
}

TEST_CASE("fallback: the last good response per route, path, query and consumer") {
  std::atomic<bool> broken{false};
  Upstream up([&](const std::string& request) {
    if (broken) return status_response(500, "broken");
    const std::string target = request.substr(request.find(' ') + 1);
    const std::string path = target.substr(0, target.find(' '));
    const std::string consumer = header_value(request, "x-test-consumer");
    const std::string body = R"({"path":")" + path + R"(","for":")" + consumer + "\"}";
    std::string extra = "content-type: application/json\r\n";
    if (path == "/cookie") extra += "set-cookie: s=1\r\n";
    if (path == "/nostore") extra += "cache-control: max-age=0, no-store\r\n";
    if (path == "/private") extra += "Cache-Control: private\r\n";
    if (path == "/big") return ok_response(std::string(2000, 'b'), extra);
    return ok_response(body, extra);
  });
  filters::FallbackOptions o;
  o.static_response = static_json();
  o.cache = true;
  o.cache_max_body_bytes = 1024;
  o.cache_entries = 8;
  Gateway gw(breaker_gateway(up.port(), o));

  for (const char* target :
       {"/items/1", "/items/2?x=1", "/cookie", "/nostore", "/private", "/big", "/overwritten"}) {
    CAPTURE(target);
    CHECK(status_of(send(gw.port(), target)) == 200);
  }
  CHECK(status_of(send(gw.port(), "/me", "X-Test-Consumer: alice\r\n")) == 200);
  CHECK(status_of(send(gw.port(), "/anon-auth", "Authorization: Bearer x\r\n")) == 200);
  CHECK(status_of(send(gw.port(), "/anon-cookie", "Cookie: s=2\r\n")) == 200);

  broken = true;
  CHECK(status_of(send(gw.port(), "/trip")) == 500);
  CHECK(status_of(send(gw.port(), "/trip")) == 500);
  const std::size_t upstream_before = up.requests().size();

  const std::string hit = send(gw.port(), "/items/1");
  CHECK(status_of(hit) == 200);
  CHECK(header_value(hit, "x-portico-fallback") == "cache");
  CHECK(header_value(hit, "content-type") == "application/json");
  CHECK(body_of(hit) == R"({"path":"/items/1","for":""})");
  const int age = std::stoi(header_value(hit, "age"));
  CHECK(age >= 0);
  CHECK(age <= 5);
  CHECK(body_of(send(gw.port(), "/items/2?x=1")) == R"({"path":"/items/2?x=1","for":""})");
  // A consumer gets its own response, and no one else does.
  const std::string mine = send(gw.port(), "/me", "X-Test-Consumer: alice\r\n");
  CHECK(header_value(mine, "x-portico-fallback") == "cache");
  CHECK(body_of(mine) == R"({"path":"/me","for":"alice"})");
  CHECK(header_value(send(gw.port(), "/me", "X-Test-Consumer: bob\r\n"), "x-portico-fallback") ==
        "static");
  CHECK(header_value(send(gw.port(), "/me"), "x-portico-fallback") == "static");
  // Never cached: another query, cookies, no-store, private, too big, POST,
  // and anonymous requests carrying credentials.
  for (const char* target : {"/items/2?x=2", "/cookie", "/nostore", "/private", "/big"}) {
    CAPTURE(target);
    CHECK(header_value(send(gw.port(), target), "x-portico-fallback") == "static");
  }
  CHECK(header_value(send(gw.port(), "/items/1", "", "POST"), "x-portico-fallback") == "static");
  CHECK(header_value(send(gw.port(), "/anon-auth", "Authorization: Bearer x\r\n"),
                     "x-portico-fallback") == "static");
  CHECK(header_value(send(gw.port(), "/anon-cookie", "Cookie: s=2\r\n"), "x-portico-fallback") ==
        "static");
  CHECK(up.requests().size() == upstream_before);
}

TEST_CASE("fallback: a cluster without endpoints; the cache alone leaves the 503 when empty") {
  SUBCASE("static") {
    filters::FallbackOptions o;
    o.static_response = filters::FallbackResponse{503, "text/plain", "down for maintenance\n"};
    auto f = filters::make_fallback(o);
    REQUIRE(f);
    proxy::ServerOptions so;
    so.clusters.push_back(cluster_of("empty", {}));
    auto route = cluster_route("/**", "empty");
    route.filters.push_back(*f);
    so.routes.push_back(route);
    Gateway gw(so);
    const std::string r = send(gw.port(), "/x");
    CHECK(status_of(r) == 503);
    CHECK(header_value(r, "x-portico-fallback") == "static");
    CHECK(body_of(r) == "down for maintenance\n");
  }
  SUBCASE("cache only, nothing cached") {
    filters::FallbackOptions o;
    o.cache = true;
    auto f = filters::make_fallback(o);
    REQUIRE(f);
    proxy::ServerOptions so;
    so.clusters.push_back(cluster_of("empty", {}));
    auto route = cluster_route("/**", "empty");
    route.filters.push_back(*f);
    so.routes.push_back(route);
    Gateway gw(so);
    const std::string r = send(gw.port(), "/x");
    CHECK(status_of(r) == 503);
    CHECK(r.find("the cluster has no endpoint") != std::string::npos);
    CHECK_FALSE(has_header(r, "x-portico-fallback"));
  }
}

TEST_CASE("fallback: cached entries expire and the oldest stored is evicted first") {
  std::atomic<bool> broken{false};
  Upstream up([&](const std::string& request) {
    if (broken) return status_response(500, "broken");
    const std::string path = request.substr(4, request.find(' ', 4) - 4);
    return ok_response("v" + path, "content-type: text/plain\r\n");
  });
  filters::FallbackOptions o;
  o.cache = true;
  o.cache_entries = 2;
  o.cache_max_age = 1s;
  Gateway gw(breaker_gateway(up.port(), o));
  send(gw.port(), "/1");
  send(gw.port(), "/2");
  send(gw.port(), "/3");  // evicts /1
  broken = true;
  send(gw.port(), "/trip");
  send(gw.port(), "/trip");
  CHECK(status_of(send(gw.port(), "/1")) == 503);
  CHECK(body_of(send(gw.port(), "/2")) == "v/2");
  CHECK(body_of(send(gw.port(), "/3")) == "v/3");
  std::this_thread::sleep_for(1200ms);
  CHECK(status_of(send(gw.port(), "/3")) == 503);  // too old to serve
}

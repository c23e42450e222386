// Steady-state proxying allocates nothing on the loop thread: after a
// warm-up, requests through the proxy (with filters that edit headers), to
// an in-process handler, and through the gateway's full policy set
// (observe with its access log, request-id, jwt-auth, rate-limit with a
// plan's two windows and daily quota) cost no heap allocation. Counted with
// tests/support/alloc_counter on the loop thread only (the scripted upstream and the client
// allocate freely).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <new>

#include "../../lib/config/json_reader.hpp"
#include "../../lib/filters/error_response.hpp"
#include "../../lib/filters/registry.hpp"
#include "../../lib/gateway/observe.hpp"
#include "../../lib/jwt/base64url.hpp"
#include "../../lib/tls/crypto.hpp"
#include "alloc_counter.hpp"
#include "gateway.hpp"
#include "net.hpp"
#include "portico/filters/consumers.hpp"
#include "portico/metrics.hpp"
#include "routes.hpp"

// libuv allocates with malloc (a writev of many pieces, for instance): its
// allocator is replaced with one that counts too.
namespace {
void* counting_malloc(std::size_t size) {
  portico::test::count_allocation();
  return std::malloc(size);
}
void* counting_realloc(void* p, std::size_t size) {
  portico::test::count_allocation();
  return std::realloc(p, size);
}
void* counting_calloc(std::size_t n, std::size_t size) {
  portico::test::count_allocation();
  return std::calloc(n, size);
}
}  // namespace

using namespace portico;
using namespace portico::test;

namespace {

// Marks the loop thread for counting, and edits headers both ways the way a
// policy would.
class Marker : public proxy::Filter {
 public:
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    portico::test::set_thread_counting(true);
    ctx.set_request_header("x-consumer", "alice");
    ctx.remove_request_header("x-api-key");
    return proxy::FilterStatus::next;
  }
  proxy::FilterStatus on_response_headers(proxy::RequestContext& ctx) override {
    ctx.set_response_header("x-served-by", "portico");
    return proxy::FilterStatus::next;
  }
};

std::uint64_t allocations_for(std::uint16_t port, const std::string& request, int warmup,
                              int measured) {
  int fd = connect_to(port);
  REQUIRE(fd >= 0);
  auto one = [&] {
    send_all(fd, request);
    std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
    REQUIRE(status_of(r) == 200);
    CHECK(r.find("x-served-by: portico") != std::string::npos);
  };
  for (int i = 0; i < warmup; ++i)
    one();
  const std::uint64_t before = portico::test::thread_counted_allocations();
  for (int i = 0; i < measured; ++i)
    one();
  const std::uint64_t used = portico::test::thread_counted_allocations() - before;
  ::close(fd);
  return used;
}

}  // namespace

// The counter itself: a zero below means nothing allocated, not that
// nothing was counted.
TEST_CASE("the allocation counter sees what a counting thread allocates, and only that") {
  const std::uint64_t before = portico::test::thread_counted_allocations();
  delete new std::string(64, 'x');  // not counting: not seen
  CHECK(portico::test::thread_counted_allocations() == before);
  portico::test::set_thread_counting(true);
  delete new std::string(64, 'x');
  void* p = counting_malloc(16);  // the allocator handed to libuv
  std::free(p);
  portico::test::set_thread_counting(false);
  CHECK(portico::test::thread_counted_allocations() >= before + 3);
}

TEST_CASE("steady state: a proxied request and a handler request allocate nothing on the loop") {
  REQUIRE(uv_replace_allocator(counting_malloc, counting_realloc, counting_calloc, std::free) == 0);
  Upstream up([](const std::string&) { return ok_response("hello"); });
  proxy::ServerOptions o;
  o.filters.push_back(std::make_shared<Marker>());
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/api/**", "svc"));
  o.routes.push_back(handler_route(
      "/local", [](const http::RequestHead&, std::string_view body, proxy::Reply& reply) {
        reply.send(200, {}, body.empty() ? std::string_view("local") : body);
      }));
  Gateway gw(o);

  const std::uint64_t proxied = allocations_for(
      gw.port(), "GET /api/items?id=7 HTTP/1.1\r\nHost: a\r\nX-Api-Key: k\r\n\r\n", 50, 200);
  MESSAGE("loop-thread allocations for 200 proxied requests: " << proxied);
  CHECK(proxied == 0);
  const std::uint64_t posted = allocations_for(
      gw.port(), "POST /api/items HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 50, 200);
  MESSAGE("loop-thread allocations for 200 proxied POSTs: " << posted);
  CHECK(posted == 0);
  const std::uint64_t chunked =
      allocations_for(gw.port(),
                      "POST /api/items HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n1\r\nd\r\n1\r\ne\r\n1\r\nf\r\n0\r\n\r\n",
                      50, 200);
  MESSAGE("loop-thread allocations for 200 chunked POSTs (6 chunks each): " << chunked);
  CHECK(chunked == 0);
  const std::uint64_t local =
      allocations_for(gw.port(), "GET /local HTTP/1.1\r\nHost: a\r\n\r\n", 50, 200);
  MESSAGE("loop-thread allocations for 200 handler requests: " << local);
  CHECK(local == 0);
}

namespace {

// Turns counting on for the loop thread, first in the chain.
class CountFrom : public proxy::Filter {
 public:
  proxy::FilterStatus on_request_headers(proxy::RequestContext&) override {
    portico::test::set_thread_counting(true);
    return proxy::FilterStatus::next;
  }
};

const std::string kSecret = "0123456789abcdef0123456789abcdef";

std::string b64(std::string_view s) {
  std::string out;
  detail::base64url_encode(s, out);
  return out;
}

std::string hs256_token(const std::string& issuer, const std::string& subject) {
  const std::string body = R"({"iss":")" + issuer + R"(","sub":")" + subject +
                           R"(","aud":"api","exp":)" +
                           std::to_string(static_cast<long long>(std::time(nullptr)) + 3600) + "}";
  const std::string input = b64(R"({"alg":"HS256","typ":"JWT","kid":"hs"})") + "." + b64(body);
  detail::HmacKey key(detail::HashAlg::sha256, detail::as_bytes(kSecret));
  const detail::Digest mac = key.mac(detail::as_bytes(input));
  return input + "." + b64({reinterpret_cast<const char*>(mac.bytes), mac.size});
}

// A plugin built from its JSON configuration, as the gateway builds it.
std::shared_ptr<proxy::Filter> plugin(
    std::shared_ptr<proxy::Filter> (*build)(detail::JsonObject&, const detail::PluginEnv&),
    const std::string& json, const detail::PluginEnv& env) {
  auto doc = detail::parse_json_document(json);
  REQUIRE(doc);
  detail::ConfigProblems problems;
  detail::JsonObject config(*doc, "config", problems);
  auto filter = build(config, env);
  REQUIRE_MESSAGE(filter, problems.to_string());
  return filter;
}

}  // namespace

TEST_CASE("steady state: the full policy set allocates nothing on the loop") {
  REQUIRE(uv_replace_allocator(counting_malloc, counting_realloc, counting_calloc, std::free) == 0);
  Upstream up([](const std::string&) { return ok_response("hello"); });

  const std::string issuer = "https://idp.example.com";
  auto consumers = filters::Consumers::create(
      {filters::ConsumerConfig{"alice", "gold", {}, {{issuer, "alice-sub"}}}},
      {filters::PlanConfig{
          "gold",
          {{std::chrono::seconds(1), 1000000}, {std::chrono::minutes(1), 10000000}},
          1000000}});
  REQUIRE(consumers);
  detail::PluginEnv env;
  env.consumers = *consumers;
  env.workers = 1;

  metrics::Registry registry;
  auto gm = detail::GatewayMetrics::register_in(registry);
  REQUIRE(gm);
  const int log_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  REQUIRE(log_fd >= 0);
  detail::AccessLogOptions lo;
  lo.flush_bytes = 4096;  // written out several times during the run
  auto log = detail::AccessLog::to_descriptor(log_fd, lo, 1);
  detail::ObserveOptions oo;
  oo.routes = {{"api", {"svc"}}};
  oo.access_log = log;
  auto observe = detail::make_observe(*gm, oo);
  REQUIRE(observe);

  proxy::ServerOptions o;
  o.error_formatter = detail::format_proxy_error;  // JSON error bodies, as the gateway's
  o.filters.push_back(std::make_shared<CountFrom>());
  o.filters.push_back(*observe);
  o.filters.push_back(plugin(detail::build_request_id, "{}", env));
  o.filters.push_back(
      plugin(detail::build_jwt_auth,
             R"({"jwks": {"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": ")" +
                 b64(kSecret) + R"("}]}, "issuers": [")" + issuer + R"("], "audiences": ["api"]})",
             env));
  o.filters.push_back(plugin(
      detail::build_rate_limit,
      R"({"limit_by": "consumer", "limits": {"minute": 1000000}, "daily_quota": 1000000})", env));
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  auto route = cluster_route("/api/**", "svc");
  route.name = "api";
  o.routes.push_back(route);
  Gateway gw(o);

  const std::string request = "GET /api/items HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " +
                              hs256_token(issuer, "alice-sub") + "\r\n\r\n";
  int fd = connect_to(gw.port());
  REQUIRE(fd >= 0);
  auto one = [&] {
    send_all(fd, request);
    std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
    REQUIRE(status_of(r) == 200);
    // The policies ran: the rate-limit and request-id fields are there, and
    // the plan's daily quota, counted on every request, is the tightest.
    CHECK(r.find("X-RateLimit-Remaining: ") != std::string::npos);
    CHECK(r.find("RateLimit: \"daily\";r=") != std::string::npos);
    CHECK(r.find("X-Request-ID: ") != std::string::npos);
  };
  // An unrouted request on the same connection: the request-id policy
  // marks its 404 too (and the jwt-auth state of the request before it must
  // not leak into its on_log).
  const std::string unrouted =
      "GET /nowhere HTTP/1.1\r\nHost: a\r\nX-Request-ID: client-id-7\r\n\r\n";
  auto miss = [&] {
    send_all(fd, unrouted);
    std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
    REQUIRE(status_of(r) == 404);
    CHECK(r.find("X-Request-ID: client-id-7\r\n") != std::string::npos);
    CHECK(r.find(R"("request_id":"client-id-7")") != std::string::npos);
  };
  for (int i = 0; i < 50; ++i) {
    one();
    miss();
  }
  const std::uint64_t before = portico::test::thread_counted_allocations();
  for (int i = 0; i < 200; ++i) {
    one();
    miss();
  }
  const std::uint64_t used = portico::test::thread_counted_allocations() - before;
  ::close(fd);
  MESSAGE(
      "loop-thread allocations for 200 requests and 200 unrouted ones through the full "
      "policy set: "
      << used);
  CHECK(used == 0);
  log->flush();
  ::close(log_fd);
}

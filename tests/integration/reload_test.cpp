// Reloading routes and clusters in place, route predicates and weighted
// clusters, and the endpoint status the admin API shows.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "net.hpp"
#include "portico/workers.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;
using namespace std::chrono_literals;

namespace {

proxy::Handler says(std::string text) {
  return [text](const http::RequestHead&, std::string_view, proxy::Reply& reply) {
    reply.send(200, {}, text);
  };
}

std::string body_of(const std::string& r) {
  const auto p = r.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : r.substr(p + 4);
}

// One request on an open keep-alive connection.
std::string exchange(int fd, std::string_view request) {
  REQUIRE(send_all(fd, request));
  return read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
}

constexpr std::string_view kGetA = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";

std::unique_ptr<proxy::Workers> start(proxy::ServerOptions o) {
  auto w = proxy::Workers::start(std::move(o), 1);
  REQUIRE_MESSAGE(w, (w ? "" : w.error().message));
  return std::move(*w);
}

// Holds the requests of /slow until released (on the loop thread).
class Holder final : public proxy::Filter {
 public:
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    if (ctx.path() != "/slow") return proxy::FilterStatus::next;
    held = ctx.pause_handle();
    paused = true;
    return proxy::FilterStatus::pause;
  }
  proxy::ResumeHandle held;
  std::atomic<bool> paused{false};
};

}  // namespace

TEST_CASE("a reload serves new requests from the new routes on the same keep-alive connection") {
  proxy::ServerOptions o;
  o.routes.push_back(handler_route("/a", says("one")));
  auto workers = start(o);

  const int fd = connect_to(workers->port());
  REQUIRE(fd >= 0);
  CHECK(body_of(exchange(fd, kGetA)) == "one");
  CHECK(status_of(roundtrip(workers->port(), "GET /b HTTP/1.1\r\nHost: h\r\n\r\n")) == 404);

  proxy::ServerOptions next;
  next.routes.push_back(handler_route("/a", says("two")));
  next.routes.push_back(handler_route("/b", says("bee")));
  REQUIRE(workers->reload(next));

  CHECK(body_of(exchange(fd, kGetA)) == "two");  // the connection was kept
  CHECK(body_of(exchange(fd, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n")) == "bee");
  ::close(fd);
  CHECK(workers->stats().connections_accepted == 2);
  CHECK(workers->stats().reloads == 1);
}

TEST_CASE("an invalid reload changes nothing and says why") {
  proxy::ServerOptions o;
  o.routes.push_back(handler_route("/a", says("one")));
  auto workers = start(o);

  proxy::ServerOptions bad;
  bad.routes.push_back(cluster_route("/a", "nowhere"));
  auto st = workers->reload(bad);
  REQUIRE_FALSE(st);
  CHECK(st.error().message.find("no cluster named 'nowhere'") != std::string::npos);
  CHECK(body_of(roundtrip(workers->port(), kGetA)) == "one");
  CHECK(workers->stats().reloads == 0);
}

TEST_CASE("a request in flight finishes on the routes and cluster it started with") {
  Upstream old_service([](const std::string&) { return ok_response("old"); });
  Upstream new_service([](const std::string&) { return ok_response("new"); });
  auto holder = std::make_shared<Holder>();
  auto options = [&](std::uint16_t port) {
    proxy::ServerOptions o;
    o.filters.push_back(holder);
    o.clusters.push_back(cluster_of("svc", {port}));
    o.routes.push_back(cluster_route("/slow", "svc"));
    o.routes.push_back(cluster_route("/a", "svc"));
    return o;
  };
  auto workers = start(options(old_service.port()));
  CHECK(body_of(roundtrip(workers->port(), kGetA)) == "old");  // pools a connection

  const int fd = connect_to(workers->port());
  REQUIRE(send_all(fd, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"));
  for (int i = 0; i < 200 && !holder->paused; ++i)
    std::this_thread::sleep_for(5ms);
  REQUIRE(holder->paused);

  REQUIRE(workers->reload(options(new_service.port())));
  CHECK(body_of(roundtrip(workers->port(), kGetA)) == "new");
  // The held request resumes on the replaced table: the old cluster.
  REQUIRE(workers->run_on_each([&](unsigned, proxy::Server&) { holder->held.resume(); }));
  const std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
  ::close(fd);
  CHECK(status_of(r) == 200);
  CHECK(body_of(r) == "old");
  CHECK(old_service.requests().size() == 2);
  CHECK(new_service.requests().size() == 1);
}

TEST_CASE("header predicates select a version; weighted clusters split traffic") {
  Upstream blue([](const std::string&) { return ok_response("blue"); });
  Upstream green([](const std::string&) { return ok_response("green"); });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("blue", {blue.port()}));
  o.clusters.push_back(cluster_of("green", {green.port()}));
  auto v2 = handler_route("/v", says("v2"));
  v2.name = "v2";
  v2.predicates.push_back(Predicate::header_equals("X-API-Version", "2"));
  o.routes.push_back(v2);
  o.routes.push_back(handler_route("/v", says("v1")));
  auto split = cluster_route("/split", "blue");
  split.weighted_clusters = {{"blue", 1}, {"green", 1}};
  o.routes.push_back(split);
  auto idle = cluster_route("/only-blue", "blue");
  idle.weighted_clusters = {{"blue", 1}, {"green", 0}};
  o.routes.push_back(idle);
  auto workers = start(o);

  CHECK(body_of(roundtrip(workers->port(), "GET /v HTTP/1.1\r\nHost: h\r\n\r\n")) == "v1");
  CHECK(body_of(roundtrip(workers->port(),
                          "GET /v HTTP/1.1\r\nHost: h\r\nX-API-Version: 2\r\n\r\n")) == "v2");
  CHECK(body_of(roundtrip(workers->port(),
                          "GET /v HTTP/1.1\r\nHost: h\r\nX-API-Version: 3\r\n\r\n")) == "v1");

  const int fd = connect_to(workers->port());
  REQUIRE(fd >= 0);
  int blues = 0, greens = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string b = body_of(exchange(fd, "GET /split HTTP/1.1\r\nHost: h\r\n\r\n"));
    blues += b == "blue";
    greens += b == "green";
  }
  CHECK(blues + greens == 200);
  CHECK(blues > 60);  // 1:1 weights; 60 is more than 5 standard deviations out
  CHECK(greens > 60);
  for (int i = 0; i < 50; ++i)
    CHECK(body_of(exchange(fd, "GET /only-blue HTTP/1.1\r\nHost: h\r\n\r\n")) == "blue");
  ::close(fd);

  proxy::ServerOptions bad = o;
  bad.routes[2].weighted_clusters = {{"blue", 1}, {"purple", 1}};
  auto st = workers->reload(bad);
  REQUIRE_FALSE(st);
  CHECK(st.error().message.find("routes[2]: no cluster named 'purple'") != std::string::npos);
}

TEST_CASE("endpoint status lists every endpoint of the current clusters") {
  Upstream a([](const std::string&) { return ok_response("a"); });
  RefusingPort refusing;
  proxy::ServerOptions o;
  auto c = cluster_of("svc", {a.port(), refusing.port()});
  c.breaker = BreakerConfig{};
  c.retry.max_retries = 0;
  o.clusters.push_back(c);
  o.routes.push_back(cluster_route("/a", "svc"));
  auto workers = start(o);
  for (int i = 0; i < 4; ++i)
    roundtrip(workers->port(), kGetA);

  std::vector<proxy::EndpointStatus> status;
  REQUIRE(workers->run_on_each(
      [&](unsigned, proxy::Server& server) { status = server.endpoint_status(); }));
  REQUIRE(status.size() == 2);
  CHECK(status[0].cluster == "svc");
  CHECK(status[0].endpoint == "127.0.0.1:" + std::to_string(a.port()));
  CHECK(status[1].endpoint == "127.0.0.1:" + std::to_string(refusing.port()));
  CHECK(status[0].idle_connections == 1);  // pooled after its answers
  CHECK(status[0].breaker == BreakerState::closed);
}

TEST_CASE("reloads under keep-alive load drop no request and no connection") {
  Upstream service([](const std::string&) { return ok_response("ok"); });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {service.port()}));
  o.routes.push_back(cluster_route("/a", "svc"));
  auto workers = start(o);

  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&] {
      const int fd = connect_to(workers->port());
      for (int i = 0; i < 400 && fd >= 0; ++i) {
        if (!send_all(fd, kGetA)) {
          ++failed;
          break;
        }
        const std::string r =
            read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
        (status_of(r) == 200 && body_of(r) == "ok") ? ++ok : ++failed;
      }
      if (fd >= 0) ::close(fd);
    });
  }
  int reloads = 0;
  for (; reloads < 50; ++reloads) {
    REQUIRE(workers->reload(o));
    std::this_thread::sleep_for(2ms);
  }
  for (auto& t : clients)
    t.join();
  done = true;
  CHECK(failed == 0);
  CHECK(ok == 1200);
  CHECK(workers->stats().connections_accepted == 3);  // no client connection was dropped
  CHECK(workers->stats().reloads == 50);
  // Replaced tables retire: their pooled upstream connections close, so
  // the upstream saw at most a few connections per reload.
  CHECK(service.connections() <= 3 * 51);
}

// Reloading routes and clusters in place, route predicates and weighted
// clusters, and the endpoint status the admin API shows.
#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "alloc_counter.hpp"
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

// ------------------------------------------- preparing off the loop

namespace {

// `n` routes /r0 .. /r{n-1}, each with a global filter and a route filter,
// to a cluster (or, with no cluster, a handler): a set whose compile is
// real work.
proxy::ServerOptions many_routes(std::size_t n, std::string_view answer) {
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {9}));
  auto pass = std::make_shared<Holder>();
  o.filters.push_back(pass);
  for (std::size_t i = 0; i < n; ++i) {
    auto r = i % 2 == 0
                 ? handler_route("/r" + std::to_string(i) + "/{id}", says(std::string(answer)))
                 : cluster_route("/r" + std::to_string(i) + "/{id}", "svc");
    r.filters.push_back(pass);
    o.routes.push_back(std::move(r));
  }
  return o;
}

// Blocks the loop thread inside a handler until released (bounded, so a
// failing test cannot hang).
struct LoopGate {
  std::atomic<bool> inside{false};
  std::atomic<bool> open{false};
  proxy::Handler handler() {
    return [this](const http::RequestHead&, std::string_view, proxy::Reply& reply) {
      inside = true;
      for (int i = 0; i < 2000 && !open; ++i)
        std::this_thread::sleep_for(5ms);
      inside = false;
      reply.send(200, {}, "held");
    };
  }
  bool wait_inside() {
    for (int i = 0; i < 1000 && !inside; ++i)
      std::this_thread::sleep_for(5ms);
    return inside;
  }
};

}  // namespace

TEST_CASE("Server::prepare compiles on another thread while the loop is busy; install swaps") {
  LoopGate gate;
  proxy::ServerOptions o;
  o.routes.push_back(handler_route("/hold", gate.handler()));
  o.routes.push_back(handler_route("/a", says("one")));
  auto workers = proxy::Workers::start(o, 2);
  REQUIRE(workers);
  std::vector<proxy::Server*> servers(2);
  REQUIRE((*workers)->run_on_each([&](unsigned i, proxy::Server& s) { servers[i] = &s; }));

  // Hold the loop of the worker that accepts this connection.
  const int fd = connect_to((*workers)->port());
  REQUIRE(fd >= 0);
  REQUIRE(send_all(fd, "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n"));
  REQUIRE(gate.wait_inside());

  // Both servers prepare the same new set on this thread, whichever loop
  // is held: prepare needs no loop.
  proxy::ServerOptions next = many_routes(2000, "two");
  next.routes.push_back(handler_route("/hold", gate.handler()));
  std::vector<proxy::PreparedRoutes> prepared;
  for (proxy::Server* s : servers) {
    auto p = s->prepare(next);
    REQUIRE_MESSAGE(p, (p ? "" : p.error().message));
    prepared.push_back(std::move(*p));
  }
  CHECK(gate.inside);  // a loop was held the whole time
  // A set with an error is refused by prepare, changing nothing.
  proxy::ServerOptions bad;
  bad.routes.push_back(cluster_route("/a", "nowhere"));
  CHECK_FALSE(servers[0]->prepare(bad));

  gate.open = true;
  const std::string held = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
  ::close(fd);
  CHECK(body_of(held) == "held");
  CHECK(body_of(roundtrip((*workers)->port(), kGetA)) == "one");  // not installed yet

  // Routes prepared for one server are refused by another.
  std::vector<std::string> errors(2);
  REQUIRE((*workers)->run_on_each([&](unsigned i, proxy::Server& s) {
    if (auto st = s.install(std::move(prepared[1 - i])); !st) errors[i] = st.error().message;
  }));
  CHECK(errors[0].find("another server") != std::string::npos);
  CHECK(errors[1].find("another server") != std::string::npos);
  CHECK((*workers)->stats().reloads == 0);
  for (auto& p : prepared)
    CHECK(p);  // a refused install leaves the routes with the caller

  std::vector<bool> installed(2);
  REQUIRE((*workers)->run_on_each([&](unsigned i, proxy::Server& s) {
    installed[i] = static_cast<bool>(s.install(std::move(prepared[i])));
    // Installed routes are gone from the caller: a second install fails.
    if (auto st = s.install(std::move(prepared[i])); !st) errors[i] = st.error().message;
  }));
  CHECK(installed == std::vector<bool>{true, true});
  CHECK(errors[0].find("empty") != std::string::npos);
  CHECK(errors[1].find("empty") != std::string::npos);
  CHECK((*workers)->stats().reloads == 1);
  CHECK(status_of(roundtrip((*workers)->port(), kGetA)) == 404);
  CHECK(body_of(roundtrip((*workers)->port(), "GET /r1998/7 HTTP/1.1\r\nHost: h\r\n\r\n")) ==
        "two");
  (*workers)->stop(Duration::zero());
}

TEST_CASE("Workers::reload compiles on the caller's thread: the worker's loop only swaps") {
  proxy::ServerOptions o;
  o.routes.push_back(handler_route("/a", says("one")));
  auto workers = start(o);
  auto loop_allocations = [&](const std::function<void()>& reload) {
    REQUIRE(
        workers->run_on_each([](unsigned, proxy::Server&) { test::set_thread_counting(true); }));
    const std::uint64_t before = test::thread_counted_allocations();
    reload();
    REQUIRE(
        workers->run_on_each([](unsigned, proxy::Server&) { test::set_thread_counting(false); }));
    return test::thread_counted_allocations() - before;
  };
  // The counter sees a compile on the loop: Server::reload there builds
  // the router and every route's chain.
  const proxy::ServerOptions big = many_routes(2000, "two");
  const std::uint64_t on_loop = loop_allocations([&] {
    bool ok = false;
    REQUIRE(workers->run_on_each([&](unsigned, proxy::Server& s) { ok = bool(s.reload(big)); }));
    CHECK(ok);
  });
  CHECK(on_loop > 2000);
  // Workers::reload: the same set costs the loop a table swap, whatever
  // the number of routes.
  const std::uint64_t swap = loop_allocations([&] { REQUIRE(workers->reload(big)); });
  CHECK(swap < 50);
  CHECK(workers->stats().reloads == 2);
  CHECK(body_of(roundtrip(workers->port(), "GET /r0/1 HTTP/1.1\r\nHost: h\r\n\r\n")) == "two");
}

TEST_CASE("Workers::reload is all or none over its workers; a replaced set is freed") {
  std::weak_ptr<proxy::Filter> first_filter;
  auto workers = [&] {
    proxy::ServerOptions o;
    auto f = std::make_shared<Holder>();
    first_filter = f;
    o.filters.push_back(std::move(f));
    o.routes.push_back(handler_route("/a", says("one")));
    return proxy::Workers::start(std::move(o), 2);
  }();
  REQUIRE(workers);
  proxy::ServerOptions bad = many_routes(100, "two");
  bad.routes.push_back(handler_route("/r0/{id}", says("again")));  // a conflict
  auto st = (*workers)->reload(bad);
  REQUIRE_FALSE(st);
  CHECK(st.error().message.find("conflicts with route '/r0/{id}'") != std::string::npos);
  std::vector<std::uint64_t> generations(2);
  REQUIRE((*workers)->run_on_each(
      [&](unsigned i, proxy::Server& s) { generations[i] = s.generation(); }));
  CHECK(generations == std::vector<std::uint64_t>{0, 0});

  REQUIRE((*workers)->reload(many_routes(100, "two")));
  REQUIRE((*workers)->run_on_each(
      [&](unsigned i, proxy::Server& s) { generations[i] = s.generation(); }));
  CHECK(generations == std::vector<std::uint64_t>{1, 1});
  // Both workers' replaced tables retired and let go of the first set,
  // whose last reference held the filter.
  for (int i = 0; i < 400 && !first_filter.expired(); ++i)
    std::this_thread::sleep_for(5ms);
  CHECK(first_filter.expired());
  for (int i = 0; i < 8; ++i)  // connections spread over both workers
    CHECK(body_of(roundtrip((*workers)->port(), "GET /r2/1 HTTP/1.1\r\nHost: h\r\n\r\n")) == "two");
}

namespace {

// The router a configuration layer would have built for `routes`.
std::shared_ptr<Router> router_of(const std::vector<proxy::RouteOptions>& routes) {
  auto router = std::make_shared<Router>();
  for (const proxy::RouteOptions& r : routes)
    REQUIRE(router->add({r.name, r.host, r.path, r.methods, r.predicates, r.weighted_clusters}));
  return router;
}

}  // namespace

TEST_CASE("a router handed over with its routes is used as is; one that differs is refused") {
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
  auto only_green = cluster_route("/g/{id}", "blue");
  only_green.weighted_clusters = {{"blue", 0}, {"green", 1}};
  o.routes.push_back(only_green);
  std::weak_ptr<Router> handed;
  auto workers = [&] {
    proxy::ServerOptions first = o;
    auto router = router_of(first.routes);
    handed = router;
    first.router = std::move(router);
    auto w = proxy::Workers::start(std::move(first), 2);
    REQUIRE_MESSAGE(w, (w ? "" : w.error().message));
    return std::move(*w);
  }();
  CHECK_FALSE(handed.expired());  // the workers' set holds it: it was not rebuilt
  for (int i = 0; i < 4; ++i) {   // connections spread over both workers
    CHECK(body_of(roundtrip(workers->port(),
                            "GET /v HTTP/1.1\r\nHost: h\r\nX-API-Version: 2\r\n\r\n")) == "v2");
    CHECK(body_of(roundtrip(workers->port(), "GET /v HTTP/1.1\r\nHost: h\r\n\r\n")) == "v1");
    CHECK(body_of(roundtrip(workers->port(), "GET /g/7 HTTP/1.1\r\nHost: h\r\n\r\n")) == "green");
  }

  // A router that does not hold exactly the routes is refused, and the
  // running set stays.
  proxy::ServerOptions moved = o;
  moved.router = router_of(o.routes);
  moved.routes[2].path = "/h/{id}";
  auto st = workers->reload(moved);
  REQUIRE_FALSE(st);
  CHECK(st.error().message == "routes[2]: differs from route 2 of the given router");
  proxy::ServerOptions reweighted = o;
  reweighted.router = router_of(o.routes);
  reweighted.routes[2].weighted_clusters[0].weight = 1;
  st = workers->reload(reweighted);
  REQUIRE_FALSE(st);
  CHECK(st.error().message == "routes[2]: differs from route 2 of the given router");
  proxy::ServerOptions fewer = o;
  fewer.router = router_of(o.routes);
  fewer.routes.pop_back();
  st = workers->reload(fewer);
  REQUIRE_FALSE(st);
  CHECK(st.error().message == "router: holds 3 routes for 2 in routes");
  CHECK(workers->stats().reloads == 0);

  // Without one, the router is built from the routes; the handed-over one
  // goes with the replaced set.
  REQUIRE(workers->reload(o));
  for (int i = 0; i < 400 && !handed.expired(); ++i)
    std::this_thread::sleep_for(5ms);
  CHECK(handed.expired());
  CHECK(body_of(roundtrip(workers->port(), "GET /g/7 HTTP/1.1\r\nHost: h\r\n\r\n")) == "green");
}

// Workers and SO_REUSEPORT over real loopback sockets: several loops on
// several threads sharing one port, and the bind errors that must come back
// as values.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "net.hpp"
#include "portico/proxy.hpp"
#include "portico/workers.hpp"

using namespace portico;
using namespace portico::test;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kGetWho = "GET /who HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

std::string thread_name() {
  return std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
}

// Answers with a name for the thread it runs on, so a test can tell which
// worker served a connection.
proxy::RouteOptions who_route() {
  proxy::RouteOptions r;
  r.name = "who";
  r.path = "/who";
  r.target = proxy::Handler([](const http::RequestHead&, std::string_view, proxy::Reply& reply) {
    reply.send(200, {}, thread_name());
  });
  return r;
}

proxy::ServerOptions who_options() {
  proxy::ServerOptions o;
  o.routes.push_back(who_route());
  return o;
}

int status_of(const std::string& response) {
  return response.size() >= 12 ? std::stoi(response.substr(9, 3)) : 0;
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// A loop on the test's thread for plain Servers; run() completes every close.
struct Loop {
  uv_loop_t loop{};
  Loop() { uv_loop_init(&loop); }
  ~Loop() { CHECK(uv_loop_close(&loop) == 0); }
  void run() { uv_run(&loop, UV_RUN_DEFAULT); }
};

std::unique_ptr<proxy::Server> server_on(Loop& l, std::uint16_t port, bool reuse_port) {
  proxy::ServerOptions o = who_options();
  o.port = port;
  o.reuse_port = reuse_port;
  auto s = proxy::Server::create(&l.loop, std::move(o));
  REQUIRE(s);
  return std::move(*s);
}

}  // namespace

TEST_CASE("two workers share an ephemeral port and both serve connections") {
  auto started = proxy::Workers::start(who_options(), 2);
  REQUIRE_MESSAGE(started, (started ? "" : started.error().message));
  proxy::Workers& workers = **started;
  CHECK(workers.size() == 2);
  REQUIRE(workers.port() != 0);

  // All connections are open at once, each with its own source port, so the
  // kernel's SO_REUSEPORT hash picks a listener for each independently.
  constexpr int kConnections = 64;
  std::vector<int> fds;
  for (int i = 0; i < kConnections; ++i) {
    const int fd = connect_to(workers.port());
    REQUIRE(fd >= 0);
    fds.push_back(fd);
  }
  for (int fd : fds)
    CHECK(send_all(fd, kGetWho));
  std::map<std::string, int> answers_by_thread;
  for (int fd : fds) {
    const std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
    ::close(fd);
    CHECK(status_of(r) == 200);
    CHECK(!body_of(r).empty());
    ++answers_by_thread[body_of(r)];
  }
  CHECK(answers_by_thread.count(thread_name()) == 0);  // never the test's thread
  REQUIRE(answers_by_thread.size() == 2);
  for (const auto& [thread, answers] : answers_by_thread) {
    INFO("thread " << thread);
    CHECK(answers >= 1);
  }

  CHECK(workers.stats().connections_accepted == kConnections);  // live while running
  workers.stop(1s);
  const proxy::ServerStats stats = workers.stats();
  CHECK(stats.connections_accepted == kConnections);
  CHECK(stats.requests == kConnections);
  CHECK(connect_to(workers.port()) < 0);  // every listener is closed
  workers.stop(1s);                       // idempotent
  CHECK(workers.stats().connections_accepted == kConnections);
}

TEST_CASE("stop() drains requests in flight on every worker") {
  Upstream upstream([](const std::string&) {
    std::this_thread::sleep_for(300ms);
    return std::string("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow");
  });
  proxy::ServerOptions o;
  proxy::ClusterOptions cluster;
  cluster.name = "slow";
  cluster.endpoints.push_back({"127.0.0.1", upstream.port()});
  o.clusters.push_back(cluster);
  proxy::RouteOptions r;
  r.name = "slow";
  r.path = "/slow";
  r.target = std::string("slow");
  o.routes.push_back(r);
  auto started = proxy::Workers::start(o, 2);
  REQUIRE_MESSAGE(started, (started ? "" : started.error().message));
  proxy::Workers& workers = **started;

  constexpr std::size_t kInFlight = 8;
  std::vector<int> fds;
  for (std::size_t i = 0; i < kInFlight; ++i) {
    const int fd = connect_to(workers.port());
    REQUIRE(fd >= 0);
    CHECK(send_all(fd, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"));
    fds.push_back(fd);
  }
  // Every request has reached the upstream, which holds each for 300 ms.
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (upstream.requests().size() < kInFlight && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  REQUIRE(upstream.requests().size() == kInFlight);

  const auto before = std::chrono::steady_clock::now();
  workers.stop(5s);
  const auto took = std::chrono::steady_clock::now() - before;
  CHECK(took < 3s);  // drained as the responses came, not at the deadline

  // The responses were written before the connections closed.
  for (int fd : fds) {
    const std::string resp = read_until(
        fd, [](const std::string& s) { return has_responses(s, 1); }, 1000ms);
    ::close(fd);
    CHECK(status_of(resp) == 200);
    CHECK(body_of(resp) == "slow");
  }
  CHECK(workers.stats().requests == kInFlight);
  CHECK(workers.stats().connections_accepted == kInFlight);
}

TEST_CASE("Workers::start returns configuration and bind errors as values") {
  SUBCASE("a route naming no cluster") {
    proxy::ServerOptions o;
    proxy::RouteOptions r;
    r.name = "orders";
    r.path = "/orders";
    r.target = std::string("ordrs");
    o.routes.push_back(r);
    auto started = proxy::Workers::start(o, 2);
    REQUIRE_FALSE(started);
    CHECK(contains(started.error().message, "routes[0]"));
    CHECK(contains(started.error().message, "ordrs"));
  }
  SUBCASE("a port held by a listener without SO_REUSEPORT") {
    Upstream holder([](const std::string&) { return std::string(); });
    proxy::ServerOptions o = who_options();
    o.port = holder.port();
    auto started = proxy::Workers::start(o, 2);
    REQUIRE_FALSE(started);
    INFO(started.error().message);
    CHECK(contains(started.error().message,
                   "cannot listen on 127.0.0.1:" + std::to_string(holder.port())));
    CHECK(contains(started.error().message, "address already in use"));
  }
}

TEST_CASE("stop() and stats() from a handler, on a worker's thread, return at once") {
  std::atomic<proxy::Workers*> self{nullptr};
  proxy::ServerOptions o;
  proxy::RouteOptions r;
  r.name = "stop";
  r.path = "/stop";
  r.target =
      proxy::Handler([&self](const http::RequestHead&, std::string_view, proxy::Reply& reply) {
        proxy::Workers* w = self.load();
        w->stop(0s);  // would wait for this thread: does nothing
        reply.send(200, {}, std::to_string(w->stats().requests));
      });
  o.routes.push_back(r);
  auto started = proxy::Workers::start(o, 2);
  REQUIRE_MESSAGE(started, (started ? "" : started.error().message));
  self = started->get();

  const std::string resp =
      roundtrip((*started)->port(), "GET /stop HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  CHECK(status_of(resp) == 200);
  CHECK(body_of(resp) == "1");  // live: this very request is counted
  CHECK(status_of(roundtrip((*started)->port(), kGetWho)) == 404);  // still serving
  (*started)->stop(1s);
  CHECK((*started)->stats().requests == 2);
}

TEST_CASE("threads 0 starts one worker per core; the destructor stops them") {
  auto started = proxy::Workers::start(who_options(), 0);
  REQUIRE_MESSAGE(started, (started ? "" : started.error().message));
  CHECK((*started)->size() == std::max(1u, std::thread::hardware_concurrency()));
  const std::string r = roundtrip((*started)->port(), kGetWho);
  CHECK(status_of(r) == 200);
}

TEST_CASE("plain Servers: reuse_port lets two share a port; without it the second fails") {
  Loop l;
  auto first = server_on(l, 0, true);
  REQUIRE(first->start());
  const std::uint16_t port = first->port();
  auto second = server_on(l, port, true);
  auto second_started = second->start();
  CHECK_MESSAGE(second_started, (second_started ? "" : second_started.error().message));
  CHECK(second->port() == port);

  auto third = server_on(l, port, false);
  auto third_started = third->start();
  REQUIRE_FALSE(third_started);
  CHECK(contains(third_started.error().message, "cannot listen on 127.0.0.1:"));
  CHECK(contains(third_started.error().message, "address already in use"));

  // And the other way round: a port bound without the option refuses one with it.
  auto plain = server_on(l, 0, false);
  REQUIRE(plain->start());
  auto late = server_on(l, plain->port(), true);
  auto late_started = late->start();
  REQUIRE_FALSE(late_started);
  CHECK(contains(late_started.error().message, "bind: address already in use"));

  first->stop(0s);
  second->stop(0s);
  plain->stop(0s);
  l.run();  // every close completes, including the failed listener's
}

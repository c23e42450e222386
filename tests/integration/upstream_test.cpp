// Active health checks and periodic DNS resolution over real loopback
// sockets: the checker, the resolver and a scripted upstream share one loop
// run in the test thread, so every count is read between two callbacks.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../../lib/upstream/health_check.hpp"
#include "../../lib/upstream/resolver.hpp"
#include "net.hpp"

using namespace std::chrono_literals;
using portico::detail::HealthChecker;
using portico::detail::Resolver;
using portico::test::RefusingPort;

namespace {

using Clock = std::chrono::steady_clock;

// A loop driven from the test thread, each run bounded by a deadline.
class Loop {
 public:
  Loop() {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &poll_);
    poll_.data = this;
    // The poll timer alone does not keep the loop running.
    uv_unref(reinterpret_cast<uv_handle_t*>(&poll_));
  }
  ~Loop() { CHECK(uv_loop_close(&loop_) == 0); }

  uv_loop_t* get() { return &loop_; }

  // Runs until `done` holds, `timeout` passes or nothing is left to run;
  // returns done().
  bool run_until(std::function<bool()> done, std::chrono::milliseconds timeout = 3s) {
    done_ = std::move(done);
    deadline_ = Clock::now() + timeout;
    uv_timer_start(&poll_, on_poll, 1, 1);
    if (!done_()) uv_run(&loop_, UV_RUN_DEFAULT);
    uv_timer_stop(&poll_);
    return done_();
  }

  // Runs for `time`, whatever happens.
  void run_for(std::chrono::milliseconds time) {
    run_until([] { return false; }, time);
  }

  // Closes the poll timer once everything else has: the loop is then empty.
  void finish() {
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
  }

 private:
  static void on_poll(uv_timer_t* timer) {
    auto* self = static_cast<Loop*>(timer->data);
    if (self->done_() || Clock::now() >= self->deadline_) uv_stop(&self->loop_);
  }

  uv_loop_t loop_;
  uv_timer_t poll_;
  std::function<bool()> done_;
  Clock::time_point deadline_;
};

sockaddr_storage loopback(std::uint16_t port) {
  sockaddr_storage storage{};
  auto& in = reinterpret_cast<sockaddr_in&>(storage);
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return storage;
}

std::string label(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

const std::string kOk = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const std::string kUnavailable = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";

// A scripted upstream on the test's loop: reads one request head per
// connection, answers it with `response` and closes; an empty response
// means hold the connection open and never answer.
class Upstream {
 public:
  Upstream(uv_loop_t* loop, std::string response) : response_(std::move(response)) {
    uv_tcp_init(loop, &listener_);
    listener_.data = this;
    open_handles_ = 1;
    sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 64, on_connection) == 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }

  std::uint16_t port() const { return port_; }
  sockaddr_storage address() const { return loopback(port_); }
  void respond_with(std::string response) { response_ = std::move(response); }

  int accepted = 0;
  int answered = 0;                   // responses written
  int closed_by_peer = 0;             // connections the checker closed first
  std::vector<std::string> requests;  // each connection's request head

  void close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), on_closed);
    for (auto& c : connections_) {
      if (c->open) close_connection(*c);
    }
  }
  bool closed() const { return open_handles_ == 0; }

 private:
  struct Connection {
    Upstream* server = nullptr;
    uv_tcp_t tcp{};
    uv_write_t write{};
    std::string received;
    std::string response;
    bool open = true;
    bool head_seen = false;
  };

  static void on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<Upstream*>(listener->data);
    if (status != 0) return;
    auto c = std::make_unique<Connection>();
    c->server = self;
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c.get();
    ++self->open_handles_;
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
      self->close_connection(*c);
      self->connections_.push_back(std::move(c));
      return;
    }
    ++self->accepted;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), alloc, on_read);
    self->connections_.push_back(std::move(c));
  }

  static void alloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
    static char scratch[4096];
    *buf = uv_buf_init(scratch, sizeof scratch);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto& c = *static_cast<Connection*>(stream->data);
    Upstream& self = *c.server;
    if (nread < 0) {
      if (!c.head_seen || self.response_.empty()) ++self.closed_by_peer;
      return self.close_connection(c);
    }
    c.received.append(buf->base, static_cast<std::size_t>(nread));
    if (c.head_seen || c.received.find("\r\n\r\n") == std::string::npos) return;
    c.head_seen = true;
    self.requests.push_back(c.received);
    if (self.response_.empty()) return;
    c.response = self.response_;
    ++self.answered;
    uv_buf_t out = uv_buf_init(c.response.data(), static_cast<unsigned>(c.response.size()));
    c.write.data = &c;
    uv_write(&c.write, stream, &out, 1, [](uv_write_t* req, int) {
      auto& conn = *static_cast<Connection*>(req->data);
      if (conn.open) conn.server->close_connection(conn);
    });
  }

  void close_connection(Connection& c) {
    c.open = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&c.tcp), [](uv_handle_t* h) {
      auto& conn = *static_cast<Connection*>(h->data);
      --conn.server->open_handles_;
    });
  }

  static void on_closed(uv_handle_t* h) { --static_cast<Upstream*>(h->data)->open_handles_; }

  uv_tcp_t listener_;
  std::uint16_t port_ = 0;
  std::string response_;
  int open_handles_ = 0;
  std::vector<std::unique_ptr<Connection>> connections_;
};

struct Change {
  std::uint64_t id;
  bool healthy;
  int count;  // what the test counts (answers, requests, checks) when it was reported
};

portico::proxy::HealthCheckOptions fast_checks() {
  portico::proxy::HealthCheckOptions o;
  o.path = "/healthz";
  o.interval = 20ms;
  o.timeout = 1s;
  o.healthy_threshold = 2;
  o.unhealthy_threshold = 3;
  return o;
}

// Stops the checker and the upstream, and waits until both have closed.
void stop_all(Loop& loop, HealthChecker& checker, Upstream* upstream) {
  bool checker_closed = false;
  checker.stop([&] { checker_closed = true; });
  if (upstream != nullptr) upstream->close();
  CHECK(loop.run_until([&] { return checker_closed && (!upstream || upstream->closed()); }));
  loop.finish();
}

}  // namespace

TEST_CASE("health check: a healthy upstream stays healthy and gets the specified request") {
  Loop loop;
  Upstream upstream(loop.get(), kOk);
  std::vector<Change> changes;
  HealthChecker checker(loop.get(), fast_checks(), [&](std::uint64_t id, bool healthy) {
    changes.push_back({id, healthy, 0});
  });
  checker.add_target(7, upstream.address(), label(upstream.port()));
  CHECK(checker.healthy(7));
  checker.start();
  REQUIRE(loop.run_until([&] { return upstream.answered >= 3; }));

  CHECK(changes.empty());
  CHECK(checker.healthy(7));
  CHECK(checker.checks_started() >= 3);
  // A fresh connection per check (the last one may not have sent yet).
  const int requests = static_cast<int>(upstream.requests.size());
  CHECK((upstream.accepted == requests || upstream.accepted == requests + 1));
  const std::string expected = "GET /healthz HTTP/1.1\r\nHost: " + label(upstream.port()) +
                               "\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n";
  for (const std::string& request : upstream.requests)
    CHECK(request == expected);
  stop_all(loop, checker, &upstream);
}

TEST_CASE("health check: the Host header is the configured host; an empty path asks for /") {
  auto options = fast_checks();
  std::string expected_start;
  SUBCASE("configured host") {
    options.host = "status.internal";
    expected_start = "GET /healthz HTTP/1.1\r\nHost: status.internal\r\n";
  }
  SUBCASE("empty path") {
    options.path.clear();
    expected_start = "GET / HTTP/1.1\r\nHost: 127.0.0.1:";
  }
  Loop loop;
  Upstream upstream(loop.get(), kOk);
  HealthChecker checker(loop.get(), options, nullptr);
  checker.add_target(1, upstream.address(), label(upstream.port()));
  checker.start();
  REQUIRE(loop.run_until([&] { return upstream.answered >= 1; }));
  CHECK(upstream.requests[0].starts_with(expected_start));
  CHECK(upstream.requests[0].ends_with(
      "\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n"));
  stop_all(loop, checker, &upstream);
}

TEST_CASE("health check: thresholds decide both transitions, each reported once") {
  Loop loop;
  Upstream upstream(loop.get(), kUnavailable);
  auto options = fast_checks();
  options.interval = 40ms;  // far longer than a loopback check takes
  std::vector<Change> changes;
  int answered_before_switch = 0;
  HealthChecker checker(loop.get(), options, [&](std::uint64_t id, bool healthy) {
    changes.push_back({id, healthy, upstream.answered - answered_before_switch});
  });
  checker.add_target(3, upstream.address(), label(upstream.port()));
  checker.start();

  REQUIRE(loop.run_until([&] { return !changes.empty(); }));
  CHECK(changes[0].id == 3);
  CHECK(changes[0].healthy == false);
  CHECK(changes[0].count == 3);  // exactly unhealthy_threshold failed checks
  CHECK_FALSE(checker.healthy(3));

  loop.run_until([&] { return upstream.answered >= 5; });
  CHECK(changes.size() == 1);  // more failures change nothing

  answered_before_switch = upstream.answered;
  upstream.respond_with(kOk);
  REQUIRE(loop.run_until([&] { return changes.size() == 2; }));
  CHECK(changes[1].healthy == true);
  CHECK(changes[1].count == 2);  // exactly healthy_threshold passing checks
  CHECK(checker.healthy(3));

  const int answered = upstream.answered;
  loop.run_until([&] { return upstream.answered >= answered + 3; });
  CHECK(changes.size() == 2);
  stop_all(loop, checker, &upstream);
}

TEST_CASE("health check: a status outside [min_status, max_status] fails") {
  Loop loop;
  Upstream upstream(loop.get(), "HTTP/1.1 204 No Content\r\n\r\n");
  auto options = fast_checks();
  options.min_status = 200;
  options.max_status = 200;
  options.unhealthy_threshold = 1;
  std::vector<Change> changes;
  HealthChecker checker(loop.get(), options, [&](std::uint64_t id, bool healthy) {
    changes.push_back({id, healthy, upstream.answered});
  });
  checker.add_target(1, upstream.address(), label(upstream.port()));
  checker.start();
  REQUIRE(loop.run_until([&] { return !changes.empty(); }));
  CHECK(changes[0].count == 1);
  CHECK_FALSE(changes[0].healthy);
  stop_all(loop, checker, &upstream);
}

TEST_CASE("health check: a port with nothing listening turns unhealthy") {
  Loop loop;
  RefusingPort refusing;
  auto options = fast_checks();
  options.unhealthy_threshold = 2;
  std::vector<Change> changes;
  HealthChecker checker(loop.get(), options, [&](std::uint64_t id, bool healthy) {
    changes.push_back({id, healthy, static_cast<int>(checker.checks_started())});
  });
  checker.add_target(9, loopback(refusing.port()), label(refusing.port()));
  checker.start();
  REQUIRE(loop.run_until([&] { return !changes.empty(); }));
  CHECK(changes.size() == 1);
  CHECK_FALSE(changes[0].healthy);
  CHECK(changes[0].count == 2);  // checks started
  stop_all(loop, checker, nullptr);
}

TEST_CASE("health check: an upstream that accepts but never answers fails by timeout") {
  Loop loop;
  Upstream upstream(loop.get(), "");
  auto options = fast_checks();
  options.timeout = 40ms;
  options.unhealthy_threshold = 2;
  std::vector<Change> changes;
  HealthChecker checker(loop.get(), options, [&](std::uint64_t id, bool healthy) {
    changes.push_back({id, healthy, static_cast<int>(upstream.requests.size())});
  });
  checker.add_target(1, upstream.address(), label(upstream.port()));
  const auto started = Clock::now();
  checker.start();
  REQUIRE(loop.run_until([&] { return !changes.empty(); }));
  const auto elapsed = Clock::now() - started;
  CHECK_FALSE(changes[0].healthy);
  // Two checks in a row, each given up at its deadline.
  CHECK(elapsed >= 75ms);
  CHECK(changes[0].count == 2);  // requests received, none answered
  CHECK(upstream.closed_by_peer >= 1);
  stop_all(loop, checker, &upstream);
}

TEST_CASE("health check: invalid or cut responses fail") {
  std::string response;
  SUBCASE("not HTTP") {
    response = "hello there\r\n\r\n";
  }
  SUBCASE("a bad status line") {
    response = "HTTP/1.1 2000 OK\r\n\r\n";
  }
  SUBCASE("an unsupported version") {
    response = "HTTP/2.0 200 OK\r\n\r\n";
  }
  SUBCASE("a head cut by the close") {
    response = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n";
  }
  SUBCASE("a head larger than the check's buffer") {
    response = "HTTP/1.1 200 OK\r\nx-padding: " + std::string(9000, 'a') + "\r\n\r\n";
  }
  Loop loop;
  Upstream upstream(loop.get(), response);
  auto options = fast_checks();
  options.unhealthy_threshold = 1;
  std::vector<Change> changes;
  HealthChecker checker(loop.get(), options, [&](std::uint64_t id, bool healthy) {
    changes.push_back({id, healthy, upstream.answered});
  });
  checker.add_target(1, upstream.address(), label(upstream.port()));
  checker.start();
  REQUIRE(loop.run_until([&] { return !changes.empty(); }));
  CHECK_FALSE(changes[0].healthy);
  CHECK(changes[0].count == 1);
  stop_all(loop, checker, &upstream);
}

TEST_CASE("health check: removing a target aborts its check in flight") {
  Loop loop;
  Upstream upstream(loop.get(), "");
  auto options = fast_checks();
  options.timeout = 5s;
  options.unhealthy_threshold = 1;
  std::vector<Change> changes;
  HealthChecker checker(loop.get(), options, [&](std::uint64_t id, bool healthy) {
    changes.push_back({id, healthy, 0});
  });
  checker.add_target(1, upstream.address(), label(upstream.port()));
  checker.start();
  REQUIRE(loop.run_until([&] { return upstream.requests.size() == 1; }));

  checker.remove_target(1);
  CHECK_FALSE(checker.healthy(1));
  // The check's connection closes at once, not at its 5 s deadline.
  CHECK(loop.run_until([&] { return upstream.closed_by_peer == 1; }, 1s));
  loop.run_for(100ms);
  CHECK(changes.empty());
  CHECK(checker.checks_started() == 1);
  CHECK(upstream.accepted == 1);
  stop_all(loop, checker, &upstream);
}

TEST_CASE("health check: stop() closes the checks in flight") {
  Loop loop;
  Upstream upstream(loop.get(), "");
  auto options = fast_checks();
  options.timeout = 5s;
  std::vector<Change> changes;
  HealthChecker checker(loop.get(), options, [&](std::uint64_t id, bool healthy) {
    changes.push_back({id, healthy, 0});
  });
  for (std::uint64_t id = 1; id <= 3; ++id)
    checker.add_target(id, upstream.address(), label(upstream.port()));
  checker.start();
  REQUIRE(loop.run_until([&] { return upstream.requests.size() == 3; }));

  const auto stopping = Clock::now();
  int closed_calls = 0;
  checker.stop([&] { ++closed_calls; });
  checker.stop([&] { ++closed_calls; });  // ignored
  REQUIRE(loop.run_until([&] { return closed_calls > 0; }, 1s));
  CHECK(Clock::now() - stopping < 500ms);
  CHECK(loop.run_until([&] { return upstream.closed_by_peer == 3; }, 1s));
  upstream.close();
  CHECK(loop.run_until([&] { return upstream.closed(); }));
  loop.finish();
  CHECK(closed_calls == 1);
  CHECK(changes.empty());
  // ~Loop checks that uv_loop_close returns 0.
}

TEST_CASE("health check: stop() from the change callback") {
  Loop loop;
  RefusingPort refusing;
  auto options = fast_checks();
  options.unhealthy_threshold = 1;
  bool closed = false;
  std::unique_ptr<HealthChecker> checker;
  checker = std::make_unique<HealthChecker>(
      loop.get(), options, [&](std::uint64_t, bool) { checker->stop([&] { closed = true; }); });
  for (std::uint64_t id = 1; id <= 4; ++id)
    checker->add_target(id, loopback(refusing.port()), label(refusing.port()));
  checker->start();
  REQUIRE(loop.run_until([&] { return closed; }));
  checker.reset();
  loop.finish();
}

TEST_CASE("health check: odd options neither crash nor spin") {
  Loop loop;
  Upstream upstream(loop.get(), kOk);
  portico::proxy::HealthCheckOptions options;
  options.path = "/";
  options.interval = 0ms;
  options.timeout = -1ms;
  options.healthy_threshold = 0;
  options.unhealthy_threshold = 0;
  HealthChecker checker(loop.get(), options, nullptr);
  sockaddr_storage unusable{};  // AF_UNSPEC: the connect fails at once
  checker.add_target(1, unusable, "nowhere");
  checker.add_target(2, upstream.address(), label(upstream.port()));
  const auto started = Clock::now();
  checker.start();
  loop.run_for(50ms);
  const auto elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  CHECK_FALSE(checker.healthy(1));
  CHECK(checker.checks_started() >= 2);
  // At most one round (two checks) per millisecond.
  CHECK(checker.checks_started() <= static_cast<std::uint64_t>(2 * (elapsed_ms + 2)));
  stop_all(loop, checker, &upstream);
}

TEST_CASE("health check: stop() before start() completes at once") {
  Loop loop;
  HealthChecker checker(loop.get(), fast_checks(), nullptr);
  checker.add_target(1, loopback(1), "127.0.0.1:1");
  bool closed = false;
  checker.stop([&] { closed = true; });
  CHECK(closed);
  loop.finish();
}

namespace {

struct Results {
  int calls = 0;
  int last_status = 0;
  std::vector<sockaddr_storage> last;
  std::function<void(int, std::span<const sockaddr_storage>)> callback() {
    return [this](int status, std::span<const sockaddr_storage> addresses) {
      ++calls;
      last_status = status;
      last.assign(addresses.begin(), addresses.end());
    };
  }
};

void stop_resolver(Loop& loop, Resolver& resolver) {
  bool closed = false;
  resolver.stop([&] { closed = true; });
  CHECK(loop.run_until([&] { return closed; }, 10s));
  loop.finish();
}

bool is_loopback_v4(const sockaddr_storage& a, std::uint16_t port) {
  const auto& in = reinterpret_cast<const sockaddr_in&>(a);
  return a.ss_family == AF_INET && in.sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
         ntohs(in.sin_port) == port;
}

std::uint16_t port_of(const sockaddr_storage& a) {
  return a.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port)
                                : ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
}

}  // namespace

TEST_CASE("resolver: localhost yields 127.0.0.1 with the port set, without duplicates") {
  Loop loop;
  Results results;
  Resolver resolver(loop.get(), "localhost", 8080, 60s, results.callback());
  resolver.start();
  CHECK(results.calls == 0);  // never from within start()
  REQUIRE(loop.run_until([&] { return results.calls == 1; }, 10s));
  CHECK(results.last_status == 0);
  bool found = false;
  for (const auto& a : results.last) {
    CHECK(port_of(a) == 8080);
    found = found || is_loopback_v4(a, 8080);
  }
  CHECK(found);
  for (std::size_t i = 1; i < results.last.size(); ++i)
    CHECK(std::memcmp(&results.last[i - 1], &results.last[i], sizeof(sockaddr_storage)) != 0);
  stop_resolver(loop, resolver);
}

TEST_CASE("resolver: numeric addresses of both families") {
  Loop loop;
  Results v4;
  Results v6;
  Resolver r4(loop.get(), "127.0.0.1", 80, 60s, v4.callback());
  Resolver r6(loop.get(), "::1", 443, 60s, v6.callback());
  r4.start();
  r6.start();
  REQUIRE(loop.run_until([&] { return v4.calls == 1 && v6.calls == 1; }, 10s));
  REQUIRE(v4.last.size() == 1);
  CHECK(is_loopback_v4(v4.last[0], 80));
  REQUIRE(v6.last.size() == 1);
  CHECK(v6.last[0].ss_family == AF_INET6);
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(v6.last[0]);
  CHECK(std::memcmp(&in6.sin6_addr, &in6addr_loopback, sizeof in6addr_loopback) == 0);
  CHECK(port_of(v6.last[0]) == 443);
  bool closed4 = false;
  bool closed6 = false;
  r4.stop([&] { closed4 = true; });
  r6.stop([&] { closed6 = true; });
  CHECK(loop.run_until([&] { return closed4 && closed6; }));
  loop.finish();
}

TEST_CASE("resolver: a name that does not exist gives an error and no addresses") {
  Loop loop;
  Results results;
  Resolver resolver(loop.get(), "does-not-exist.invalid", 80, 60s, results.callback());
  resolver.start();
  REQUIRE(loop.run_until([&] { return results.calls == 1; }, 10s));
  CHECK(results.last_status != 0);
  CHECK(results.last.empty());
  stop_resolver(loop, resolver);
}

TEST_CASE("resolver: a lookup that cannot start is reported from the loop, then retried") {
  Loop loop;
  Results results;
  // Not valid UTF-8: rejected before any lookup starts.
  Resolver resolver(loop.get(), "\xff\xfe.example", 80, 30ms, results.callback());
  resolver.start();
  CHECK(results.calls == 0);
  REQUIRE(loop.run_until([&] { return results.calls >= 2; }, 5s));
  CHECK(results.last_status != 0);
  CHECK(results.last.empty());
  stop_resolver(loop, resolver);
}

TEST_CASE("resolver: resolves again every refresh") {
  Loop loop;
  Results results;
  Resolver resolver(loop.get(), "127.0.0.1", 80, 30ms, results.callback());
  const auto started = Clock::now();
  resolver.start();
  REQUIRE(loop.run_until([&] { return results.calls >= 4; }, 5s));
  // The first at once, then three refreshes.
  CHECK(Clock::now() - started >= 90ms);
  CHECK(results.last_status == 0);
  stop_resolver(loop, resolver);
}

TEST_CASE("resolver: stop() during a pending lookup ends it with no further callback") {
  // Each round stops right after the lookup was queued: depending on the
  // thread pool it is either cancelled or already running and waited for.
  for (int round = 0; round < 20; ++round) {
    Loop loop;
    Results results;
    Resolver resolver(loop.get(), round % 2 == 0 ? "localhost" : "127.0.0.1", 80, 30ms,
                      results.callback());
    resolver.start();
    bool closed = false;
    resolver.stop([&] { closed = true; });
    resolver.stop([] { FAIL("a second stop() is ignored"); });
    REQUIRE(loop.run_until([&] { return closed; }, 10s));
    loop.run_for(50ms);
    CHECK(results.calls == 0);
    loop.finish();
  }
}

TEST_CASE("resolver: stop() from the result callback, and while waiting to refresh") {
  Loop loop;
  Results results;
  bool closed = false;
  std::unique_ptr<Resolver> resolver;
  resolver = std::make_unique<Resolver>(loop.get(), "127.0.0.1", 80, 10ms,
                                        [&](int, std::span<const sockaddr_storage>) {
                                          if (++results.calls == 2)
                                            resolver->stop([&] { closed = true; });
                                        });
  resolver->start();
  REQUIRE(loop.run_until([&] { return closed; }));
  loop.run_for(50ms);
  CHECK(results.calls == 2);
  resolver.reset();

  Results idle;
  Resolver waiting(loop.get(), "127.0.0.1", 80, 60s, idle.callback());
  waiting.start();
  REQUIRE(loop.run_until([&] { return idle.calls == 1; }));
  stop_resolver(loop, waiting);
}

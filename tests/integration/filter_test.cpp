// The filter chain over real sockets: phase order, header and path edits,
// local answers, pausing and resuming on the loop, buffered bodies, per-request
// state and on_log.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>

#include "gateway.hpp"
#include "net.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;
using proxy::FilterStatus;
using proxy::RequestContext;

namespace {

// Records the phases it sees, in order, into a shared journal.
class Recorder : public proxy::Filter {
 public:
  Recorder(std::string name, std::vector<std::string>* journal, std::mutex* mu)
      : name_(std::move(name)), journal_(journal), mu_(mu) {}
  FilterStatus on_request_headers(RequestContext&) override { return note("req"); }
  FilterStatus on_response_headers(RequestContext& ctx) override {
    ctx.add_response_header("x-seen-by", name_);
    return note("resp");
  }
  void on_log(const RequestContext& ctx) override {
    note("log" + std::to_string(ctx.outcome().status));
  }

 private:
  FilterStatus note(const std::string& what) {
    std::lock_guard<std::mutex> lock(*mu_);
    journal_->push_back(name_ + ":" + what);
    return FilterStatus::next;
  }
  std::string name_;
  std::vector<std::string>* journal_;
  std::mutex* mu_;
};

std::string header_block(const std::string& message) {
  return message.substr(0, message.find("\r\n\r\n") + 2);
}

}  // namespace

TEST_CASE("filters: global then route filters; response phases in reverse; on_log once each") {
  Upstream up([](const std::string&) { return ok_response("up"); });
  std::vector<std::string> journal;
  std::mutex mu;
  proxy::ServerOptions o;
  o.filters.push_back(std::make_shared<Recorder>("g", &journal, &mu));
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  auto route = cluster_route("/api/**", "svc");
  route.filters.push_back(std::make_shared<Recorder>("r1", &journal, &mu));
  route.filters.push_back(std::make_shared<Recorder>("r2", &journal, &mu));
  o.routes.push_back(route);
  Gateway gw(o);

  std::string r = roundtrip(gw.port(), "GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 200);
  // The innermost filter's response phase runs first.
  const std::string head = header_block(r);
  CHECK(head.find("x-seen-by: r2\r\nx-seen-by: r1\r\nx-seen-by: g\r\n") != std::string::npos);
  // on_log runs once the last byte is written, which may be just after the
  // client has read it.
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (journal.size() >= 9) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    const std::vector<std::string> expected = {"g:req",    "r1:req",    "r2:req",
                                               "r2:resp",  "r1:resp",   "g:resp",
                                               "g:log200", "r1:log200", "r2:log200"};
    CHECK(journal == expected);
    journal.clear();
  }
  // An unrouted request still reaches the global filters' on_log.
  CHECK(status_of(roundtrip(gw.port(), "GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n")) == 404);
  gw.stop();
  std::lock_guard<std::mutex> lock(mu);
  CHECK(journal == std::vector<std::string>{"g:log404"});
}

TEST_CASE("filters: request and response header edits, path rewrite, guarded names") {
  Upstream up([](const std::string&) {
    return ok_response("up", "x-internal: secret\r\nx-keep: yes\r\n");
  });
  struct Editor : proxy::Filter {
    FilterStatus on_request_headers(RequestContext& ctx) override {
      ctx.set_request_header("x-user", "alice");
      ctx.add_request_header("x-tag", "1");
      ctx.add_request_header("x-tag", "2");
      ctx.remove_request_header("x-remove-me");
      ctx.set_request_header("x-evil", "a\r\nx-injected: 1");  // refused: CR LF
      // Refused too: LF, NUL and CR past the first eight bytes and at the end.
      ctx.set_request_header("x-evil-lf", "0123456789abcdef\nx-injected: 2");
      ctx.set_request_header("x-evil-nul", std::string_view("0123456789\0x-injected: 3", 24));
      ctx.set_request_header("x-evil-cr", "0123456789abcdefgh\r");
      // A value read back from the edits (a view of their own text) stays
      // intact while the edits grow.
      for (int i = 0; i < 20; ++i)
        ctx.add_request_header("x-copy", ctx.request_header("x-user").value_or("?"));
      ctx.set_request_header("content-length", "999");  // refused: framing
      ctx.set_request_header("bad name", "v");          // refused: not a token
      ctx.set_upstream_path("/v2" + std::string(ctx.path()) + "?q=" + std::string(ctx.query()));
      CHECK(ctx.request_header("x-user") == std::optional<std::string_view>("alice"));
      CHECK_FALSE(ctx.request_header("x-remove-me"));
      CHECK(ctx.param("id") == std::optional<std::string_view>("42"));
      CHECK(ctx.route_name() == "items");
      return FilterStatus::next;
    }
    FilterStatus on_response_headers(RequestContext& ctx) override {
      CHECK(ctx.response_status() == 200);
      CHECK(ctx.response_header("x-internal") == std::optional<std::string_view>("secret"));
      ctx.remove_response_header("x-internal");
      ctx.set_response_header("x-added", "here");
      ctx.set_response_status(203);
      return FilterStatus::next;
    }
  };
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  auto route = cluster_route("/items/{id}", "svc");
  route.name = "items";
  route.filters.push_back(std::make_shared<Editor>());
  o.routes.push_back(route);
  Gateway gw(o);

  std::string r = roundtrip(
      gw.port(),
      "GET /items/42?z=1 HTTP/1.1\r\nHost: a\r\nX-Remove-Me: 1\r\nX-User: mallory\r\n\r\n");
  CHECK(status_of(r) == 203);
  CHECK(r.find("x-internal") == std::string::npos);
  CHECK(r.find("x-keep: yes") != std::string::npos);
  CHECK(r.find("x-added: here") != std::string::npos);
  auto reqs = up.requests();
  REQUIRE(reqs.size() == 1);
  const std::string& q = reqs[0];
  CHECK(q.rfind("GET /v2/items/42?q=z=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(q.find("x-user: alice\r\n") != std::string::npos);
  CHECK(q.find("mallory") == std::string::npos);
  CHECK(q.find("x-tag: 1\r\nx-tag: 2\r\n") != std::string::npos);
  std::size_t copies = 0;
  for (std::size_t at = q.find("x-copy: alice\r\n"); at != std::string::npos;
       at = q.find("x-copy: alice\r\n", at + 1))
    ++copies;
  CHECK(copies == 20);
  CHECK(q.find("X-Remove-Me") == std::string::npos);
  CHECK(q.find("x-injected") == std::string::npos);
  CHECK(q.find("x-evil") == std::string::npos);
  CHECK(q.find("999") == std::string::npos);
}

TEST_CASE("filters: header edits match names whatever their case, across many edits") {
  Upstream up([](const std::string&) { return ok_response("up", "x-from-up: 1\r\n"); });
  struct Editor : proxy::Filter {
    FilterStatus on_request_headers(RequestContext& ctx) override {
      // More names than the edits' 64 name bits, so some share a bit.
      for (int i = 0; i < 100; ++i)
        ctx.set_request_header("x-many-" + std::to_string(i), std::to_string(i));
      ctx.add_request_header("X-Twice", "1");
      ctx.set_request_header("x-TWICE", "2");  // supersedes the add
      ctx.remove_request_header("X-MANY-7");
      ctx.set_request_header("x-gone", "soon");
      ctx.remove_request_header("X-Gone");
      CHECK(ctx.request_header("X-TWICE") == std::optional<std::string_view>("2"));
      CHECK_FALSE(ctx.request_header("x-many-7"));
      CHECK(ctx.request_header("X-Many-70") == std::optional<std::string_view>("70"));
      CHECK(ctx.request_header("x-client") == std::optional<std::string_view>("c"));
      CHECK_FALSE(ctx.request_header("x-never"));
      ctx.remove_request_header("X-CLIENT");
      CHECK_FALSE(ctx.request_header("x-client"));
      // A name that passed is remembered by its bytes, not where they are:
      // the same buffer holding a refused name is judged again.
      std::string reused = "x-reused";
      ctx.set_request_header(reused, "1");
      reused[1] = ' ';
      ctx.set_request_header(reused, "2");
      reused = "x-reused";
      reused.replace(0, reused.size(), "Connection");
      ctx.set_request_header(reused, "close");
      return FilterStatus::next;
    }
    FilterStatus on_response_headers(RequestContext& ctx) override {
      ctx.set_response_header("X-FROM-UP", "2");
      return FilterStatus::next;
    }
  };
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  auto route = cluster_route("/**", "svc");
  route.filters.push_back(std::make_shared<Editor>());
  o.routes.push_back(route);
  Gateway gw(o);

  // Twice: the second request finds the names the first one set checked.
  for (int round = 0; round < 2; ++round) {
    std::string r =
        roundtrip(gw.port(), "GET / HTTP/1.1\r\nHost: a\r\nx-client: c\r\nx-kept: k\r\n\r\n");
    CHECK(status_of(r) == 200);
    CHECK(r.find("x-from-up: 1") == std::string::npos);
    CHECK(r.find("X-FROM-UP: 2\r\n") != std::string::npos);
  }
  auto reqs = up.requests();
  REQUIRE(reqs.size() == 2);
  for (const std::string& q : reqs) {
    CHECK(q.find("x-reused: 1\r\n") != std::string::npos);
    CHECK(q.find("x reused") == std::string::npos);
    CHECK(q.find("close") == std::string::npos);
    CHECK(q.find("x-client") == std::string::npos);
    CHECK(q.find("x-kept: k\r\n") != std::string::npos);
    CHECK(q.find("x-TWICE: 2\r\n") != std::string::npos);
    CHECK(q.find("X-Twice") == std::string::npos);
    CHECK(q.find("gone") == std::string::npos);
    CHECK(q.find("x-many-7:") == std::string::npos);
    for (int i : {0, 6, 8, 63, 64, 70, 99})
      CHECK(q.find("x-many-" + std::to_string(i) + ": " + std::to_string(i) + "\r\n") !=
            std::string::npos);
  }
}

TEST_CASE("filters: a local answer skips the upstream and later filters, keeps the connection") {
  Upstream up([](const std::string&) { return ok_response("up"); });
  std::vector<std::string> journal;
  std::mutex mu;
  struct Deny : proxy::Filter {
    FilterStatus on_request_headers(RequestContext& ctx) override {
      if (ctx.request().header("authorization").empty()) {
        const http::Header h[] = {{"www-authenticate", "Bearer"}};
        ctx.respond(401, "no credentials\n", h);
        return FilterStatus::respond;
      }
      return FilterStatus::next;
    }
  };
  proxy::ServerOptions o;
  o.filters.push_back(std::make_shared<Recorder>("outer", &journal, &mu));
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  auto route = cluster_route("/**", "svc");
  route.filters.push_back(std::make_shared<Deny>());
  route.filters.push_back(std::make_shared<Recorder>("after", &journal, &mu));
  o.routes.push_back(route);
  Gateway gw(o);

  int fd = connect_to(gw.port());
  REQUIRE(fd >= 0);
  send_all(
      fd,
      "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\n\r\n");
  std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 2); });
  ::close(fd);
  CHECK(status_of(r) == 401);
  CHECK(r.find("www-authenticate: Bearer") != std::string::npos);
  CHECK(r.find("no credentials") != std::string::npos);
  CHECK(r.find("x-seen-by: outer") != std::string::npos);  // the outer filter saw the answer
  CHECK(r.find("HTTP/1.1 200") != std::string::npos);      // the same connection went on
  CHECK(up.requests().size() == 1);
  gw.stop();
  std::lock_guard<std::mutex> lock(mu);
  // "after" never saw the refused request's headers, but logs both requests.
  const std::vector<std::string> expected = {
      "outer:req", "outer:resp", "outer:log401", "after:log401", "outer:req",
      "after:req", "after:resp", "outer:resp",   "outer:log200", "after:log200"};
  CHECK(journal == expected);
}

namespace {

// Pauses every request and continues it from a timer on the loop, the way
// an external call would: resume, or answer.
class Later : public proxy::Filter {
 public:
  Later(uv_loop_t* loop, bool answer) : loop_(loop), answer_(answer) {}
  FilterStatus on_request_headers(RequestContext& ctx) override {
    auto* t = new Pending{{}, ctx.pause_handle(), answer_, this};
    uv_timer_init(loop_, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, on_timer, 30, 0);
    ++paused;
    return FilterStatus::pause;
  }
  void on_log(const RequestContext& ctx) override {
    if (ctx.outcome().client_aborted) ++aborted;
  }
  std::atomic<int> paused{0}, stale{0}, aborted{0};

 private:
  struct Pending {
    uv_timer_t timer;
    proxy::ResumeHandle handle;
    bool answer;
    Later* self;
  };
  static void on_timer(uv_timer_t* t) {
    auto* p = static_cast<Pending*>(t->data);
    if (!p->handle.pending()) {
      ++p->self->stale;
      p->handle.resume();  // must do nothing
    } else if (p->answer) {
      p->handle.respond(429, "later\n");
    } else {
      p->handle.context()->set_request_header("x-resumed", "yes");
      p->handle.resume();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(t),
             [](uv_handle_t* h) { delete static_cast<Pending*>(h->data); });
  }
  uv_loop_t* loop_;
  bool answer_;
};

}  // namespace

TEST_CASE(
    "filters: pause, then resume or answer from the loop; a gone client makes the handle stale") {
  Upstream up([](const std::string& req) {
    return ok_response(req.find("x-resumed: yes") != std::string::npos ? "resumed" : "plain");
  });
  std::shared_ptr<Later> resume, answer;
  Gateway gw([&](uv_loop_t* loop) {
    resume = std::make_shared<Later>(loop, false);
    answer = std::make_shared<Later>(loop, true);
    proxy::ServerOptions o;
    o.clusters.push_back(cluster_of("svc", {up.port()}));
    o.routes.push_back(cluster_route("/go", "svc"));
    o.routes.push_back(cluster_route("/deny", "svc"));
    o.routes[0].filters.push_back(resume);
    o.routes[1].filters.push_back(answer);
    return o;
  });

  std::string r = roundtrip(gw.port(), "GET /go HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 200);
  CHECK(r.find("resumed") != std::string::npos);
  r = roundtrip(gw.port(), "GET /deny HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 429);
  CHECK(up.requests().size() == 1);

  // A client that leaves while its request is paused.
  int fd = connect_to(gw.port());
  REQUIRE(fd >= 0);
  send_all(fd, "GET /go HTTP/1.1\r\nHost: a\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  gw.stop();
  CHECK(resume->paused == 2);
  CHECK(resume->stale == 1);
  CHECK(resume->aborted == 1);
  CHECK(up.requests().size() == 1);
}

TEST_CASE("filters: buffered request and response bodies can be read and replaced") {
  Upstream up([](const std::string& req) {
    const std::string body = req.substr(req.find("\r\n\r\n") + 4);
    // Answer chunked, so the filter sees the decoded body.
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", body.size());
    return "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nupstr\r\n" +
           std::string(size) + body + "\r\n0\r\n\r\n";
  });
  struct Rewriter : proxy::Filter {
    std::string seen_request, seen_response;
    FilterStatus on_request_headers(RequestContext& ctx) override {
      ctx.buffer_request_body();
      ctx.buffer_response_body();
      return FilterStatus::next;
    }
    FilterStatus on_request_body(RequestContext& ctx, std::string_view body) override {
      seen_request = std::string(body);
      ctx.replace_body("REPLACED");
      return FilterStatus::next;
    }
    FilterStatus on_response_body(RequestContext& ctx, std::string_view body) override {
      seen_response = std::string(body);
      ctx.replace_body("{\"wrapped\":\"" + std::string(body) + "\"}");
      ctx.set_response_header("content-type", "application/json");
      return FilterStatus::next;
    }
  };
  auto rw = std::make_shared<Rewriter>();
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  auto route = cluster_route("/**", "svc");
  route.filters.push_back(rw);
  o.routes.push_back(route);
  Gateway gw(o);

  std::string r = roundtrip(gw.port(),
                            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n");
  CHECK(status_of(r) == 200);
  CHECK(rw->seen_request == "hello world");
  auto reqs = up.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].find("content-length: 8\r\n") != std::string::npos);
  CHECK(reqs[0].find("transfer-encoding") == std::string::npos);
  CHECK(reqs[0].substr(reqs[0].size() - 8) == "REPLACED");
  CHECK(rw->seen_response == "upstrREPLACED");
  const std::string expected = "{\"wrapped\":\"upstrREPLACED\"}";
  CHECK(r.find("content-length: " + std::to_string(expected.size())) != std::string::npos);
  CHECK(r.find("content-type: application/json") != std::string::npos);
  CHECK(r.find("transfer-encoding") == std::string::npos);
  CHECK(r.substr(r.size() - expected.size()) == expected);
}

TEST_CASE("filters: per-request state slots, the arena, handler answers pass response filters") {
  struct Stateful : proxy::Filter {
    std::atomic<int> matched{0};
    FilterStatus on_request_headers(RequestContext& ctx) override {
      auto* n = static_cast<std::uint64_t*>(ctx.allocate(sizeof(std::uint64_t)));
      *n = ctx.request_id();
      ctx.set_state(n);
      return FilterStatus::next;
    }
    FilterStatus on_response_headers(RequestContext& ctx) override {
      ctx.set_response_header("x-request-id", std::to_string(ctx.request_id()));
      return FilterStatus::next;
    }
    void on_log(const RequestContext& ctx) override {
      auto* n = static_cast<std::uint64_t*>(ctx.state());
      if (n != nullptr && *n == ctx.request_id()) ++matched;
    }
  };
  auto st = std::make_shared<Stateful>();
  proxy::ServerOptions o;
  auto route = handler_route("/h", echo_handler());
  route.filters.push_back(st);
  o.routes.push_back(route);
  Gateway gw(o);
  std::string r = roundtrip(
      gw.port(), "GET /h HTTP/1.1\r\nHost: a\r\n\r\nGET /h HTTP/1.1\r\nHost: a\r\n\r\n", 2);
  CHECK(count(r, "x-request-id: ") == 2);
  gw.stop();
  CHECK(st->matched == 2);
}

TEST_CASE("filters: a null filter is a configuration error naming it") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  proxy::ServerOptions o;
  auto route = handler_route("/h", echo_handler());
  route.filters.push_back(nullptr);
  o.routes.push_back(route);
  auto s = proxy::Server::create(&loop, o);
  REQUIRE_FALSE(s);
  CHECK(s.error().message == "routes[0].filters[0]: the filter is null");
  uv_loop_close(&loop);
}

namespace {

// Keeps state on the requests it sees, and notes the early errors it hears
// of and whether on_log finds its slot empty.
class EarlyProbe : public proxy::Filter {
 public:
  EarlyProbe(std::string name, std::vector<std::string>* journal, std::mutex* mu)
      : name_(std::move(name)), journal_(journal), mu_(mu) {}
  FilterStatus on_request_headers(RequestContext& ctx) override {
    ctx.set_state(ctx.allocate(8));
    return FilterStatus::next;
  }
  void on_early_error(RequestContext& ctx) override {
    note("early" + std::to_string(ctx.response_status()) + ":" + std::string(ctx.proxy_error()));
    ctx.add_response_header("x-early", name_);
    // Neither may replace the proxy's answer.
    ctx.respond(200, "replaced");
    ctx.set_response_status(204);
  }
  void on_log(const RequestContext& ctx) override {
    note("log" + std::to_string(ctx.outcome().status) + (ctx.state() ? ":state" : ":empty"));
  }

 private:
  void note(const std::string& what) {
    std::lock_guard<std::mutex> lock(*mu_);
    journal_->push_back(name_ + ":" + what);
  }
  std::string name_;
  std::vector<std::string>* journal_;
  std::mutex* mu_;
};

}  // namespace

TEST_CASE("filters: on_early_error before the proxy's own early answers; empty slots in on_log") {
  std::vector<std::string> journal;
  std::mutex mu;
  proxy::ServerOptions o;
  o.filters.push_back(std::make_shared<EarlyProbe>("g", &journal, &mu));
  o.unrouted_filters.push_back(std::make_shared<EarlyProbe>("u", &journal, &mu));
  auto route = handler_route("/h", echo_handler());
  route.max_body_bytes = 10;
  route.filters.push_back(std::make_shared<EarlyProbe>("r", &journal, &mu));
  o.routes.push_back(route);
  Gateway gw(o);
  auto settle = [&](std::size_t entries) {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (journal.size() >= entries) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::string> out;
    out.swap(journal);
    return out;
  };

  // One keep-alive connection: the routed request leaves state in the
  // slots, which the unrouted one after it must not see.
  const int fd = connect_to(gw.port());
  REQUIRE(fd >= 0);
  REQUIRE(send_all(fd, "GET /h HTTP/1.1\r\nHost: a\r\n\r\n"));
  CHECK(status_of(read_until(fd, [](const std::string& s) { return has_responses(s, 1); })) == 200);
  CHECK(settle(2) == std::vector<std::string>{"g:log200:state", "r:log200:state"});

  REQUIRE(send_all(fd, "GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
  CHECK(status_of(r) == 404);
  CHECK(header_block(r).find("x-early: g\r\nx-early: u\r\n") != std::string::npos);
  CHECK(r.find("replaced") == std::string::npos);
  CHECK(settle(4) == std::vector<std::string>{"g:early404:no route matches this request",
                                              "u:early404:no route matches this request",
                                              "g:log404:empty", "u:log404:empty"});

  // A body larger than the route allows: the route's chain hears of it.
  REQUIRE(send_all(fd, "POST /h HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"));
  r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
  CHECK(status_of(r) == 413);
  CHECK(header_block(r).find("x-early: g\r\nx-early: r\r\n") != std::string::npos);
  const std::string cause = "the request body is larger than this route allows";
  CHECK(settle(4) == std::vector<std::string>{"g:early413:" + cause, "r:early413:" + cause,
                                              "g:log413:empty", "r:log413:empty"});
  ::close(fd);
}

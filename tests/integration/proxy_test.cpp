// The server and proxy over real loopback sockets: a Portico gateway on its
// own loop thread, scripted upstreams, raw bytes from the client side.
#include <doctest/doctest.h>

#include <csignal>
#include <optional>
#include <stdexcept>

#include "gateway.hpp"
#include "net.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;
using namespace std::chrono_literals;

namespace {

// Whether the peer closed `fd`: a read sees the end of the stream (within
// a second) rather than data or silence.
bool peer_closed(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 1000) <= 0) return false;
  char byte;
  return ::recv(fd, &byte, 1, 0) == 0;
}

}  // namespace

TEST_CASE("in-process handler: keep-alive, pipelining in order, HEAD without body") {
  proxy::ServerOptions o;
  o.routes.push_back(handler_route("/echo", echo_handler()));
  Gateway gw(o);

  std::string r = roundtrip(gw.port(), "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 200);
  CHECK(r.find("x-method: GET") != std::string::npos);
  CHECK(r.substr(r.size() - 5) == "hello");

  // Two pipelined requests in one write: two responses, in order.
  r = roundtrip(gw.port(),
                "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nonePOST /echo "
                "HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\ntwo",
                2);
  CHECK(count(r, "HTTP/1.1 200") == 2);
  CHECK(r.find("one") < r.find("two"));

  r = roundtrip(gw.port(), "HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 200);
  CHECK(r.find("content-length: 5") != std::string::npos);
  CHECK(r.substr(r.find("\r\n\r\n") + 4).empty());
  CHECK(gw.stats().connections_accepted == 3);
}

TEST_CASE("routing and parse errors answer with the right status") {
  proxy::ServerOptions o;
  o.limits.max_request_line = 256;
  o.limits.max_head_bytes = 1024;
  proxy::RouteOptions get_only = handler_route("/only-get", echo_handler());
  get_only.methods = {Method::get};
  o.routes.push_back(get_only);
  Gateway gw(o);
  CHECK(status_of(roundtrip(gw.port(), "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")) == 404);
  const std::string not_allowed =
      roundtrip(gw.port(), "DELETE /only-get HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(not_allowed) == 405);
  // RFC 9110: a 405 names the methods the resource has.
  CHECK(not_allowed.find("\r\nallow: GET") != std::string::npos);
  CHECK(status_of(roundtrip(
            gw.port(), "GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n")) == 414);
  CHECK(status_of(roundtrip(gw.port(), "GET /only-get HTTP/1.1\r\nHost: a\r\nX: " +
                                           std::string(2000, 'b') + "\r\n\r\n")) == 431);
  const std::string smuggle =
      "POST /only-get HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0\r\n\r\n";
  std::string r = roundtrip(gw.port(), smuggle);
  CHECK(status_of(r) == 400);
  CHECK(r.find("connection: close") != std::string::npos);
  CHECK(status_of(roundtrip(gw.port(), "GET /only-get/../only-get HTTP/1.1\r\nHost: a\r\n\r\n")) ==
        200);
  CHECK(status_of(roundtrip(gw.port(), "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n")) == 400);
}

TEST_CASE("proxy errors keep the connection when the request was read whole") {
  proxy::ServerOptions o;
  // A port nothing listens on: bind one, then close it.
  std::uint16_t dead_port;
  {
    Upstream probe([](const std::string&) { return std::string(); });
    dead_port = probe.port();
  }
  auto dead = cluster_of("dead", {dead_port});
  dead.retry.max_retries = 0;
  o.clusters.push_back(dead);
  o.routes.push_back(cluster_route("/dead", "dead"));
  o.routes.push_back(handler_route("/echo", echo_handler()));
  Gateway gw(o);
  const int fd = connect_to(gw.port());
  REQUIRE(fd >= 0);
  auto one = [&](const std::string& request) {
    REQUIRE(send_all(fd, request));
    return read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
  };
  std::string r = one("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 404);
  CHECK(r.find("connection: close") == std::string::npos);
  // A body nobody read, already in the buffer, is passed over.
  r = one("POST /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(status_of(r) == 404);
  CHECK(r.find("connection: close") == std::string::npos);
  r = one("GET /dead HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 502);
  CHECK(r.find("connection: close") == std::string::npos);
  r = one("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 200);
  CHECK(r.substr(r.size() - 5) == "hello");
  CHECK(gw.stats().connections_accepted == 1);
  ::close(fd);

  // A body that has not all arrived cannot be passed over: answer, close.
  const int partial = connect_to(gw.port());
  REQUIRE(partial >= 0);
  REQUIRE(send_all(partial, "POST /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhel"));
  r = read_until(partial, [](const std::string& s) { return has_responses(s, 1); });
  CHECK(status_of(r) == 404);
  CHECK(r.find("connection: close") != std::string::npos);
  CHECK(peer_closed(partial));
  ::close(partial);
}

TEST_CASE("a request that does not parse is answered and its connection closed") {
  proxy::ServerOptions o;
  o.routes.push_back(handler_route("/echo", echo_handler()));
  Gateway gw(o);
  for (const char* raw :
       {"GET /echo HTTP/1.1 extra\r\nHost: a\r\n\r\n", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"}) {
    INFO(raw);
    const int fd = connect_to(gw.port());
    REQUIRE(fd >= 0);
    // A second request follows: it must not be read as one.
    REQUIRE(send_all(fd, std::string(raw) + "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"));
    const std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
    CHECK(status_of(r) == 400);
    CHECK(r.find("connection: close") != std::string::npos);
    CHECK(peer_closed(fd));
    ::close(fd);
  }
}

TEST_CASE("the embedder chooses the body of the proxy's own errors") {
  struct SetsId final : proxy::Filter {
    proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
      static const char kId[] = "req-7";
      ctx.set_shared_state(const_cast<char*>(kId));
      return proxy::FilterStatus::next;
    }
  };
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("empty", {}));
  proxy::RouteOptions empty = cluster_route("/empty", "empty");
  empty.filters.push_back(std::make_shared<SetsId>());
  o.routes.push_back(empty);
  o.error_formatter = [](const proxy::RequestContext& ctx, int status, std::string_view cause,
                         std::string& body) -> std::string_view {
    if (cause.find("no route") != std::string_view::npos && ctx.request().path == "/throw")
      throw std::runtime_error("formatter failed");
    const char* id = static_cast<const char*>(ctx.shared_state());
    body += "{\"status\":" + std::to_string(status) + ",\"error\":\"" + std::string(cause) +
            "\",\"id\":\"" + (id ? std::string(id) : std::to_string(ctx.request_id())) + "\"}";
    return "application/json";
  };
  Gateway gw(o);
  std::string r = roundtrip(gw.port(), "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 404);
  CHECK(r.find("content-type: application/json\r\n") != std::string::npos);
  CHECK(r.find("\r\n\r\n{\"status\":404,\"error\":\"no route matches this request\",\"id\":\"") !=
        std::string::npos);
  // The state the route's filters left is there for the formatter.
  r = roundtrip(gw.port(), "GET /empty HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 503);
  CHECK(r.find("\"id\":\"req-7\"}") != std::string::npos);
  // A head that never parsed still has a request number to quote.
  r = roundtrip(gw.port(), "GET /echo HTTP/1.1 extra\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 400);
  CHECK(r.find("\"id\":\"0\"") == std::string::npos);
  // A formatter that throws: the default text body instead.
  r = roundtrip(gw.port(), "GET /throw HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 404);
  CHECK(r.find("content-type: text/plain\r\n") != std::string::npos);
  CHECK(r.find("no route matches this request (request ") != std::string::npos);
}

TEST_CASE("proxy: forwards requests, strips hop-by-hop headers, reuses upstream connections") {
  Upstream up([](const std::string&) { return ok_response("from-upstream"); });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/api/**", "svc"));
  Gateway gw(o);

  int fd = connect_to(gw.port());
  REQUIRE(fd >= 0);
  for (int i = 0; i < 3; ++i) {
    send_all(
        fd,
        "GET /api/items?x=1 HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, "
        "x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n");
    std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
    CHECK(status_of(r) == 200);
    CHECK(r.substr(r.size() - 13) == "from-upstream");
  }
  ::close(fd);
  auto reqs = up.requests();
  REQUIRE(reqs.size() == 3);
  const std::string& first = reqs[0];
  CHECK(first.rfind("GET /api/items?x=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(first.find("X-Secret") == std::string::npos);
  CHECK(first.find("Keep-Alive") == std::string::npos);
  // The client is not a trusted proxy: its X-Forwarded-For is replaced.
  CHECK(first.find("x-forwarded-for: 127.0.0.1\r\n") != std::string::npos);
  CHECK(first.find("10.0.0.1") == std::string::npos);
  CHECK(first.find("x-forwarded-host: example.test") != std::string::npos);
  CHECK(first.find("host: example.test") != std::string::npos);
  CHECK(up.connections() == 1);
  CHECK(gw.stats().upstream_connections_opened == 1);
  CHECK(gw.stats().upstream_connections_reused == 2);
}

TEST_CASE("request-smuggling shapes are refused with 400 and the connection closed, unforwarded") {
  Upstream up([](const std::string&) { return ok_response("ok"); });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);
  const std::string smuggles[] = {
      // Content-Length with Transfer-Encoding
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\n",
      // differing duplicate Content-Length
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      // Transfer-Encoding whose last coding is not chunked
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
      // obs-fold
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
      // bare LF
      "GET / HTTP/1.1\nHost: a\n\n",
      // NUL in a value
      std::string("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\0 2\r\n\r\n", 38),
      // space before the colon
      "GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",
      // missing Host on HTTP/1.1
      "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n",
      // duplicated Host
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      // invalid chunk size
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
      // chunk size overflow
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "ffffffffffffffffff\r\nab\r\n0\r\n\r\n",
  };
  for (const std::string& raw : smuggles) {
    INFO(raw);
    int fd = connect_to(gw.port());
    REQUIRE(fd >= 0);
    send_all(fd, raw);
    // read to the end: the gateway closes after its answer
    const std::string r = read_until(
        fd, [](const std::string&) { return false; }, std::chrono::milliseconds(1000));
    ::close(fd);
    CHECK(status_of(r) == 400);
    CHECK(r.find("connection: close") != std::string::npos);
  }
  // Only the bodies could have reached the upstream before their framing
  // was found bad (chunked errors surface while streaming); no head did
  // that was refused.
  for (const std::string& req : up.requests())
    CHECK(req.rfind("POST / HTTP/1.1", 0) == 0);
}

TEST_CASE("Proxy-* and the Proxy header (httpoxy) never reach the upstream") {
  Upstream up([](const std::string&) { return ok_response("ok"); });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);
  CHECK(status_of(roundtrip(
            gw.port(),
            "GET / HTTP/1.1\r\nHost: a\r\nProxy: http://evil:8080\r\n"
            "Proxy-Authorization: Basic eA==\r\nProxy-Foo: 1\r\nX-Ok: 1\r\n\r\n")) == 200);
  REQUIRE(up.requests().size() == 1);
  const std::string q = up.requests()[0];
  CHECK(q.find("evil") == std::string::npos);
  CHECK(q.find("Proxy") == std::string::npos);
  CHECK(q.find("X-Ok: 1") != std::string::npos);
}

TEST_CASE("X-Forwarded-For from a trusted proxy is kept, and the client address comes from it") {
  Upstream up([](const std::string&) { return ok_response("ok"); });
  std::string seen_client;
  struct ClientProbe : proxy::Filter {
    std::string* seen;
    explicit ClientProbe(std::string* s) : seen(s) {}
    proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
      *seen = std::string(ctx.client_address());
      return proxy::FilterStatus::next;
    }
  };
  proxy::ServerOptions o;
  o.trusted_proxies = {"127.0.0.0/8", "10.1.0.0/16"};
  o.filters.push_back(std::make_shared<ClientProbe>(&seen_client));
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);
  // The right-most untrusted hop is the client; hops left of it are not believed.
  std::string r = roundtrip(gw.port(),
                            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9, "
                            "10.1.2.3\r\n\r\n");
  CHECK(status_of(r) == 200);
  CHECK(seen_client == "203.0.113.9");
  REQUIRE(up.requests().size() == 1);
  CHECK(up.requests()[0].find("x-forwarded-for: 6.6.6.6, 203.0.113.9, 10.1.2.3, 127.0.0.1\r\n") !=
        std::string::npos);
  // Garbage in the header: nothing left of it is believed.
  roundtrip(gw.port(), "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4, junk\r\n\r\n");
  CHECK(seen_client == "127.0.0.1");

  proxy::ServerOptions bad;
  bad.trusted_proxies = {"10.0.0.0/33"};
  auto s = proxy::Server::create(nullptr, bad);
  CHECK_FALSE(s);
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto s2 = proxy::Server::create(&loop, bad);
  REQUIRE_FALSE(s2);
  CHECK(s2.error().message.find("trusted_proxies[0]") != std::string::npos);
  // Bits set after the prefix: refused as ip-restriction refuses them.
  bad.trusted_proxies = {"127.0.0.0/8", "10.0.0.1/8"};
  auto s3 = proxy::Server::create(&loop, bad);
  REQUIRE_FALSE(s3);
  CHECK(s3.error().message ==
        "trusted_proxies[1]: \"10.0.0.1/8\": bits are set after the /8 prefix (the network is "
        "10.0.0.0/8)");
  uv_loop_close(&loop);
}

TEST_CASE("X-Forwarded-For: hops with an IPv6 zone id are read, matched without the zone") {
  Upstream up([](const std::string&) { return ok_response("ok"); });
  std::string seen_client;
  struct ClientProbe : proxy::Filter {
    std::string* seen;
    explicit ClientProbe(std::string* s) : seen(s) {}
    proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
      *seen = std::string(ctx.client_address());
      return proxy::FilterStatus::next;
    }
  };
  proxy::ServerOptions o;
  o.trusted_proxies = {"127.0.0.0/8", "fe80::/10"};
  o.filters.push_back(std::make_shared<ClientProbe>(&seen_client));
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);
  auto client_behind = [&](const std::string& xff) {
    const std::string r =
        roundtrip(gw.port(), "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: " + xff + "\r\n\r\n");
    CHECK(status_of(r) == 200);
    return seen_client;
  };
  // A trusted link-local proxy named with its zone: the hop before it is
  // the client.
  CHECK(client_behind("203.0.113.7, fe80::1%eth0") == "203.0.113.7");
  CHECK(client_behind("203.0.113.7, fe80::1%eth0, 10.1.2.3") == "10.1.2.3");
  // An untrusted client with a zone is the client, as written.
  CHECK(client_behind("6.6.6.6, 2001:db8::7%eth1") == "2001:db8::7%eth1");
  // A malformed zone is no address: nothing left of it is believed.
  CHECK(client_behind("203.0.113.7, fe80::1%eth 0") == "127.0.0.1");
  CHECK(client_behind("203.0.113.7, 10.0.0.1%eth0") == "127.0.0.1");

  // The configured networks cannot carry a zone.
  uv_loop_t loop;
  uv_loop_init(&loop);
  proxy::ServerOptions bad;
  bad.trusted_proxies = {"127.0.0.0/8", "fe80::1%eth0"};
  auto s = proxy::Server::create(&loop, bad);
  REQUIRE_FALSE(s);
  CHECK(s.error().message ==
        "trusted_proxies[1]: \"fe80::1%eth0\": a zone id (\"%eth0\") cannot be part of a network: "
        "write the address without it (an X-Forwarded-For address with a zone matches the "
        "network of its address)");
  uv_loop_close(&loop);
}

TEST_CASE("proxy: request bodies (length and chunked) and chunked responses stream through") {
  Upstream up([](const std::string& req) {
    // Echo the request body back, chunked.
    const std::string body = req.substr(req.find("\r\n\r\n") + 4);
    return "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" +
           [](std::size_t n) {
             char b[32];
             std::snprintf(b, sizeof b, "%zx", n);
             return std::string(b);
           }(body.size()) +
           "\r\n" + body + "\r\n0\r\n\r\n";
  });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);

  std::string r =
      roundtrip(gw.port(), "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
  CHECK(status_of(r) == 200);
  CHECK(r.find("transfer-encoding: chunked") != std::string::npos);
  CHECK(r.find("hello world") != std::string::npos);
  auto reqs = up.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].find("content-length: 11\r\n") != std::string::npos);

  r = roundtrip(
      gw.port(),
      "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n "
      "world\r\n0\r\n\r\n");
  CHECK(status_of(r) == 200);
  reqs = up.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].find("transfer-encoding: chunked\r\n") != std::string::npos);
  CHECK(reqs[1].find("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") != std::string::npos);
}

TEST_CASE("proxy: upstream failures map to 502, 503 and 504") {
  proxy::ServerOptions o;
  // A port nothing listens on: bind one, then close it.
  std::uint16_t dead_port;
  {
    Upstream probe([](const std::string&) { return std::string(); });
    dead_port = probe.port();
  }
  Upstream silent([](const std::string&) {
    std::this_thread::sleep_for(600ms);
    return ok_response("late");
  });
  Upstream hangup([](const std::string&) { return std::string(); });
  o.clusters.push_back(cluster_of("dead", {dead_port}));
  o.clusters.push_back(cluster_of("empty", {}));
  auto slow = cluster_of("slow", {silent.port()});
  slow.response_timeout = 200ms;
  o.clusters.push_back(slow);
  o.clusters.push_back(cluster_of("hangup", {hangup.port()}));
  o.routes.push_back(cluster_route("/dead", "dead"));
  o.routes.push_back(cluster_route("/empty", "empty"));
  o.routes.push_back(cluster_route("/slow", "slow"));
  o.routes.push_back(cluster_route("/hangup", "hangup"));
  Gateway gw(o);
  std::string r = roundtrip(gw.port(), "GET /dead HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 502);
  CHECK(r.find("refused") != std::string::npos);
  CHECK(r.find("(request ") != std::string::npos);
  CHECK(status_of(roundtrip(gw.port(), "GET /empty HTTP/1.1\r\nHost: a\r\n\r\n")) == 503);
  r = roundtrip(gw.port(), "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 504);
  r = roundtrip(gw.port(), "GET /hangup HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 502);
  CHECK(r.find("closed the connection") != std::string::npos);
  // An empty body is a complete request too: the error is answered at once.
  r = roundtrip(gw.port(), "POST /empty HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  CHECK(status_of(r) == 503);
}

TEST_CASE("an empty POST body reaches the upstream, streamed or buffered for retries") {
  Upstream up([](const std::string& req) {
    return ok_response(req.find("content-length: 0") != std::string::npos ||
                               req.find("Content-Length: 0") != std::string::npos
                           ? "empty"
                           : "other");
  });
  proxy::ServerOptions o;
  auto streamed = cluster_of("streamed", {up.port()});
  streamed.retry.max_retries = 0;
  o.clusters.push_back(streamed);
  o.clusters.push_back(cluster_of("buffered", {up.port()}));
  o.routes.push_back(cluster_route("/streamed", "streamed"));
  o.routes.push_back(cluster_route("/buffered", "buffered"));
  Gateway gw(o);
  const int fd = connect_to(gw.port());
  REQUIRE(fd >= 0);
  for (const char* path : {"/streamed", "/buffered", "/streamed"}) {
    INFO(path);
    REQUIRE(send_all(
        fd, std::string("POST ") + path + " HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"));
    const std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
    CHECK(status_of(r) == 200);
    CHECK(r.find("\r\n\r\nempty") != std::string::npos);
  }
  ::close(fd);
}

TEST_CASE("a local 204 carries no Content-Length") {
  proxy::ServerOptions o;
  o.routes.push_back(
      handler_route("/none", [](const http::RequestHead&, std::string_view, proxy::Reply& reply) {
        reply.send(204, {}, "ignored");
      }));
  Gateway gw(o);
  const std::string r = roundtrip(gw.port(), "GET /none HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 204);
  CHECK(r.find("content-length") == std::string::npos);
  CHECK(r.find("ignored") == std::string::npos);
}

TEST_CASE("a client that sends half a head gets 408 after the header timeout") {
  proxy::ServerOptions o;
  o.header_timeout = 200ms;
  o.routes.push_back(handler_route("/echo", echo_handler()));
  Gateway gw(o);
  int fd = connect_to(gw.port());
  send_all(fd, "GET /echo HTTP/1.1\r\nHost: a\r\n");
  std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
  CHECK(status_of(r) == 408);
  ::close(fd);
}

TEST_CASE("graceful stop lets a request in flight finish") {
  Upstream slow([](const std::string&) {
    std::this_thread::sleep_for(300ms);
    return ok_response("done");
  });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("slow", {slow.port()}));
  o.routes.push_back(cluster_route("/**", "slow"));
  auto gw = std::make_unique<Gateway>(o);
  int fd = connect_to(gw->port());
  send_all(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
  std::this_thread::sleep_for(50ms);
  std::thread stopper([&] { gw->stop(2s); });
  std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
  stopper.join();
  CHECK(status_of(r) == 200);
  CHECK(r.find("connection: close") != std::string::npos);
  ::close(fd);
}

namespace {

// Decodes a chunked body (no trailers); nullopt if malformed.
std::optional<std::string> dechunk(std::string_view s) {
  std::string out;
  for (;;) {
    const std::size_t eol = s.find("\r\n");
    if (eol == std::string_view::npos) return std::nullopt;
    const std::size_t n = std::stoul(std::string(s.substr(0, eol)), nullptr, 16);
    s.remove_prefix(eol + 2);
    if (n == 0) return out;
    if (s.size() < n + 2) return std::nullopt;
    out.append(s.substr(0, n));
    s.remove_prefix(n + 2);
  }
}

std::string body_of(const std::string& response) {
  return response.substr(response.find("\r\n\r\n") + 4);
}

}  // namespace

TEST_CASE("proxy: 32 MiB each way streams through, byte for byte") {
  const std::size_t size = 32u << 20;
  std::string big(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    big[i] = static_cast<char>('a' + i % 23);
  Upstream up([&](const std::string& req) {
    if (req.rfind("GET", 0) == 0) return ok_response(big);
    const std::string body = body_of(req);
    return ok_response(body == big ? "same" : "different:" + std::to_string(body.size()));
  });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  proxy::RouteOptions r = cluster_route("/**", "svc");
  r.max_body_bytes = size;
  o.routes.push_back(r);
  Gateway gw(o);

  int fd = connect_to(gw.port());
  send_all(fd, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string down = read_until(
      fd, [](const std::string& s) { return has_responses(s, 1); },
      std::chrono::milliseconds(20000));
  CHECK(status_of(down) == 200);
  CHECK(body_of(down) == big);

  std::thread sender([&] {
    send_all(fd, "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(size) +
                     "\r\n\r\n");
    send_all(fd, big);
  });
  std::string upr = read_until(
      fd, [](const std::string& s) { return has_responses(s, 1); },
      std::chrono::milliseconds(20000));
  sender.join();
  ::close(fd);
  CHECK(status_of(upr) == 200);
  CHECK(body_of(upr) == "same");
}

namespace {

std::size_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  std::size_t kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "VmRSS: %zu kB", &kb) == 1) break;
  }
  std::fclose(f);
  return kb * 1024;
}

}  // namespace

TEST_CASE("proxy: a slow reader holds the upstream back instead of filling the gateway's memory") {
  const std::size_t size = 64u << 20;
  std::string big(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    big[i] = static_cast<char>('a' + i % 19);
  Upstream up([&](const std::string&) { return ok_response(big); });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);

  int fd = connect_to(gw.port());
  REQUIRE(fd >= 0);
  const int small = 64 * 1024;  // a small receive window: the client really holds back
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const std::size_t before = rss_bytes();
  send_all(fd, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string got = read_until(
      fd, [](const std::string& s) { return s.size() >= (1u << 20); },
      std::chrono::milliseconds(5000));
  // The client stops reading. Without back-pressure the gateway would take
  // in the upstream's 64 MiB meanwhile (the kernel buffers hold far less).
  // The scripted upstream runs in this process and copies its answer once
  // (64 MiB, counted below); anything the gateway kept would come on top.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const std::size_t during = rss_bytes();
  const std::size_t growth = during > before + size ? during - before - size : 0;
  MESSAGE("process RSS growth beyond the upstream's copy while the client held back: "
          << growth / 1024 << " KiB");
  CHECK(growth < (32u << 20));  // ASan's shadow memory counts too; without back-pressure: 64 MiB
  got += read_until(
      fd,
      [&](const std::string& s) {
        return got.size() + s.size() >= size + 40 && has_responses(got + s, 1);
      },
      std::chrono::milliseconds(30000));
  ::close(fd);
  CHECK(status_of(got) == 200);
  CHECK(body_of(got) == big);
}

TEST_CASE(
    "proxy: a response of many tiny chunks, re-framed for HTTP/1.1 and close-delimited for 1.0") {
  std::string chunks, expected;
  for (int i = 0; i < 3000; ++i) {
    const char ch = static_cast<char>('a' + i % 26);
    chunks += "1\r\n";
    chunks += ch;
    chunks += "\r\n";
    expected += ch;
  }
  Upstream up([&](const std::string&) {
    return "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + "0\r\n\r\n";
  });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);

  std::string r = roundtrip(gw.port(), "GET /c HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(status_of(r) == 200);
  auto decoded = dechunk(body_of(r));
  REQUIRE(decoded);
  CHECK(*decoded == expected);

  int fd = connect_to(gw.port());
  send_all(fd, "GET /c HTTP/1.0\r\nHost: a\r\n\r\n");
  r = read_until(fd, [](const std::string&) { return false; });  // until the gateway closes
  ::close(fd);
  CHECK(status_of(r) == 200);
  CHECK(r.find("transfer-encoding") == std::string::npos);
  CHECK(body_of(r) == expected);
}

TEST_CASE("Expect: 100-continue is answered before the body is sent") {
  Upstream up([](const std::string& req) { return ok_response(body_of(req)); });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);
  int fd = connect_to(gw.port());
  send_all(fd, "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  std::string interim =
      read_until(fd, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; });
  CHECK(interim == "HTTP/1.1 100 Continue\r\n\r\n");
  send_all(fd, "data");
  std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
  ::close(fd);
  CHECK(status_of(r) == 200);
  CHECK(body_of(r) == "data");
  auto reqs = up.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].find("Expect") == std::string::npos);
}

TEST_CASE(
    "a client that leaves mid-response cuts the upstream connection, and the gateway carries on") {
  Upstream up([](const std::string& req) {
    if (req.find("/slow") != std::string::npos) {
      return "HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n" + std::string(1 << 20, 'x');
    }
    return ok_response("fine");
  });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);
  int fd = connect_to(gw.port());
  send_all(fd, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string head = read_until(fd, [](const std::string& s) { return s.size() > 1000; });
  CHECK(status_of(head) == 200);
  ::close(fd);
  std::this_thread::sleep_for(100ms);
  // The cut connection was not pooled: the next request needs a new one.
  CHECK(status_of(roundtrip(gw.port(), "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")) == 200);
  CHECK(up.connections() == 2);
}

TEST_CASE("Upgrade: after the upstream's 101, bytes are relayed both ways until a side closes") {
  // A raw upstream: answers the upgrade with 101, then echoes in upper case.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  ::listen(lfd, 4);
  socklen_t alen = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen);
  std::string seen_request;
  std::thread upstream([&] {
    int c = ::accept(lfd, nullptr, nullptr);
    seen_request =
        read_until(c, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; });
    send_all(c,
             "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\n");
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      for (ssize_t i = 0; i < n; ++i)
        buf[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(buf[i])));
      send_all(c, std::string_view(buf, static_cast<std::size_t>(n)));
    }
    ::close(c);
  });
  proxy::ServerOptions o;
  o.clusters.push_back(cluster_of("ws", {ntohs(a.sin_port)}));
  o.routes.push_back(cluster_route("/ws", "ws"));
  {
    Gateway gw(o);
    int fd = connect_to(gw.port());
    send_all(fd, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\n");
    std::string head = read_until(
        fd, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; });
    CHECK(status_of(head) == 101);
    CHECK(head.find("upgrade: shout") != std::string::npos);
    send_all(fd, "hello");
    CHECK(read_until(fd, [](const std::string& s) { return s.size() >= 5; }) == "HELLO");
    send_all(fd, "again, longer");
    CHECK(read_until(fd, [](const std::string& s) { return s.size() >= 13; }) == "AGAIN, LONGER");
    ::close(fd);
    upstream.join();  // the client's close reached the upstream
  }
  ::close(lfd);
  CHECK(seen_request.find("connection: upgrade") != std::string::npos);
  CHECK(seen_request.find("upgrade: shout") != std::string::npos);
}

TEST_CASE("proxy: hop-by-hop headers of the response are removed too; pools honour max requests") {
  Upstream up([](const std::string&) {
    return ok_response("r",
                       "Connection: x-internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\n"
                       "X-Kept: yes\r\n");
  });
  proxy::ServerOptions o;
  auto cluster = cluster_of("svc", {up.port()});
  cluster.max_requests_per_connection = 2;
  o.clusters.push_back(cluster);
  o.routes.push_back(cluster_route("/**", "svc"));
  Gateway gw(o);
  int fd = connect_to(gw.port());
  for (int i = 0; i < 4; ++i) {
    send_all(fd, "GET /h HTTP/1.1\r\nHost: a\r\n\r\n");
    std::string r = read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
    CHECK(status_of(r) == 200);
    CHECK(r.find("X-Kept: yes") != std::string::npos);
    CHECK(r.find("X-Internal") == std::string::npos);
    CHECK(r.find("Keep-Alive") == std::string::npos);
    CHECK(r.find("x-internal") == std::string::npos);
  }
  ::close(fd);
  // Two requests per upstream connection: four requests, two connections.
  CHECK(up.connections() == 2);
}

// key-auth, ip-restriction and request-size-limiting over real sockets: a
// gateway on 127.0.0.1 with a scripted upstream that records what reached
// it, and raw requests from the client side (malformed ones included).
#include <doctest/doctest.h>

#include "gateway.hpp"
#include "headers.hpp"
#include "net.hpp"
#include "portico/filters/ip_restriction.hpp"
#include "portico/filters/key_auth.hpp"
#include "portico/filters/request_size_limiting.hpp"
#include "portico/filters/request_state.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;

namespace {

std::shared_ptr<const filters::Consumers> directory() {
  std::vector<filters::PlanConfig> plans = {{"gold", {{std::chrono::seconds(1), 100}}, 0}};
  std::vector<filters::ConsumerConfig> consumers = {
      {"alice", "gold", {"key-of-alice"}, {}},
      {"bob", "", {"key+of/bob="}, {}},
      {"guest", "", {}, {}},
  };
  auto c = filters::Consumers::create(std::move(consumers), std::move(plans));
  REQUIRE(c);
  return *c;
}

// Shows the shared state the filters before it recorded, in response
// headers, so the test sees what a later policy would read.
class StateProbe : public proxy::Filter {
 public:
  proxy::FilterStatus on_response_headers(proxy::RequestContext& ctx) override {
    if (const filters::RequestState* s = filters::find_request_state(ctx)) {
      ctx.set_response_header("x-state-consumer", s->consumer);
      ctx.set_response_header("x-state-plan", s->plan);
      ctx.set_response_header("x-state-credential", s->credential);
    }
    return proxy::FilterStatus::next;
  }
};

// A gateway with one filter on /api/** in front of a recording upstream.
struct Setup {
  explicit Setup(std::shared_ptr<proxy::Filter> filter,
                 std::vector<std::string> trusted_proxies = {})
      : up([](const std::string&) { return ok_response("up"); }) {
    proxy::ServerOptions so;
    so.trusted_proxies = std::move(trusted_proxies);
    so.clusters.push_back(cluster_of("svc", {up.port()}));
    auto route = cluster_route("/api/**", "svc");
    route.filters.push_back(std::move(filter));
    route.filters.push_back(std::make_shared<StateProbe>());
    so.routes.push_back(route);
    gw = std::make_unique<Gateway>(so);
  }
  std::string get(const std::string& target, const std::string& headers = "") {
    return roundtrip(gw->port(), "GET " + target + " HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n");
  }
  // The last request the upstream received ("" when none).
  std::string upstream_saw() {
    auto all = up.requests();
    return all.empty() ? std::string() : all.back();
  }
  std::size_t upstream_count() { return up.requests().size(); }
  Upstream up;
  std::unique_ptr<Gateway> gw;
};

std::shared_ptr<proxy::Filter> key_auth(filters::KeyAuthOptions o) {
  if (o.consumers == nullptr) o.consumers = directory();
  auto f = filters::make_key_auth(std::move(o));
  REQUIRE_MESSAGE(f, (f ? "" : f.error().message));
  return *f;
}

std::string request_line(const std::string& request) {
  return request.substr(0, request.find("\r\n"));
}

// A 401 from key-auth: the JSON error, the challenge, nothing upstream.
void check_refused(const std::string& r, const std::string& message) {
  CHECK(status_of(r) == 401);
  CHECK(header_value(r, "www-authenticate") == "Key realm=\"portico\"");
  CHECK(header_value(r, "content-type") == "application/json");
  CHECK(body_of(r).find("{\"error\":\"" + message + "\",\"request_id\":\"") == 0);
}

}  // namespace

TEST_CASE("key-auth: a valid key reaches the upstream as a consumer, without the key") {
  Setup s(key_auth({}));
  const std::string r = s.get("/api/x",
                              "X-API-Key: key-of-alice\r\nX-Consumer-ID: admin\r\n"
                              "X-Anonymous-Consumer: true\r\nx-consumer-plan: platinum\r\n");
  CHECK(status_of(r) == 200);
  CHECK(header_value(r, "x-state-consumer") == "alice");
  CHECK(header_value(r, "x-state-plan") == "gold");
  CHECK(header_value(r, "x-state-credential") == "key-auth");
  const std::string seen = s.upstream_saw();
  CHECK(header_values(seen, "x-consumer-id") == std::vector<std::string>{"alice"});
  CHECK(header_values(seen, "x-consumer-plan") == std::vector<std::string>{"gold"});
  CHECK_FALSE(has_header(seen, "x-anonymous-consumer"));
  CHECK_FALSE(has_header(seen, "x-api-key"));
  CHECK(seen.find("key-of-alice") == std::string::npos);

  // A consumer without a plan: the client's plan header is still removed.
  const std::string bob = s.get("/api/x", "x-api-key: key+of/bob=\r\nX-Consumer-Plan: gold\r\n");
  CHECK(status_of(bob) == 200);
  CHECK(header_values(s.upstream_saw(), "x-consumer-id") == std::vector<std::string>{"bob"});
  CHECK_FALSE(has_header(s.upstream_saw(), "x-consumer-plan"));
}

TEST_CASE("key-auth: missing, unknown, repeated or oversized keys are refused with 401") {
  Setup s(key_auth({}));
  check_refused(s.get("/api/x"), "no API key was sent");
  check_refused(s.get("/api/x", "X-API-Key: key-of-mallory\r\n"), "the API key is not valid");
  check_refused(s.get("/api/x", "X-API-Key:\r\n"), "the API key is not valid");
  check_refused(s.get("/api/x", "X-API-Key: KEY-OF-ALICE\r\n"), "the API key is not valid");
  check_refused(s.get("/api/x", "X-API-Key: key-of-alice\r\nX-API-Key: key-of-alice\r\n"),
                "more than one API key was sent");
  check_refused(s.get("/api/x", "X-API-Key: key-of-mallory\r\nX-API-Key: key-of-alice\r\n"),
                "more than one API key was sent");
  check_refused(s.get("/api/x", "X-API-Key: " + std::string(20000, 'k') + "\r\n"),
                "the API key is not valid");
  // A key in the query is not accepted unless configured.
  check_refused(s.get("/api/x?apikey=key-of-alice"), "no API key was sent");
  CHECK(s.upstream_count() == 0);
  // The refusals kept the gateway healthy.
  CHECK(status_of(s.get("/api/x", "X-API-Key: key-of-alice\r\n")) == 200);
}

TEST_CASE("key-auth: a key in the query is taken out, every other parameter kept as sent") {
  filters::KeyAuthOptions o;
  o.query_names = {"apikey"};
  Setup s(key_auth(o));
  CHECK(status_of(s.get("/api/x?a=1&apikey=key-of-alice&b=%20x&c")) == 200);
  CHECK(request_line(s.upstream_saw()) == "GET /api/x?a=1&b=%20x&c HTTP/1.1");
  CHECK(header_value(s.upstream_saw(), "x-consumer-id") == "alice");
  // Percent-encoded value ('+' stays '+') and an encoded parameter name.
  CHECK(status_of(s.get("/api/x?api%6Bey=key%2Bof%2Fbob%3D")) == 200);
  CHECK(request_line(s.upstream_saw()) == "GET /api/x HTTP/1.1");
  CHECK(header_value(s.upstream_saw(), "x-consumer-id") == "bob");
  CHECK(status_of(s.get("/api/x?apikey=key+of/bob=&z=1")) == 200);
  CHECK(request_line(s.upstream_saw()) == "GET /api/x?z=1 HTTP/1.1");
  // Two keys (query twice, or query and header) and a malformed escape.
  const std::size_t before = s.upstream_count();
  check_refused(s.get("/api/x?apikey=key-of-alice&apikey=key-of-alice"),
                "more than one API key was sent");
  check_refused(s.get("/api/x?apikey=key-of-alice", "X-API-Key: key-of-alice\r\n"),
                "more than one API key was sent");
  check_refused(s.get("/api/x?apikey=key-of-alice%zz"), "the API key is not valid");
  check_refused(s.get("/api/x?apikey=%"), "the API key is not valid");
  CHECK(s.upstream_count() == before);
  // The header still works.
  CHECK(status_of(s.get("/api/x?q=1", "X-API-Key: key-of-alice\r\n")) == 200);
  CHECK(request_line(s.upstream_saw()) == "GET /api/x?q=1 HTTP/1.1");
}

TEST_CASE("key-auth: anonymous consumer, kept credentials, custom header names") {
  filters::KeyAuthOptions o;
  o.anonymous = "guest";
  o.hide_credentials = false;
  o.header_names = {"X-API-Key", "apikey"};
  o.realm = "shop";
  Setup s(key_auth(o));
  const std::string r = s.get("/api/x", "X-Consumer-ID: alice\r\n");
  CHECK(status_of(r) == 200);
  CHECK(header_value(r, "x-state-consumer") == "guest");
  CHECK(header_values(s.upstream_saw(), "x-consumer-id") == std::vector<std::string>{"guest"});
  CHECK(header_value(s.upstream_saw(), "x-anonymous-consumer") == "true");
  // A key that is sent must be valid even with an anonymous consumer.
  const std::string bad = s.get("/api/x", "apikey: wrong\r\n");
  CHECK(status_of(bad) == 401);
  CHECK(header_value(bad, "www-authenticate") == "Key realm=\"shop\"");
  // The key stays when hide_credentials is off.
  CHECK(status_of(s.get("/api/x", "APIKEY: key-of-alice\r\n")) == 200);
  CHECK(header_value(s.upstream_saw(), "apikey") == "key-of-alice");
  CHECK(header_value(s.upstream_saw(), "x-consumer-id") == "alice");
  CHECK_FALSE(has_header(s.upstream_saw(), "x-anonymous-consumer"));
}

namespace {

std::shared_ptr<proxy::Filter> ip_restriction(std::vector<std::string> allow,
                                              std::vector<std::string> deny) {
  filters::IpRestrictionOptions o;
  o.allow = std::move(allow);
  o.deny = std::move(deny);
  auto f = filters::make_ip_restriction(std::move(o));
  REQUIRE_MESSAGE(f, (f ? "" : f.error().message));
  return *f;
}

std::string from(const std::string& forwarded_for) {
  return "X-Forwarded-For: " + forwarded_for + "\r\n";
}

void check_forbidden(const std::string& r) {
  CHECK(status_of(r) == 403);
  CHECK(header_value(r, "content-type") == "application/json");
  CHECK(body_of(r).find("{\"error\":\"your IP address is not allowed\",\"request_id\":") == 0);
}

}  // namespace

TEST_CASE("ip-restriction: the client address behind a trusted proxy; deny wins over allow") {
  Setup s(ip_restriction({"10.0.0.0/8", "2001:db8::/32"}, {"10.9.0.0/16", "2001:db8:bad::/48"}),
          {"127.0.0.1"});
  CHECK(status_of(s.get("/api/x", from("10.1.2.3"))) == 200);
  CHECK(status_of(s.get("/api/x", from("2001:db8::5"))) == 200);
  CHECK(status_of(s.get("/api/x", from("::ffff:10.1.2.3"))) == 200);
  const std::size_t passed = s.upstream_count();
  check_forbidden(s.get("/api/x", from("10.9.1.1")));
  check_forbidden(s.get("/api/x", from("2001:db8:bad::1")));
  check_forbidden(s.get("/api/x", from("192.0.2.1")));
  // The nearest untrusted hop counts, not the left-most a client wrote.
  check_forbidden(s.get("/api/x", from("10.1.2.3, 10.9.9.9")));
  CHECK(status_of(s.get("/api/x", from("10.9.9.9, 10.1.2.3"))) == 200);
  // No header, or garbage: the proxy itself (127.0.0.1) is the client.
  check_forbidden(s.get("/api/x"));
  check_forbidden(s.get("/api/x", from("not-an-address")));
  check_forbidden(s.get("/api/x", from("10.1.2.3%eth0")));
  check_forbidden(s.get("/api/x", from(std::string(5000, '1'))));
  CHECK(s.upstream_count() == passed + 1);
}

TEST_CASE("ip-restriction: an X-Forwarded-For address with a zone id matches without it") {
  Setup s(ip_restriction({"fe80::/10"}, {"fe80::bad/128"}), {"127.0.0.1"});
  CHECK(status_of(s.get("/api/x", from("fe80::1%eth0"))) == 200);
  CHECK(status_of(s.get("/api/x", from("fe80::1%2"))) == 200);
  check_forbidden(s.get("/api/x", from("fe80::bad%eth0")));
  check_forbidden(s.get("/api/x", from("2001:db8::1%eth0")));
  // A malformed zone is no address: the proxy itself is the client.
  check_forbidden(s.get("/api/x", from("fe80::1%eth 0")));
  check_forbidden(s.get("/api/x", from("fe80::1%")));
}

TEST_CASE("ip-restriction: an untrusted peer cannot choose its address with X-Forwarded-For") {
  Setup s(ip_restriction({"10.0.0.0/8"}, {}));
  check_forbidden(s.get("/api/x", from("10.1.2.3")));
  Setup loopback(ip_restriction({"127.0.0.0/8"}, {}));
  CHECK(status_of(loopback.get("/api/x", from("192.0.2.1"))) == 200);
  Setup denied(ip_restriction({}, {"127.0.0.1"}));
  check_forbidden(denied.get("/api/x", from("10.1.2.3")));
  CHECK(denied.upstream_count() == 0);
}

namespace {

std::shared_ptr<proxy::Filter> size_limit(std::uint64_t max, bool require_length = false) {
  auto f = filters::make_request_size_limiting({max, require_length});
  REQUIRE_MESSAGE(f, (f ? "" : f.error().message));
  return *f;
}

std::string post(std::uint16_t port, const std::string& headers, const std::string& body) {
  return roundtrip(port, "POST /api/x HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n" + body);
}

std::string chunked(const std::string& body, std::size_t chunk) {
  std::string out;
  for (std::size_t at = 0; at < body.size(); at += chunk) {
    const std::string piece = body.substr(at, chunk);
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    out += size + piece + "\r\n";
  }
  return out + "0\r\n\r\n";
}

}  // namespace

TEST_CASE("request-size-limiting: a Content-Length over the limit is refused before the body") {
  Setup s(size_limit(100));
  const std::string ok = post(s.gw->port(), "Content-Length: 100\r\n", std::string(100, 'a'));
  CHECK(status_of(ok) == 200);
  CHECK(s.upstream_saw().find(std::string(100, 'a')) != std::string::npos);
  // Only the head is sent: the answer does not wait for the body.
  int fd = connect_to(s.gw->port());
  REQUIRE(fd >= 0);
  send_all(fd, "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n");
  const std::string r = read_until(fd, [](const std::string& b) { return has_responses(b, 1); });
  ::close(fd);
  CHECK(status_of(r) == 413);
  CHECK(body_of(r).find("{\"error\":\"the request body is larger than 100 bytes\"") == 0);
  // A client waiting for 100-continue is answered 413 instead.
  const std::string expect = roundtrip(s.gw->port(),
                                       "POST /api/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                                       "Content-Length: 5000000\r\n\r\n");
  CHECK(status_of(expect) == 413);
  CHECK(expect.find("100 Continue") == std::string::npos);
  CHECK(s.upstream_count() == 1);
  // Bodyless requests are not concerned.
  CHECK(status_of(s.get("/api/x")) == 200);
}

TEST_CASE("request-size-limiting: a chunked body is counted and refused when it runs over") {
  Setup s(size_limit(1000));
  const std::string body(1000, 'b');
  const std::string ok = post(s.gw->port(), "Transfer-Encoding: chunked\r\n", chunked(body, 300));
  CHECK(status_of(ok) == 200);
  // Collected whole, it goes upstream with its length.
  CHECK(header_value(s.upstream_saw(), "content-length") == "1000");
  CHECK(body_of(s.upstream_saw()) == body);
  const std::string over =
      post(s.gw->port(), "Transfer-Encoding: chunked\r\n", chunked(body + "b", 300));
  CHECK(status_of(over) == 413);
  CHECK(body_of(over).find("the request body is larger than 1000 bytes") != std::string::npos);
  // Many tiny chunks add up the same way.
  const std::string tiny =
      post(s.gw->port(), "Transfer-Encoding: chunked\r\n", chunked(std::string(1500, 'c'), 1));
  CHECK(status_of(tiny) == 413);
  CHECK(s.upstream_count() == 1);
}

TEST_CASE("request-size-limiting: require_content_length refuses chunked bodies with 411") {
  Setup s(size_limit(1000, true));
  const std::string r = post(s.gw->port(), "Transfer-Encoding: chunked\r\n", chunked("abc", 3));
  CHECK(status_of(r) == 411);
  CHECK(body_of(r).find("the request body must have a Content-Length") != std::string::npos);
  CHECK(status_of(post(s.gw->port(), "Content-Length: 3\r\n", "abc")) == 200);
  CHECK(s.upstream_count() == 1);
}

TEST_CASE(
    "key-auth: after another authentication policy, a request without a key keeps its "
    "consumer") {
  // Stands for an earlier policy (jwt-auth) that resolved "alice".
  struct Earlier : proxy::Filter {
    proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
      ctx.remove_request_header("X-Consumer-ID");
      filters::RequestState& state = filters::request_state(ctx);
      state.consumer = "alice";
      state.credential = "jwt-auth";
      ctx.set_request_header("X-Consumer-ID", "alice");
      return proxy::FilterStatus::next;
    }
  };
  filters::KeyAuthOptions o;
  o.anonymous = "guest";
  auto up = std::make_unique<Upstream>([](const std::string&) { return ok_response("up"); });
  proxy::ServerOptions so;
  so.clusters.push_back(cluster_of("svc", {up->port()}));
  auto route = cluster_route("/api/**", "svc");
  route.filters = {std::make_shared<Earlier>(), key_auth(o), std::make_shared<StateProbe>()};
  so.routes.push_back(route);
  Gateway gw(so);
  const std::string kept =
      roundtrip(gw.port(), "GET /api/x HTTP/1.1\r\nHost: a\r\nX-Consumer-ID: mallory\r\n\r\n");
  CHECK(status_of(kept) == 200);
  CHECK(header_value(kept, "x-state-consumer") == "alice");
  CHECK(header_value(kept, "x-state-credential") == "jwt-auth");
  CHECK(header_values(up->requests().back(), "x-consumer-id") == std::vector<std::string>{"alice"});
  CHECK_FALSE(has_header(up->requests().back(), "x-anonymous-consumer"));
  // A valid key names its own consumer; an invalid one is refused.
  const std::string bob =
      roundtrip(gw.port(), "GET /api/x HTTP/1.1\r\nHost: a\r\nX-API-Key: key+of/bob=\r\n\r\n");
  CHECK(header_value(bob, "x-state-consumer") == "bob");
  CHECK(header_values(up->requests().back(), "x-consumer-id") == std::vector<std::string>{"bob"});
  check_refused(roundtrip(gw.port(), "GET /api/x HTTP/1.1\r\nHost: a\r\nX-API-Key: nope\r\n\r\n"),
                "the API key is not valid");
}

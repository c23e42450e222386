// request-transformer and response-transformer over real sockets: header
// rules with values from claims, the consumer, route parameters and the
// request id; JSON member edits of response bodies, and the responses that
// must pass unchanged.
#include <doctest/doctest.h>

#include "../../lib/jwt/base64url.hpp"
#include "../../lib/tls/crypto.hpp"
#include "gateway.hpp"
#include "headers.hpp"
#include "net.hpp"
#include "portico/filters/request_id.hpp"
#include "portico/filters/request_state.hpp"
#include "portico/filters/request_transformer.hpp"
#include "portico/filters/response_transformer.hpp"
#include "portico/jwt.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";

std::string b64(std::string_view s) {
  std::string out;
  detail::base64url_encode(s, out);
  return out;
}

// A verified token whose claims the identity stand-in hands to the chain.
std::shared_ptr<const jwt::VerifiedToken> verified_token(const std::string& payload) {
  const std::string input = b64(R"({"alg":"HS256","kid":"k1"})") + "." + b64(payload);
  detail::HmacKey key(detail::HashAlg::sha256, detail::as_bytes(kSecret));
  const detail::Digest mac = key.mac(detail::as_bytes(input));
  const std::string token = input + "." + b64({reinterpret_cast<const char*>(mac.bytes), mac.size});
  jwt::KeySet set;
  REQUIRE(set.add_hmac_secret(kSecret, {"k1", {}}));
  auto verifier = jwt::Verifier::create(std::make_shared<jwt::KeySetHolder>(std::move(set)), {});
  REQUIRE(verifier);
  const auto v = verifier->verify(token, std::chrono::system_clock::now());
  REQUIRE_MESSAGE(v.ok(), v.message());
  return v.shared_token();
}

// Stands in for jwt-auth: requests with "X-Test-Auth: 1" are alice's.
class FakeAuth : public proxy::Filter {
 public:
  explicit FakeAuth(std::shared_ptr<const jwt::VerifiedToken> token) : token_(std::move(token)) {}
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    if (ctx.request().header("x-test-auth") != "1") return proxy::FilterStatus::next;
    filters::RequestState& s = filters::request_state(ctx);
    s.consumer = "alice";
    s.plan = "gold";
    s.credential = "jwt-auth";
    s.claims = &token_->claims;
    return proxy::FilterStatus::next;
  }

 private:
  std::shared_ptr<const jwt::VerifiedToken> token_;
};

std::string json_response(const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
         "x-internal-trace-id: internal-42\r\nx-upstream-old: v\r\ncontent-length: " +
         std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

const std::string kDoc =
    R"({"id": 9007199254740993, "internal_metadata": {"shard": 7}, "name": "Ada", "n": 1.50})";
const std::string kEdited = R"({"id":9007199254740993,"full_name":"Ada","n":1.50})";

std::string chunked(const std::string& body) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  return "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n" +
         std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
}

// The upstream's answer, by path.
std::string answer(const std::string& request) {
  const std::string path = request.substr(4, request.find(' ', 4) - 4);
  if (path == "/text") return ok_response(kDoc, "content-type: text/plain\r\n");
  if (path == "/chunked") return chunked(kDoc);
  if (path == "/bad") return json_response(R"({"internal_metadata": 1, "a": })");
  if (path == "/gzip") return json_response(kDoc, "content-encoding: gzip\r\n");
  if (path == "/big")
    return json_response(R"({"internal_metadata": 1, "pad": ")" + std::string(5000, 'x') + "\"}");
  if (path == "/problem")
    return "HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: " +
           std::to_string(kDoc.size()) + "\r\n\r\n" + kDoc;
  return json_response(kDoc);
}

struct Setup {
  Setup() : up(answer) {
    proxy::ServerOptions so;
    so.filters.push_back(*filters::make_request_id({}));
    so.filters.push_back(std::make_shared<FakeAuth>(verified_token(
        R"({"sub":"user-7","roles":["admin","ops"],"tier":3,"org":{"id":"acme"}})")));
    so.clusters.push_back(cluster_of("svc", {up.port()}));

    filters::RequestTransformerOptions req;
    req.headers.remove = {"X-User-Id", "X-Debug"};
    req.headers.rename = {{"X-Old-Name", "X-New-Name"}};
    req.headers.replace = {{"X-Env", "prod"}, {"X-Absent", "never"}};
    req.headers.add = {{"X-User-Id", "$(claims.sub)"},
                       {"X-User-Roles", "$(claims.roles)"},
                       {"X-Tier", "tier-$(claims.tier)"},
                       {"X-Org", "$(claims.org.id)"},
                       {"X-Consumer", "$(consumer.id)/$(consumer.plan) via $(credential)"},
                       {"X-Item", "$(route.param.id)"},
                       {"X-Route", "$(route.name)"},
                       {"X-Req", "$(request_id)"},
                       {"X-Client", "$(client_ip)"},
                       {"X-Agent", "ua=$(headers.user-agent)"},
                       {"X-Keep", "gateway"}};
    req.headers.append = {{"X-Via", "portico"}};
    filters::ResponseTransformerOptions resp;
    resp.headers.remove = {"X-Internal-Trace-Id"};
    resp.headers.rename = {{"X-Upstream-Old", "X-Upstream-New"}};
    resp.headers.add = {{"X-Served-For", "$(consumer.id)"}};
    resp.remove_json = {"internal_metadata"};
    resp.rename_json = {{"name", "full_name"}};
    resp.max_body_bytes = 4096;

    auto route = cluster_route("/users/{id}", "svc");
    route.name = "user";
    route.filters.push_back(*filters::make_request_transformer(req));
    route.filters.push_back(*filters::make_response_transformer(resp));
    so.routes.push_back(route);
    auto any = cluster_route("/**", "svc");
    any.filters.push_back(*filters::make_response_transformer(resp));
    so.routes.push_back(any);
    gw = std::make_unique<Gateway>(so);
  }
  std::string get(const std::string& path, const std::string& headers = "",
                  const std::string& method = "GET") {
    return roundtrip(gw->port(),
                     method + " " + path + " HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n");
  }
  std::string upstream_request() {
    auto all = up.requests();
    REQUIRE(!all.empty());
    return all.back();
  }
  Upstream up;
  std::unique_ptr<Gateway> gw;
};

}  // namespace

TEST_CASE("request-transformer: remove, rename, replace, add, append with templates") {
  Setup s;
  const std::string r =
      s.get("/users/42",
            "X-Test-Auth: 1\r\nX-User-Id: mallory\r\nX-Debug: 1\r\nX-Old-Name: kept-value\r\n"
            "X-Env: dev\r\nX-Keep: client\r\nX-Via: client-proxy\r\nUser-Agent: curl/8\r\n");
  REQUIRE(status_of(r) == 200);
  const std::string q = s.upstream_request();
  CHECK(header_values(q, "x-user-id") == std::vector<std::string>{"user-7"});
  CHECK_FALSE(has_header(q, "x-debug"));
  CHECK_FALSE(has_header(q, "x-old-name"));
  CHECK(header_value(q, "x-new-name") == "kept-value");
  CHECK(header_value(q, "x-env") == "prod");
  CHECK_FALSE(has_header(q, "x-absent"));
  CHECK(header_value(q, "x-user-roles") == "admin,ops");
  CHECK(header_value(q, "x-tier") == "tier-3");
  CHECK(header_value(q, "x-org") == "acme");
  CHECK(header_value(q, "x-consumer") == "alice/gold via jwt-auth");
  CHECK(header_value(q, "x-item") == "42");
  CHECK(header_value(q, "x-route") == "user");
  CHECK(header_value(q, "x-req") == header_value(r, "x-request-id"));
  CHECK(header_value(q, "x-req").size() == 32);
  CHECK(header_value(q, "x-client") == "127.0.0.1");
  CHECK(header_value(q, "x-agent") == "ua=curl/8");
  CHECK(header_value(q, "x-keep") == "client");  // add: only when absent
  CHECK(header_values(q, "x-via") == std::vector<std::string>{"client-proxy", "portico"});
}

TEST_CASE("request-transformer: a reference without a value leaves the field unset") {
  Setup s;
  // Anonymous: no claims, no consumer. The client's X-User-Id is removed
  // and nothing takes its place.
  const std::string r = s.get("/users/7", "X-User-Id: mallory\r\n");
  REQUIRE(status_of(r) == 200);
  const std::string q = s.upstream_request();
  CHECK_FALSE(has_header(q, "x-user-id"));
  CHECK_FALSE(has_header(q, "x-user-roles"));
  CHECK_FALSE(has_header(q, "x-consumer"));
  CHECK_FALSE(has_header(q, "x-agent"));  // no User-Agent
  CHECK(header_value(q, "x-item") == "7");
  CHECK(q.find("mallory") == std::string::npos);
}

TEST_CASE("response-transformer: internal headers stripped, JSON members removed and renamed") {
  Setup s;
  const std::string r = s.get("/users/1", "X-Test-Auth: 1\r\n");
  REQUIRE(status_of(r) == 200);
  CHECK_FALSE(has_header(r, "x-internal-trace-id"));
  CHECK_FALSE(has_header(r, "x-upstream-old"));
  CHECK(header_value(r, "x-upstream-new") == "v");
  CHECK(header_value(r, "x-served-for") == "alice");
  CHECK(body_of(r) == kEdited);
  CHECK(header_value(r, "content-length") == std::to_string(kEdited.size()));
  CHECK(header_values(r, "content-length").size() == 1);
  // Anonymous: the template has no value, the field is not added.
  const std::string anonymous = s.get("/users/1");
  CHECK_FALSE(has_header(anonymous, "x-served-for"));
  CHECK(body_of(anonymous) == kEdited);
  // An error response in a +json type is edited too.
  const std::string problem = s.get("/problem");
  CHECK(status_of(problem) == 404);
  CHECK(body_of(problem) == kEdited);
}

TEST_CASE("response-transformer: bodies it must not touch pass unchanged") {
  Setup s;
  for (const char* path : {"/text", "/gzip", "/bad", "/big", "/chunked"}) {
    CAPTURE(path);
    const std::string r = s.get(path);
    REQUIRE(status_of(r) == 200);
    CHECK_FALSE(has_header(r, "x-internal-trace-id"));  // headers are still edited
    const std::string body = body_of(r);
    CHECK(body.find("internal_metadata") != std::string::npos);
  }
  const std::string head = s.get("/users/1", "", "HEAD");
  CHECK(status_of(head) == 200);
  CHECK(header_value(head, "content-length") == std::to_string(kDoc.size()));
  // The connection stays usable after a HEAD: a second request on it.
  const std::string two =
      roundtrip(s.gw->port(),
                "GET /text HTTP/1.1\r\nHost: a\r\n\r\nGET /users/2 HTTP/1.1\r\nHost: a\r\n\r\n", 2);
  CHECK(two.find(kEdited) != std::string::npos);
}

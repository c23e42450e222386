// cors over real sockets: preflights answered at the gateway (allowed and
// refused), the fields of the requests that follow, credentials, and
// malformed origins.
#include <doctest/doctest.h>

#include "gateway.hpp"
#include "headers.hpp"
#include "net.hpp"
#include "portico/filters/cors.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;

namespace {

struct Setup {
  explicit Setup(filters::CorsOptions o)
      : up([](const std::string&) {
          return ok_response("up", "Access-Control-Allow-Origin: *\r\nVary: Accept\r\n");
        }) {
    auto f = filters::make_cors(std::move(o));
    REQUIRE_MESSAGE(f, (f ? "" : f.error().message));
    proxy::ServerOptions so;
    so.clusters.push_back(cluster_of("svc", {up.port()}));
    auto route = cluster_route("/api/**", "svc");
    route.filters.push_back(*f);
    so.routes.push_back(route);
    gw = std::make_unique<Gateway>(so);
  }
  std::string send(const std::string& method, const std::string& headers) {
    return roundtrip(gw->port(), method + " /api/x HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n");
  }
  std::string preflight(const std::string& origin, const std::string& method,
                        const std::string& headers = "") {
    std::string h = "Origin: " + origin + "\r\nAccess-Control-Request-Method: " + method + "\r\n";
    if (!headers.empty()) h += "Access-Control-Request-Headers: " + headers + "\r\n";
    return send("OPTIONS", h);
  }
  Upstream up;
  std::unique_ptr<Gateway> gw;
};

filters::CorsOptions app_origins() {
  filters::CorsOptions o;
  o.origins = {"https://app.example.com", "https://*.example.org"};
  o.methods = {"GET", "POST", "DELETE"};
  o.headers = {"Authorization", "Content-Type", "X-Request-ID"};
  o.exposed_headers = {"X-Request-ID", "RateLimit"};
  o.max_age = std::chrono::minutes(10);
  return o;
}

}  // namespace

TEST_CASE("cors: an allowed preflight is answered 204 at the gateway") {
  Setup s(app_origins());
  const std::string r =
      s.preflight("https://app.example.com", "DELETE", "authorization, x-request-id");
  CHECK(status_of(r) == 204);
  CHECK(header_value(r, "access-control-allow-origin") == "https://app.example.com");
  CHECK(header_value(r, "access-control-allow-methods") == "GET, POST, DELETE");
  CHECK(header_value(r, "access-control-allow-headers") ==
        "Authorization, Content-Type, X-Request-ID");
  CHECK(header_value(r, "access-control-max-age") == "600");
  CHECK_FALSE(has_header(r, "access-control-allow-credentials"));
  CHECK(header_value(r, "vary").find("Origin") != std::string::npos);
  CHECK(s.up.requests().empty());  // never forwarded

  const std::string sub = s.preflight("https://eu.shop.example.org", "POST");
  CHECK(status_of(sub) == 204);
  CHECK(header_value(sub, "access-control-allow-origin") == "https://eu.shop.example.org");
}

TEST_CASE("cors: disallowed preflights get 403 with the JSON error") {
  Setup s(app_origins());
  struct Case {
    std::string origin, method, headers, message;
  };
  const std::vector<Case> cases = {
      {"https://evil.example.com", "GET", "", "origin not allowed"},
      {"https://example.org", "GET", "", "origin not allowed"},
      {"http://app.example.com", "GET", "", "origin not allowed"},
      {"https://app.example.com", "PUT", "", "method not allowed"},
      {"https://app.example.com", "GET", "X-Secret", "a requested header is not allowed"},
      {"https://app.example.com", "GET", "authorization, bad header", "a requested header"},
      // Malformed origins.
      {"not an origin", "GET", "", "origin not allowed"},
      {"https://app.example.com/path", "GET", "", "origin not allowed"},
      {"https://app.example.com.evil.net", "GET", "", "origin not allowed"},
      {"null", "GET", "", "origin not allowed"},
      {std::string(3000, 'o'), "GET", "", "origin not allowed"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.origin.substr(0, 40));
    CAPTURE(c.method);
    const std::string r = s.preflight(c.origin, c.method, c.headers);
    CHECK(status_of(r) == 403);
    CHECK(header_value(r, "content-type") == "application/json");
    CHECK(body_of(r).find("{\"error\":\"CORS preflight refused: " + c.message) == 0);
    CHECK_FALSE(has_header(r, "access-control-allow-origin"));
  }
  // Two Origin fields: ambiguous, refused.
  const std::string twice =
      s.send("OPTIONS",
             "Origin: https://app.example.com\r\nOrigin: https://evil.example.com\r\n"
             "Access-Control-Request-Method: GET\r\n");
  CHECK(status_of(twice) == 403);
  CHECK(s.up.requests().empty());
}

TEST_CASE("cors: requests from allowed origins get the response fields; others none") {
  Setup s(app_origins());
  const std::string r = s.send("GET", "Origin: https://app.example.com\r\n");
  REQUIRE(status_of(r) == 200);
  CHECK(header_value(r, "access-control-allow-origin") == "https://app.example.com");
  CHECK(header_values(r, "access-control-allow-origin").size() == 1);  // upstream's "*" replaced
  CHECK(header_value(r, "access-control-expose-headers") == "X-Request-ID, RateLimit");
  const auto vary = header_values(r, "vary");
  CHECK(std::find(vary.begin(), vary.end(), "Accept") != vary.end());
  CHECK(std::find(vary.begin(), vary.end(), "Origin") != vary.end());

  // A refused origin is not refused service: its response has no grant,
  // not even the upstream's.
  const std::string other = s.send("GET", "Origin: https://evil.example.com\r\n");
  CHECK(status_of(other) == 200);
  CHECK_FALSE(has_header(other, "access-control-allow-origin"));
  CHECK_FALSE(has_header(other, "access-control-expose-headers"));

  // OPTIONS without Access-Control-Request-Method is an ordinary request.
  const std::string options = s.send("OPTIONS", "Origin: https://app.example.com\r\n");
  CHECK(status_of(options) == 200);
  CHECK(s.up.requests().size() == 3);

  // No Origin: no CORS fields, but caches still learn the answer varies.
  const std::string plain = s.send("GET", "");
  CHECK_FALSE(has_header(plain, "access-control-allow-origin"));
  const auto plain_vary = header_values(plain, "vary");
  CHECK(std::find(plain_vary.begin(), plain_vary.end(), "Origin") != plain_vary.end());
}

TEST_CASE("cors: \"*\" is sent as is without credentials, and never with them") {
  SUBCASE("no credentials") {
    filters::CorsOptions o;
    o.origins = {"*"};
    Setup s(o);
    const std::string pre = s.preflight("https://any.example", "GET", "X-Anything, X-Else");
    CHECK(status_of(pre) == 204);
    CHECK(header_value(pre, "access-control-allow-origin") == "*");
    // No configured header list: the requested one is echoed.
    CHECK(header_value(pre, "access-control-allow-headers") == "X-Anything, X-Else");
    CHECK_FALSE(has_header(pre, "access-control-max-age"));
    const std::string r = s.send("GET", "Origin: https://any.example\r\n");
    CHECK(header_value(r, "access-control-allow-origin") == "*");
    const auto vary = header_values(r, "vary");
    CHECK(std::find(vary.begin(), vary.end(), "Origin") == vary.end());
  }
  SUBCASE("credentials") {
    filters::CorsOptions o;
    o.origins = {"*"};
    o.credentials = true;
    Setup s(o);
    const std::string pre = s.preflight("https://any.example", "POST");
    CHECK(status_of(pre) == 204);
    CHECK(header_value(pre, "access-control-allow-origin") == "https://any.example");
    CHECK(header_value(pre, "access-control-allow-credentials") == "true");
    CHECK(header_value(pre, "vary").find("Origin") != std::string::npos);
    const std::string r = s.send("GET", "Origin: https://any.example\r\n");
    CHECK(header_value(r, "access-control-allow-origin") == "https://any.example");
    CHECK(header_value(r, "access-control-allow-credentials") == "true");
    const auto vary = header_values(r, "vary");
    CHECK(std::find(vary.begin(), vary.end(), "Origin") != vary.end());
  }
}

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "../support/alloc_counter.hpp"
#include "portico/router.hpp"

using namespace portico;

namespace {

RouteSpec spec(std::string path, MethodSet methods = MethodSet::any(), std::string name = {}) {
  RouteSpec s;
  s.path = std::move(path);
  s.methods = methods;
  s.name = std::move(name);
  return s;
}

RouteId add_ok(Router& r, RouteSpec s) {
  auto id = r.add(std::move(s));
  REQUIRE_MESSAGE(id.ok(), (id.ok() ? "" : id.error().message));
  return *id;
}

Error add_err(Router& r, RouteSpec s) {
  const std::string label = s.path;
  auto id = r.add(std::move(s));
  REQUIRE_MESSAGE(!id.ok(), label, " was accepted");
  return id.error();
}

Match get(const Router& r, std::string_view path, std::string_view method = "GET",
          std::string_view host = "", std::span<const HeaderField> headers = {},
          std::string_view query = "") {
  return r.match(MatchInput{method, host, path, query, headers});
}

// The name of the matched route, or "404"/"405".
std::string hit(const Router& r, std::string_view path, std::string_view method = "GET",
                std::string_view host = "") {
  const Match m = get(r, path, method, host);
  if (m.status == MatchStatus::not_found) return "404";
  if (m.status == MatchStatus::method_not_allowed) return "405";
  return m.route->name();
}

}  // namespace

TEST_CASE("static, parameter and catch-all segments") {
  Router r;
  add_ok(r, spec("/", MethodSet::any(), "root"));
  add_ok(r, spec("/users", MethodSet::any(), "users"));
  add_ok(r, spec("/users/{id}", MethodSet::any(), "user"));
  add_ok(r, spec("/users/{id}/events", MethodSet::any(), "events"));
  add_ok(r, spec("/files/{*rest}", MethodSet::any(), "files"));

  CHECK(hit(r, "/") == "root");
  CHECK(hit(r, "/users") == "users");
  CHECK(hit(r, "/users/42") == "user");
  CHECK(hit(r, "/users/42/events") == "events");
  CHECK(hit(r, "/users/") == "404");  // a parameter is never empty
  CHECK(hit(r, "/users/42/") == "404");
  CHECK(hit(r, "/users/42/events/x") == "404");
  CHECK(hit(r, "/user") == "404");
  CHECK(hit(r, "/usersx") == "404");
  CHECK(hit(r, "") == "404");

  const std::string path = "/users/42/events";
  const Match m = get(r, path);
  REQUIRE(m.params().size() == 1);
  CHECK(m.params()[0].name == "id");
  CHECK(m.params()[0].value == "42");
  // The value is a view into the caller's path, not a copy.
  CHECK(m.params()[0].value.data() == path.data() + 7);

  const Match f = get(r, "/files/a/b/c.txt");
  CHECK(f.route->name() == "files");
  CHECK(f.param("rest") == "a/b/c.txt");
  CHECK(get(r, "/files/").param("rest") == "");
  CHECK(get(r, "/files").param("rest") == "");  // a trailing catch-all answers its base
  CHECK(f.param("nope") == std::nullopt);
}

TEST_CASE("prefix routes with /** match their base and everything below") {
  Router r;
  add_ok(r, spec("/api/orders/**", MethodSet::any(), "orders"));
  add_ok(r, spec("/api/ordersX", MethodSet::any(), "x"));
  add_ok(r, spec("/**", MethodSet::any(), "fallback"));

  CHECK(hit(r, "/api/orders") == "orders");
  CHECK(hit(r, "/api/orders/") == "orders");
  CHECK(hit(r, "/api/orders/7/items") == "orders");
  CHECK(get(r, "/api/orders/7/items").param("*") == "7/items");
  CHECK(hit(r, "/api/ordersX") == "x");
  CHECK(hit(r, "/api/ordersY") == "fallback");  // not a segment boundary
  CHECK(hit(r, "/api/order") == "fallback");
  CHECK(hit(r, "/") == "fallback");
  CHECK(get(r, "/anything/at/all").param("*") == "anything/at/all");
}

TEST_CASE("a catch-all after a capture also matches its base") {
  // Found by tests/fuzz/router_fuzz: `/{x}/**` did not match `/foo`, although
  // every other catch-all matches its base.
  Router r;
  add_ok(r, spec("/users/{id}/**", MethodSet::any(), "user-tree"));
  add_ok(r, spec("/{tenant}/{*rest}", MethodSet::any(), "tenant"));

  const Match base = get(r, "/users/42");
  REQUIRE(base.route != nullptr);
  CHECK(base.route->name() == "user-tree");
  CHECK(base.param("id") == "42");
  CHECK(base.param("*") == "");
  CHECK(hit(r, "/users/42/") == "user-tree");
  CHECK(get(r, "/users/42/a/b").param("*") == "a/b");

  const Match tenant = get(r, "/acme");
  REQUIRE(tenant.route != nullptr);
  CHECK(tenant.route->name() == "tenant");
  CHECK(tenant.param("tenant") == "acme");
  CHECK(tenant.param("rest") == "");
  CHECK(hit(r, "/users") == "tenant");
}

TEST_CASE("static beats parameter beats catch-all, and backtracking finds the rest") {
  Router r;
  add_ok(r, spec("/users/me", MethodSet::any(), "me"));
  add_ok(r, spec("/users/me/profile", MethodSet::any(), "my-profile"));
  add_ok(r, spec("/users/{id}", MethodSet::any(), "user"));
  add_ok(r, spec("/users/{id}/events", MethodSet::any(), "events"));
  add_ok(r, spec("/users/{*rest}", MethodSet::any(), "users-any"));

  CHECK(hit(r, "/users/me") == "me");
  CHECK(hit(r, "/users/me/profile") == "my-profile");
  CHECK(hit(r, "/users/you") == "user");
  // The static `me` branch fails below; the parameter branch must be tried.
  CHECK(hit(r, "/users/me/events") == "events");
  CHECK(get(r, "/users/me/events").param("id") == "me");
  CHECK(hit(r, "/users/mex") == "user");  // static prefix `me` must not half-match
  CHECK(hit(r, "/users/me/other") == "users-any");
  CHECK(get(r, "/users/me/other").param("rest") == "me/other");
  // A failed branch leaves no captures behind.
  CHECK(get(r, "/users/me/other").params().size() == 1);
  CHECK(hit(r, "/users/a/b/c") == "users-any");
}

TEST_CASE("deep backtracking across several levels") {
  Router r;
  add_ok(r, spec("/a/b/c/d", MethodSet::any(), "static"));
  add_ok(r, spec("/a/{x}/c/e", MethodSet::any(), "one-param"));
  add_ok(r, spec("/a/{x}/{y}/f", MethodSet::any(), "two-params"));
  add_ok(r, spec("/{w}/{x}/{y}/{z}", MethodSet::any(), "all-params"));
  CHECK(hit(r, "/a/b/c/d") == "static");
  CHECK(hit(r, "/a/b/c/e") == "one-param");
  CHECK(hit(r, "/a/b/c/f") == "two-params");
  CHECK(hit(r, "/a/b/c/g") == "all-params");
  const Match m = get(r, "/a/b/c/g");
  REQUIRE(m.params().size() == 4);
  CHECK(m.param("w") == "a");
  CHECK(m.param("z") == "g");
}

TEST_CASE("404 and 405 are told apart, with the allowed methods") {
  Router r;
  add_ok(r, spec("/items", {Method::get, Method::head}, "list"));
  add_ok(r, spec("/items", {Method::post}, "create"));
  add_ok(r, spec("/items/{id}", {Method::delete_}, "delete"));

  CHECK(hit(r, "/items", "GET") == "list");
  CHECK(hit(r, "/items", "POST") == "create");
  const Match m = get(r, "/items", "PUT");
  CHECK(m.status == MatchStatus::method_not_allowed);
  CHECK(m.route == nullptr);
  CHECK(m.allowed == MethodSet{Method::get, Method::head, Method::post});
  CHECK(m.allowed.to_string() == "GET, HEAD, POST");
  CHECK(get(r, "/items/3", "GET").allowed.to_string() == "DELETE");
  CHECK(get(r, "/nothing", "PUT").status == MatchStatus::not_found);
  // A 405 in one branch does not hide a match in another.
  add_ok(r, spec("/items/{*rest}", {Method::get}, "items-get"));
  CHECK(hit(r, "/items/3", "GET") == "items-get");
}

TEST_CASE("extension methods match only routes that accept any method") {
  Router r;
  add_ok(r, spec("/dav", {Method::get}, "get-only"));
  CHECK(hit(r, "/dav", "PROPFIND") == "405");
  CHECK(hit(r, "/dav", "get") == "405");  // methods are case-sensitive
  Router any;
  add_ok(any, spec("/dav", MethodSet::any(), "any"));
  CHECK(hit(any, "/dav", "PROPFIND") == "any");
  CHECK(hit(any, "/dav", "get") == "any");
  CHECK(hit(any, "/dav", "GET") == "any");
}

TEST_CASE("hosts: exact, wildcard, any, and their order") {
  Router r;
  RouteSpec a = spec("/x", MethodSet::any(), "exact");
  a.host = "API.example.com";
  add_ok(r, a);
  RouteSpec w = spec("/x", MethodSet::any(), "wild");
  w.host = "*.example.com";
  add_ok(r, w);
  RouteSpec w2 = spec("/x", MethodSet::any(), "wild-deeper");
  w2.host = "*.eu.example.com";
  add_ok(r, w2);
  add_ok(r, spec("/x", MethodSet::any(), "any"));
  RouteSpec only = spec("/only-exact", MethodSet::any(), "only-exact");
  only.host = "api.example.com";
  add_ok(r, only);

  CHECK(hit(r, "/x", "GET", "api.example.com") == "exact");
  CHECK(hit(r, "/x", "GET", "Api.Example.COM:8443") == "exact");
  CHECK(hit(r, "/x", "GET", "api.example.com.") == "exact");
  CHECK(hit(r, "/x", "GET", "www.example.com") == "wild");
  CHECK(hit(r, "/x", "GET", "a.b.example.com") == "wild");
  CHECK(hit(r, "/x", "GET", "x.eu.example.com") == "wild-deeper");
  CHECK(hit(r, "/x", "GET", "example.com") == "any");  // `*.` needs a label
  CHECK(hit(r, "/x", "GET", "other.org") == "any");
  CHECK(hit(r, "/x", "GET", "") == "any");
  CHECK(hit(r, "/x", "GET", "[::1]:80") == "any");
  CHECK(hit(r, "/only-exact", "GET", "api.example.com") == "only-exact");
  CHECK(hit(r, "/only-exact", "GET", "www.example.com") == "404");
  CHECK(hit(r, "/x", "GET", std::string(300, 'a')) == "any");
}

TEST_CASE("header and query predicates refine a match") {
  Router r;
  RouteSpec v2 = spec("/api/{*rest}", MethodSet::any(), "v2");
  v2.predicates = {Predicate::header_equals("X-API-Version", "v2")};
  add_ok(r, v2);
  RouteSpec beta = spec("/api/{*rest}", MethodSet::any(), "beta");
  beta.predicates = {Predicate::header_present("x-beta-user"),
                     Predicate::query_equals("ui", "new")};
  add_ok(r, beta);
  RouteSpec mobile = spec("/api/{*rest}", MethodSet::any(), "mobile");
  mobile.predicates = {Predicate::header_regex("user-agent", "Mozilla/5\\.0 \\((iPhone|iPad).*")};
  add_ok(r, mobile);
  RouteSpec prefixed = spec("/api/{*rest}", MethodSet::any(), "tenant");
  prefixed.predicates = {Predicate::header_prefix("x-tenant", "acme-")};
  add_ok(r, prefixed);
  RouteSpec debug = spec("/api/{*rest}", MethodSet::any(), "debug");
  debug.predicates = {Predicate::query_present("debug")};
  add_ok(r, debug);
  add_ok(r, spec("/api/{*rest}", MethodSet::any(), "default"));

  auto name = [&](std::vector<HeaderField> headers, std::string_view query = "") {
    const Match m = get(r, "/api/orders", "GET", "", headers, query);
    return m.route ? m.route->name() : std::string("none");
  };
  CHECK(name({}) == "default");
  CHECK(name({{"x-api-version", "v2"}}) == "v2");
  CHECK(name({{"X-Api-Version", "v3"}}) == "default");
  // Two predicates outrank one: beta is tried before v2 even though added later.
  CHECK(name({{"X-API-Version", "v2"}, {"X-Beta-User", "1"}}, "ui=new") == "beta");
  CHECK(name({{"X-Beta-User", "1"}}, "ui=old") == "default");
  CHECK(name({{"X-Beta-User", "1"}}, "a=1&ui=new&b") == "beta");
  CHECK(name({{"User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)"}}) == "mobile");
  CHECK(name({{"User-Agent", "xMozilla/5.0 (iPhone"}}) == "default");  // whole value
  CHECK(name({{"User-Agent", "Mozilla/5.0 (iPad"}}) == "mobile");
  // A long value neither crashes nor matches by accident.
  const std::string huge = "Mozilla/5.0 (Android " + std::string(200000, 'x');
  CHECK(name({{"User-Agent", huge}}) == "default");
  CHECK(name({{"User-Agent", "Mozilla/5.0 (iPhone" + std::string(200000, 'y')}}) == "mobile");
  CHECK(name({{"X-Tenant", "acme-eu"}}) == "tenant");
  CHECK(name({{"X-Tenant", "acm"}}) == "default");
  CHECK(name({}, "debug") == "debug");
  CHECK(name({}, "x=1&debug=&y") == "debug");
  CHECK(name({}, "debugx=1") == "default");
}

TEST_CASE("a failing predicate lets matching fall back to a less specific route") {
  Router r;
  RouteSpec admin = spec("/users/{id}", MethodSet::any(), "admin-user");
  admin.predicates = {Predicate::header_equals("x-role", "admin")};
  add_ok(r, admin);
  add_ok(r, spec("/users/{*rest}", MethodSet::any(), "users-any"));
  CHECK(hit(r, "/users/1") == "users-any");
  const HeaderField role[] = {{"X-Role", "admin"}};
  CHECK(get(r, "/users/1", "GET", "", role).route->name() == "admin-user");
}

TEST_CASE("weighted targets: canary, blue-green and sticky picks") {
  Router r;
  RouteSpec canary = spec("/checkout", MethodSet::any(), "checkout");
  canary.targets = {{"stable", 90}, {"canary", 10}};
  const RouteId id = add_ok(r, canary);
  const Route& route = r.route(id);

  std::map<std::size_t, int> counts;
  std::uint64_t x = 12345;
  for (int i = 0; i < 100000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    counts[*route.pick_target(x)]++;
  }
  CHECK(counts[0] == doctest::Approx(90000).epsilon(0.01));
  CHECK(counts[1] == doctest::Approx(10000).epsilon(0.05));
  // The same value always picks the same target (sticky by user hash).
  CHECK(route.pick_target(777) == route.pick_target(777));
  CHECK(route.pick_target(0) == 0u);
  CHECK(route.pick_target(89) == 0u);
  CHECK(route.pick_target(90) == 1u);
  CHECK(route.pick_target(99) == 1u);
  CHECK(route.pick_target(100) == 0u);

  RouteSpec bg = spec("/deploy", MethodSet::any(), "blue-green");
  bg.targets = {{"blue", 100}, {"green", 0}};
  const Route& blue_green = r.route(add_ok(r, bg));
  for (std::uint64_t v = 0; v < 1000; ++v)
    CHECK(blue_green.pick_target(v * 7919) == 0u);

  CHECK(r.route(add_ok(r, spec("/plain"))).pick_target(5) == std::nullopt);
}

TEST_CASE("conflicting routes are refused with both names, and nothing changes") {
  Router r;
  add_ok(r, spec("/users/{id}", {Method::get, Method::put}, "first"));
  const Error e = add_err(r, spec("/users/{id}", {Method::put}, "second"));
  CHECK(e.kind == ErrorKind::conflict);
  CHECK(e.message.find("'first'") != std::string::npos);
  CHECK(e.message.find("'second'") != std::string::npos);
  CHECK(e.message.find("PUT") != std::string::npos);
  CHECK(r.size() == 1);
  CHECK(hit(r, "/users/1", "PUT") == "first");

  // Different parameter names at one position.
  const Error names = add_err(r, spec("/users/{user_id}/events", {Method::get}, "third"));
  CHECK(names.kind == ErrorKind::conflict);
  CHECK(names.message.find("{user_id}") != std::string::npos);
  CHECK(names.message.find("{id}") != std::string::npos);
  CHECK(names.message.find("'first'") != std::string::npos);
  CHECK(r.size() == 1);
  CHECK(hit(r, "/users/1/events") == "404");

  // Disjoint methods or different predicates are not conflicts.
  add_ok(r, spec("/users/{id}", {Method::delete_}, "delete"));
  RouteSpec v2 = spec("/users/{id}", {Method::get}, "v2");
  v2.predicates = {Predicate::header_equals("x-api-version", "v2")};
  add_ok(r, v2);
  // Same predicates in another order and name case are the same predicates.
  RouteSpec v2b = spec("/users/{id}", {Method::get}, "v2-again");
  v2b.predicates = {Predicate::header_equals("X-API-Version", "v2")};
  CHECK(add_err(r, v2b).kind == ErrorKind::conflict);

  // Same pattern on different hosts is fine; on the same host it is not.
  RouteSpec h1 = spec("/users/{id}", {Method::get}, "host-a");
  h1.host = "a.example.com";
  add_ok(r, h1);
  RouteSpec h2 = spec("/users/{id}", {Method::get}, "host-a-again");
  h2.host = "A.example.com";
  CHECK(add_err(r, h2).kind == ErrorKind::conflict);

  // Catch-alls: a different name, or the same route twice, including its base.
  add_ok(r, spec("/static/**", MethodSet::any(), "static"));
  CHECK(add_err(r, spec("/static/{*path}", MethodSet::any(), "static2")).kind ==
        ErrorKind::conflict);
  CHECK(add_err(r, spec("/static/**", {Method::get}, "static3")).kind == ErrorKind::conflict);
  // An exact route at the base of a catch-all is more specific, not a clash.
  add_ok(r, spec("/static", {Method::get}, "static-index"));
  CHECK(hit(r, "/static") == "static-index");
  CHECK(hit(r, "/static", "POST") == "static");
}

TEST_CASE("malformed patterns and parameters are refused with a reason") {
  Router r;
  struct Case {
    const char* path;
    const char* reason;
  };
  const Case cases[] = {
      {"", "must start with '/'"},
      {"users", "must start with '/'"},
      {"/users/{id", "unclosed '{'"},
      {"/users/{}", "empty capture name"},
      {"/users/x{id}", "whole segment"},
      {"/users/{id}x", "whole segment"},
      {"/users/id}", "'{' and '}'"},
      {"/files/{*rest}/more", "catch-all may only end"},
      {"/files/**/more", "'/**' may only end"},
      {"/a/{b c}", "capture name"},
      {"/a/../b", "'.' or '..'"},
      {"/a/%2e/b", "'.' or '..'"},
      {"/a b", "forbidden byte"},
      {"/a/%zz", "invalid percent-encoding"},
  };
  for (const Case& c : cases) {
    const Error e = add_err(r, spec(c.path));
    CHECK(e.kind == ErrorKind::malformed);
    CHECK_MESSAGE(e.message.find(c.reason) != std::string::npos, c.path, ": ", e.message);
  }
  std::string many;
  for (int i = 0; i <= static_cast<int>(kMaxParams); ++i)
    many += "/{p" + std::to_string(i) + "}";
  CHECK(add_err(r, spec(many)).message.find("more than 16 captures") != std::string::npos);

  CHECK(add_err(r, spec("/x", MethodSet())).kind == ErrorKind::invalid_argument);
  RouteSpec zero = spec("/x");
  zero.targets = {{"a", 0}, {"b", 0}};
  CHECK(add_err(r, zero).kind == ErrorKind::invalid_argument);
  RouteSpec regex = spec("/x");
  regex.predicates = {Predicate::header_regex("a", "(unclosed")};
  CHECK(add_err(r, regex).message.find("bad regular expression") != std::string::npos);
  RouteSpec unnamed = spec("/x");
  unnamed.predicates = {Predicate::header_present("")};
  CHECK(add_err(r, unnamed).message.find("empty name") != std::string::npos);
  for (const char* host : {"*example.com", "a.*.com", "*.", "exa mple.com", "a/b"}) {
    RouteSpec h = spec("/x");
    h.host = host;
    CHECK_MESSAGE(add_err(r, h).kind == ErrorKind::malformed, host);
  }
  CHECK(r.size() == 0);
  CHECK(hit(r, "/x") == "404");
}

TEST_CASE("an unnamed catch-all counts toward the sixteen captures") {
  // Found by tests/fuzz/router_fuzz: sixteen {captures} and a `/**` were
  // accepted, and matching then wrote a seventeenth capture past the end of
  // Match's slots.
  Router r;
  std::string sixteen;
  std::string path;
  for (int i = 0; i < static_cast<int>(kMaxParams); ++i) {
    sixteen += "/{p" + std::to_string(i) + "}";
    path += "/v";
  }
  const Error e = add_err(r, spec(sixteen + "/**"));
  CHECK(e.kind == ErrorKind::malformed);
  CHECK(e.message.find("more than 16 captures") != std::string::npos);
  CHECK(add_err(r, spec(sixteen + "/{*rest}")).kind == ErrorKind::malformed);

  // Fifteen and a catch-all fill the slots exactly, on the base as below it.
  const std::string fifteen = sixteen.substr(0, sixteen.rfind('/'));
  add_ok(r, spec(fifteen + "/**", MethodSet::any(), "full"));
  const std::string base = path.substr(0, path.size() - 2);
  CHECK(get(r, base).params().size() == kMaxParams);
  CHECK(get(r, base + "/a/b").params().size() == kMaxParams);
  CHECK(get(r, base + "/a/b").param("*") == "a/b");
}

TEST_CASE("two captures of one name are refused") {
  // Found by tests/fuzz/router_fuzz: `/{x}/{x}` was accepted, and
  // param("x") could only ever return the first.
  Router r;
  for (const char* pattern : {"/{id}/{id}", "/a/{id}/b/{*id}", "/{x}/{y}/{x}"}) {
    const Error e = add_err(r, spec(pattern));
    CHECK(e.kind == ErrorKind::malformed);
    CHECK_MESSAGE(e.message.find("two captures named") != std::string::npos, e.message);
  }
  CHECK(r.size() == 0);
}

TEST_CASE("host patterns: a trailing dot is dropped, a port or an empty label refused") {
  // Found by tests/fuzz/router_fuzz: these were accepted into tables that no
  // request host could ever reach, since a request's port and trailing dot
  // are dropped before lookup.
  Router r;
  RouteSpec dotted = spec("/x", MethodSet::any(), "dotted");
  dotted.host = "API.example.com.";
  add_ok(r, dotted);
  CHECK(hit(r, "/x", "GET", "api.example.com") == "dotted");
  CHECK(hit(r, "/x", "GET", "api.example.com.:443") == "dotted");
  // Being the same host, it conflicts with the spelling without the dot.
  RouteSpec plain = spec("/x", MethodSet::any(), "plain");
  plain.host = "api.example.com";
  CHECK(add_err(r, plain).kind == ErrorKind::conflict);

  RouteSpec wild = spec("/x", MethodSet::any(), "wild");
  wild.host = "*.example.com.";
  add_ok(r, wild);
  CHECK(hit(r, "/x", "GET", "www.example.com") == "wild");

  RouteSpec v6 = spec("/x", MethodSet::any(), "v6");
  v6.host = "[::1]";
  add_ok(r, v6);
  CHECK(hit(r, "/x", "GET", "[::1]:8443") == "v6");

  for (const char* host : {"api.example.com:8443", "[::1]:8443", "[::1", "::1", "a..example.com",
                           ".example.com", "*..example.com", "*.example.com:80", "*.2.1]", "."}) {
    RouteSpec h = spec("/x");
    h.host = host;
    CHECK_MESSAGE(add_err(r, h).kind == ErrorKind::malformed, host);
  }
  CHECK(r.size() == 3);
}

TEST_CASE("a request host with an empty label is not a subdomain") {
  // Found by tests/fuzz/router_fuzz: `.example.com` and `a..example.com`
  // matched `*.example.com`, whose `*` stands for at least one label.
  Router r;
  RouteSpec wild = spec("/x", MethodSet::any(), "wild");
  wild.host = "*.example.com";
  add_ok(r, wild);
  add_ok(r, spec("/x", MethodSet::any(), "any"));
  CHECK(hit(r, "/x", "GET", "a.example.com") == "wild");
  CHECK(hit(r, "/x", "GET", ".example.com") == "any");
  CHECK(hit(r, "/x", "GET", "a..example.com") == "any");
  CHECK(hit(r, "/x", "GET", "a.example.com..") == "any");
  CHECK(hit(r, "/x", "GET", "a.example.com.") == "wild");
}

TEST_CASE("a header regex must be a regular expression on its own") {
  // Found by tests/fuzz/router_fuzz: "a)|(b" is no expression, but wrapped
  // as "^(a)|(b)$" it compiled, anchored at one end only, and matched any
  // value starting with "a".
  Router r;
  RouteSpec injected = spec("/x", MethodSet::any(), "injected");
  injected.predicates = {Predicate::header_regex("x-a", "a)|(b")};
  const Error e = add_err(r, injected);
  CHECK(e.kind == ErrorKind::invalid_argument);
  CHECK(e.message.find("bad regular expression") != std::string::npos);

  RouteSpec alternatives = spec("/x", MethodSet::any(), "alternatives");
  alternatives.predicates = {Predicate::header_regex("x-a", "a|b")};
  add_ok(r, alternatives);
  const HeaderField whole[] = {{"x-a", "b"}};
  const HeaderField partial[] = {{"x-a", "azzz"}};
  CHECK(get(r, "/x", "GET", "", whole).status == MatchStatus::matched);
  CHECK(get(r, "/x", "GET", "", partial).status == MatchStatus::not_found);
}

TEST_CASE("predicates no request can meet are refused") {
  // A header name outside RFC 9110's token characters, or a query name or
  // value cut by the query's '&' and '=', would silently hide the route.
  Router r;
  const Predicate never[] = {
      Predicate::header_present("X Role"),     Predicate::header_equals("x-role:", "a"),
      Predicate::header_regex("x\nrole", "a"), Predicate::query_present("a=b"),
      Predicate::query_equals("a&b", "1"),     Predicate::query_equals("q", "1&r=2"),
  };
  for (const Predicate& p : never) {
    RouteSpec s = spec("/x");
    s.predicates = {p};
    CHECK_MESSAGE(add_err(r, s).kind == ErrorKind::invalid_argument, p.name);
  }
  RouteSpec fine = spec("/x");
  fine.predicates = {Predicate::header_present("X-Forwarded-For"),
                     Predicate::query_equals("q", "a=b"), Predicate::query_present("a.b")};
  add_ok(r, fine);
  const HeaderField xff[] = {{"x-forwarded-for", "1.2.3.4"}};
  CHECK(get(r, "/x", "GET", "", xff, "q=a=b&a.b").status == MatchStatus::matched);
}

TEST_CASE("patterns are matched in normalised form") {
  Router r;
  add_ok(r, spec("/caf%c3%a9/%7euser", MethodSet::any(), "cafe"));
  CHECK(hit(r, "/caf%C3%A9/~user") == "cafe");
}

TEST_CASE("sixteen captures fit in a match") {
  Router r;
  std::string pattern;
  std::string path;
  for (int i = 0; i < static_cast<int>(kMaxParams); ++i) {
    pattern += "/{p" + std::to_string(i) + "}";
    path += "/v" + std::to_string(i);
  }
  add_ok(r, spec(pattern, MethodSet::any(), "many"));
  const Match m = get(r, path);
  REQUIRE(m.params().size() == kMaxParams);
  CHECK(m.param("p15") == "v15");
}

TEST_CASE("match does not allocate") {
  Router r;
  add_ok(r, spec("/users/{id}/events", {Method::get}));
  add_ok(r, spec("/users/me/profile", {Method::get}));
  add_ok(r, spec("/static/**", {Method::get}));
  RouteSpec h = spec("/users/{id}/events", {Method::get});
  h.host = "a-rather-long-host-name.example.com";
  add_ok(r, h);
  RouteSpec w = spec("/users/{id}/events", {Method::get});
  w.host = "*.example.com";
  add_ok(r, w);
  RouteSpec p = spec("/users/{id}/events", {Method::get});
  p.predicates = {Predicate::header_equals("x-version", "2"), Predicate::query_present("q")};
  add_ok(r, p);
  const HeaderField headers[] = {{"X-Version", "2"}};

  const std::size_t before = test::allocation_count();
  int matched = 0;
  for (int i = 0; i < 100; ++i) {
    matched += get(r, "/users/me/events").status == MatchStatus::matched;
    matched += get(r, "/static/a/b").status == MatchStatus::matched;
    matched += get(r, "/users/me/events", "PUT").status == MatchStatus::method_not_allowed;
    matched += get(r, "/users/1/events", "GET", "A-Rather-Long-Host-Name.example.com:443").route !=
               nullptr;
    matched += get(r, "/users/1/events", "GET", "xyz.example.com").route != nullptr;
    matched += get(r, "/users/1/events", "GET", "", headers, "q=1").route != nullptr;
  }
  CHECK(test::allocation_count() - before == 0);
  CHECK(matched == 600);
}

TEST_CASE("a large generated table: every route is found, neighbours are not confused") {
  Router r;
  std::vector<std::pair<std::string, std::string>> probes;  // path, route name
  for (int i = 0; i < 3000; ++i) {
    const std::string n = std::to_string(i);
    add_ok(r, spec("/svc" + n + "/items", MethodSet::any(), "list" + n));
    add_ok(r, spec("/svc" + n + "/items/{id}", MethodSet::any(), "item" + n));
    add_ok(r, spec("/svc" + n + "/items/{id}/tags/{tag}", MethodSet::any(), "tag" + n));
    probes.push_back({"/svc" + n + "/items", "list" + n});
    probes.push_back({"/svc" + n + "/items/x" + n, "item" + n});
    probes.push_back({"/svc" + n + "/items/7/tags/t", "tag" + n});
  }
  for (const auto& [path, name] : probes)
    CHECK(hit(r, path) == name);
  CHECK(hit(r, "/svc3000/items") == "404");
  CHECK(hit(r, "/svc12/items/1/tags") == "404");
  CHECK(r.size() == 9000);
}

TEST_CASE("reserve is only a hint: routes before and after it keep their ids and matches") {
  Router r;
  CHECK(add_ok(r, spec("/users/{id}", MethodSet::any(), "user")) == 0);
  const Match before = get(r, "/users/7");
  REQUIRE(before.status == MatchStatus::matched);
  r.reserve(1000);
  for (int i = 0; i < 300; ++i)  // more than three nodes' worth of some
    CHECK(add_ok(r, spec("/g" + std::to_string(i % 7) + "/r" + std::to_string(i) + "/{id}/**",
                         MethodSet::any(), "r" + std::to_string(i))) ==
          static_cast<RouteId>(i + 1));
  r.reserve(0);
  CHECK(r.size() == 301);
  CHECK(hit(r, "/users/7") == "user");
  CHECK(before.param("id") == "7");  // a view into the interned name, still valid
  CHECK(hit(r, "/g3/r10/5/a/b") == "r10");
  CHECK(get(r, "/g5/r299/x").param("id") == "x");
  CHECK(hit(r, "/g5/r299") == "404");
  add_err(r, spec("/users/{name}"));  // conflicts are still seen
}

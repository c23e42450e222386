// A tour of Portico's primitives, in simulated time: the decisions a gateway
// makes for a handful of requests, printed as they are made.
//
// Each section stands alone and uses one header. The program exits non-zero
// if any primitive answers differently from what is printed as expected, so
// it doubles as a smoke test of the shared library.
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include "portico/balancer.hpp"
#include "portico/breaker.hpp"
#include "portico/jwt.hpp"
#include "portico/limiter.hpp"
#include "portico/path.hpp"
#include "portico/router.hpp"

using namespace portico;
using namespace std::chrono_literals;

namespace {

int g_failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::printf("  !! unexpected: %s\n", what);
    ++g_failures;
  }
}

void section(const char* title) {
  std::printf("\n== %s\n", title);
}

void route_requests() {
  section("router: method, host and path to a route");
  Router router;
  auto add = [&](std::string name, std::string path, MethodSet methods) {
    RouteSpec spec;
    spec.name = std::move(name);
    spec.path = std::move(path);
    spec.methods = methods;
    if (spec.name == "orders") spec.targets = {{"orders-stable", 90}, {"orders-canary", 10}};
    auto id = router.add(std::move(spec));
    if (!id) std::printf("  add failed: %s\n", id.error().message.c_str());
  };
  add("users", "/users/{id}", {Method::get});
  add("user-events", "/users/{id}/events", {Method::get});
  add("me", "/users/me/profile", {Method::get, Method::put});
  add("orders", "/api/orders/**", MethodSet::any());
  add("admin", "/admin/**", {Method::get});

  // A second route with the same shape is refused, naming both routes.
  RouteSpec clash;
  clash.name = "users-again";
  clash.path = "/users/{user_id}";
  auto refused = router.add(std::move(clash));
  std::printf("  adding /users/{user_id}: %s\n",
              refused ? "accepted" : refused.error().message.c_str());
  expect(!refused, "conflicting route refused");

  struct Request {
    const char* method;
    const char* path;
    const char* expected;
  };
  const Request requests[] = {
      {"GET", "/users/42/events", "user-events"},
      {"GET", "/users/me/events", "user-events"},
      {"PUT", "/users/me/profile", "me"},
      {"DELETE", "/users/42", "405"},
      {"POST", "/api/orders/7/items", "orders"},
      {"GET", "/api/../admin/keys", "admin"},
      {"GET", "/%2e%2e/admin", "admin"},
      {"GET", "/nothing/here", "404"},
      {"GET", "/bad%zzpath", "400"},
  };
  for (const Request& r : requests) {
    char buf[256];
    auto len = normalize_path(r.path, buf);
    std::string outcome;
    if (!len) {
      outcome = "400";
      std::printf("  %-6s %-22s -> 400 (%s)\n", r.method, r.path, len.error().message.c_str());
    } else {
      const std::string_view path(buf, *len);
      const Match m = router.match(MatchInput{r.method, "api.example.com", path, {}, {}});
      if (m.status == MatchStatus::matched) {
        outcome = m.route->name();
        std::printf("  %-6s %-22s -> %-12s (normalised %.*s", r.method, r.path, outcome.c_str(),
                    static_cast<int>(path.size()), path.data());
        for (const Param& p : m.params()) {
          std::printf(", %.*s=%.*s", static_cast<int>(p.name.size()), p.name.data(),
                      static_cast<int>(p.value.size()), p.value.data());
        }
        if (auto t = m.route->pick_target(hash_affinity_key("user-7"))) {
          std::printf(", target %s", m.route->spec().targets[*t].name.c_str());
        }
        std::printf(")\n");
      } else if (m.status == MatchStatus::method_not_allowed) {
        outcome = "405";
        std::printf("  %-6s %-22s -> 405 (Allow: %s)\n", r.method, r.path,
                    m.allowed.to_string().c_str());
      } else {
        outcome = "404";
        std::printf("  %-6s %-22s -> 404\n", r.method, r.path);
      }
    }
    expect(outcome == r.expected, r.path);
  }
}

void limit_requests() {
  section("limiter: 2 requests/second with a burst of 2, per API key");
  auto limiter = KeyedLimiter::create({{2, 1s, 2}, 1024, 0});
  if (!limiter) {
    std::printf("  %s\n", limiter.error().message.c_str());
    ++g_failures;
    return;
  }
  ManualClock clock;
  int allowed = 0;
  for (int i = 0; i < 5; ++i) {
    const Decision d = limiter->check("key-alice", clock.now());
    allowed += d.allowed;
    std::printf("  t=%4lldms alice #%d -> %s  limit=%lld remaining=%lld retry_after=%lldms\n",
                static_cast<long long>(i * 100), i + 1, d.allowed ? "200" : "429",
                static_cast<long long>(d.limit), static_cast<long long>(d.remaining),
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(d.retry_after).count()));
    clock.advance(100ms);
  }
  expect(allowed == 3, "burst of 2 admits 3 at once");
  const Decision bob = limiter->check("key-bob", clock.now());
  std::printf("  bob has his own bucket -> %s\n", bob.allowed ? "200" : "429");
  expect(bob.allowed, "another key is independent");
  clock.advance(500ms);
  const Decision later = limiter->check("key-alice", clock.now());
  std::printf("  alice 500ms later -> %s\n", later.allowed ? "200" : "429");
  expect(later.allowed, "the bucket refills at the rate");
}

void on_breaker_change(void*, BreakerState from, BreakerState to, TimePoint) {
  std::printf("  breaker: %s -> %s\n", breaker_state_name(from), breaker_state_name(to));
}

void break_circuit() {
  section("breaker: 3 failures in a row open it for 5s; one probe closes it");
  BreakerConfig config;
  config.consecutive_failures = 3;
  config.failure_ratio = 0;
  config.open_duration = 5s;
  config.on_state_change = on_breaker_change;
  auto breaker = CircuitBreaker::create(config);
  if (!breaker) {
    std::printf("  %s\n", breaker.error().message.c_str());
    ++g_failures;
    return;
  }
  ManualClock clock;
  for (int i = 0; i < 3; ++i) {
    BreakerPermit p = breaker->try_acquire(clock.now());
    std::printf("  request %d admitted, upstream answers 503\n", i + 1);
    breaker->on_failure(p, clock.now());
  }
  BreakerPermit refused = breaker->try_acquire(clock.now());
  std::printf("  request 4 -> %s, retry after %llds\n", breaker_admission_name(refused.admission()),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(
                                         breaker->retry_after(clock.now()))
                                         .count()));
  expect(!refused, "open breaker refuses");
  clock.advance(5s);
  BreakerPermit probe = breaker->try_acquire(clock.now());
  std::printf("  5s later a probe is %s; upstream answers 200\n",
              breaker_admission_name(probe.admission()));
  breaker->on_success(probe, clock.now());
  expect(breaker->state(clock.now()) == BreakerState::closed, "probe success closes");
}

void balance_load() {
  section("balancer: smooth weighted round robin 5:1:1, then Maglev affinity");
  BalancerConfig config;
  config.policy = BalancerPolicy::weighted_round_robin;
  config.endpoints = {{"10.0.0.1:8080", 5}, {"10.0.0.2:8080", 1}, {"10.0.0.3:8080", 1}};
  auto wrr = Balancer::create(config);
  if (!wrr) {
    std::printf("  %s\n", wrr.error().message.c_str());
    ++g_failures;
    return;
  }
  std::string sequence;
  for (int i = 0; i < 7; ++i) {
    const Pick p = wrr->pick({});
    const auto stats = wrr->stats(p.endpoint);
    sequence += std::string(stats->id.substr(7, 1)) + (i < 6 ? " " : "");
  }
  std::printf("  7 picks, by last octet: %s\n", sequence.c_str());
  expect(sequence == "1 1 2 1 3 1 1", "SWRR order for 5:1:1");

  config.policy = BalancerPolicy::maglev;
  config.endpoints = {{"10.0.0.1:8080", 1}, {"10.0.0.2:8080", 1}, {"10.0.0.3:8080", 1}};
  auto maglev = Balancer::create(config);
  if (!maglev) return;
  ManualClock clock;
  for (const char* user : {"alice", "bob", "carol", "dave", "erin", "frank"}) {
    const Pick a = maglev->pick({hash_affinity_key(user), clock.now()});
    const Pick b = maglev->pick({hash_affinity_key(user), clock.now()});
    std::printf("  session %-5s -> %.*s (again: same endpoint: %s)\n", user,
                static_cast<int>(maglev->stats(a.endpoint)->id.size()),
                maglev->stats(a.endpoint)->id.data(), a.endpoint == b.endpoint ? "yes" : "no");
    expect(a.endpoint == b.endpoint, "maglev is sticky");
  }
}

void verify_tokens() {
  section("jwt: the HS256 example token of RFC 7515 A.1, its key from a JWKS");
  // The example's published key and token: a demonstration secret, not ours.
  auto keys = jwt::KeySet::from_jwks(
      R"({"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]})");
  if (!keys) {
    std::printf("  %s\n", keys.error().message.c_str());
    ++g_failures;
    return;
  }
  jwt::VerifierOptions options;
  options.issuers = {"joe"};
  options.leeway = 0s;
  auto verifier =
      jwt::Verifier::create(std::make_shared<jwt::KeySetHolder>(std::move(*keys)), options);
  if (!verifier) {
    std::printf("  %s\n", verifier.error().message.c_str());
    ++g_failures;
    return;
  }
  jwt::TokenCache cache(std::make_shared<const jwt::Verifier>(std::move(*verifier)));
  const std::string token =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnV"
      "lfQ"
      ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  const jwt::WallTime before_exp{std::chrono::seconds(1300819379)};
  auto show = [](const char* what, const jwt::Verification& v) {
    if (v.ok()) {
      std::printf(
          "  %-28s -> ok%s  iss=%s is_root=%s\n", what, v.from_cache() ? " (cached)" : "",
          std::string(v.claims().string("iss").value_or("?")).c_str(),
          v.claims().boolean("http://example.com/is_root").value_or(false) ? "true" : "false");
    } else {
      std::printf("  %-28s -> %s: %s\n", what, std::string(jwt::reason_name(v.reason())).c_str(),
                  v.message().c_str());
    }
  };
  jwt::Verification first = cache.verify(token, before_exp);
  show("one second before exp", first);
  expect(first.ok() && !first.from_cache(), "the RFC example verifies");
  jwt::Verification again = cache.verify(token, before_exp);
  show("the same token again", again);
  expect(again.ok() && again.from_cache(), "a repeated token hits the cache");
  jwt::Verification late = cache.verify(token, before_exp + 1s);
  show("at exp", late);
  expect(late.reason() == jwt::Reason::expired, "expired at exp with no leeway");
  std::string tampered = token;
  tampered[tampered.size() - 1] = 'Y';
  jwt::Verification forged = cache.verify(tampered, before_exp);
  show("last signature byte changed", forged);
  expect(forged.reason() == jwt::Reason::bad_signature, "a changed signature is refused");
}

}  // namespace

int main() {
  std::printf("Portico primitives demo (simulated time; no network)\n");
  route_requests();
  verify_tokens();
  limit_requests();
  break_circuit();
  balance_load();
  std::printf("\n%s\n",
              g_failures == 0 ? "all decisions as expected" : "SOME DECISIONS WERE UNEXPECTED");
  return g_failures == 0 ? 0 : 1;
}

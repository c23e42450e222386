#include "demo.hpp"

#include <cstdio>

namespace demo {

namespace {

constexpr long kTokenLifetimeSeconds = 3600;

// Placeholders in the template below: @USERS@, @ORDERS@ (ports), @KEY@.
constexpr const char* kConfigTemplate = R"({
  "listeners": [{"address": "127.0.0.1", "port": 8080, "workers": 2}],
  "admin": {"address": "127.0.0.1", "port": 8001},
  "access_log": {"enabled": true},
  "services": [
    {"name": "users", "endpoints": [{"address": "127.0.0.1", "port": @USERS@}],
     "health_check": {"path": "/health", "interval": "5s"}},
    {"name": "orders", "endpoints": [{"address": "127.0.0.1", "port": @ORDERS@}],
     "breaker": {}}
  ],
  "plans": [{"name": "free", "limits": {"second": 2, "minute": 100}}],
  "consumers": [{"id": "demo", "plan": "free",
                 "jwt": [{"issuer": "portico-demo", "subject": "demo-user"}]}],
  "routes": [
    {"name": "health", "paths": ["/health"], "methods": ["GET"], "service": "users",
     "rewrite": "/health"},
    {"name": "users", "paths": ["/api/users/{id}"], "methods": ["GET"], "service": "users",
     "rewrite": "/users/{id}",
     "plugins": [{"name": "jwt-auth", "config": @JWT@}]},
    {"name": "orders", "paths": ["/api/orders/**"], "service": "orders", "strip_path": true,
     "plugins": [{"name": "jwt-auth", "config": @JWT@},
                 {"name": "rate-limit", "config": {"limit_by": "consumer",
                                                   "limits": {"second": 10}}}]}
  ],
  "plugins": [{"name": "request-id"}]
})";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto p = text.find(from); p != std::string::npos; p = text.find(from, p + to.size()))
    text.replace(p, from.size(), to);
  return text;
}

}  // namespace

Demo::Demo() : credentials_(make_demo_credentials("demo-user", kTokenLifetimeSeconds)) {}

std::string Demo::config() const {
  const std::string jwt = R"({"jwks": {"keys": [{"kty": "oct", "alg": "HS256", "k": ")" +
                          credentials_.secret_base64url +
                          R"("}]}, "issuers": ["portico-demo"], "audiences": ["demo-api"]})";
  std::string text = kConfigTemplate;
  text = replace_all(text, "@USERS@", std::to_string(upstreams_.users_port()));
  text = replace_all(text, "@ORDERS@", std::to_string(upstreams_.orders_port()));
  return replace_all(text, "@JWT@", jwt);
}

void Demo::print_guide(std::uint16_t port, std::uint16_t admin_port) const {
  std::printf(
      "\nDemo: two built-in services (users, orders) behind JWT auth and a rate limit.\n"
      "A token for the demo consumer (HS256, a key made for this run, valid 1 hour):\n\n"
      "  TOKEN=%s\n\n"
      "Try:\n"
      "  curl -i http://127.0.0.1:%u/health\n"
      "  curl -i http://127.0.0.1:%u/api/users/42                     # 401: no token\n"
      "  curl -i -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:%u/api/users/42\n"
      "  for i in 1 2 3 4; do curl -s -o /dev/null -w '%%{http_code}\\n' \\\n"
      "    -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:%u/api/orders/7; done  # 429s\n"
      "  curl -s http://127.0.0.1:%u/metrics | head -30\n"
      "  curl -s http://127.0.0.1:%u/status\n\n"
      "Stop with Ctrl-C.\n",
      credentials_.token.c_str(), port, port, port, port, admin_port, admin_port);
}

}  // namespace demo

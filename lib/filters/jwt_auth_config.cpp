// The "jwt-auth" plugin's JSON config (docs/policies.md).
#include <fmt/format.h>

#include "jwks_fetcher.hpp"
#include "option_error.hpp"
#include "portico/filters/jwt_auth.hpp"
#include "registry.hpp"

namespace portico::detail {

namespace {

// "jwks": a JWKS object inline, or its text.
std::string read_jwks(JsonObject& config) {
  const picojson::value* v = config.get("jwks");
  if (v == nullptr) return {};
  if (v->is<std::string>()) return v->get<std::string>();
  if (v->is<picojson::object>()) return v->serialize();
  config.problem("jwks",
                 fmt::format("expected a JWKS object or its text, found {}", json_type_name(*v)));
  return {};
}

std::optional<jwt::Algorithm> read_algorithm(JsonObject& o, std::string_view key) {
  const auto name = o.optional_string(key);
  if (!name) return std::nullopt;
  const auto alg = jwt::parse_algorithm(*name);
  if (!alg) o.problem(key, fmt::format("\"{}\" is not a supported algorithm", *name));
  return alg;
}

// "pem_keys": ["-----BEGIN PUBLIC KEY-----...", {"pem": ..., "kid": ..., "alg": ...}]
std::vector<filters::JwtPemKey> read_pem_keys(JsonObject& config) {
  std::vector<filters::JwtPemKey> out;
  const picojson::value* v = config.get("pem_keys");
  if (v == nullptr) return out;
  if (!v->is<picojson::array>()) {
    config.problem("pem_keys",
                   fmt::format("expected an array of PEM keys, found {}", json_type_name(*v)));
    return out;
  }
  const auto& items = v->get<picojson::array>();
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string path = json_path_index(config.field_path("pem_keys"), i);
    if (items[i].is<std::string>()) {
      out.push_back({items[i].get<std::string>(), {}, std::nullopt});
      continue;
    }
    JsonObject k(items[i], path, config.problems());
    if (!k.valid()) continue;
    filters::JwtPemKey key;
    key.pem = k.string("pem", {}, true);
    key.kid = k.string("kid");
    key.algorithm = read_algorithm(k, "alg");
    k.finish();
    out.push_back(std::move(key));
  }
  return out;
}

jwt::AlgorithmSet read_algorithms(JsonObject& config) {
  if (!config.has("algorithms")) return jwt::AlgorithmSet::all();
  jwt::AlgorithmSet set;
  const auto names = config.strings("algorithms");
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (auto alg = jwt::parse_algorithm(names[i])) {
      set.insert(*alg);
    } else {
      config.problems().add(json_path_index(config.field_path("algorithms"), i),
                            fmt::format("\"{}\" is not a supported algorithm", names[i]));
    }
  }
  return set;
}

// "claims_to_headers": {"sub": "X-User-Id", "realm_access.roles": "X-User-Roles"}
std::vector<filters::JwtClaimHeader> read_claim_headers(JsonObject& config,
                                                        std::vector<filters::JwtClaimHeader> dflt) {
  const picojson::value* v = config.get("claims_to_headers");
  if (v == nullptr) return dflt;
  std::vector<filters::JwtClaimHeader> out;
  if (!v->is<picojson::object>()) {
    config.problem("claims_to_headers", fmt::format("expected an object of claim: header, found {}",
                                                    json_type_name(*v)));
    return out;
  }
  for (const auto& [claim, header] : v->get<picojson::object>()) {
    if (!header.is<std::string>()) {
      add_member_problem(config.problems(), config.field_path("claims_to_headers"), claim,
                         fmt::format("expected a header name, found {}", json_type_name(header)));
      continue;
    }
    out.push_back({claim, header.get<std::string>()});
  }
  return out;
}

}  // namespace

std::shared_ptr<proxy::Filter> build_jwt_auth(JsonObject& config, const PluginEnv& env) {
  const std::size_t problems_before = config.problems().size();
  filters::JwtAuthOptions o;
  const auto hours = [](int h) { return Duration(std::chrono::hours(h)); };
  o.jwks = read_jwks(config);
  o.pem_keys = read_pem_keys(config);
  o.keys_file = config.string("keys_file");
  o.jwks_url = config.string("jwks_url");
  o.jwks_ca_file = config.string("jwks_ca_file");
  o.jwks_refresh_interval = config.duration("jwks_refresh_interval", o.jwks_refresh_interval,
                                            std::chrono::seconds(1), hours(24 * 7));
  o.jwks_retry_interval = config.duration("jwks_retry_interval", o.jwks_retry_interval,
                                          std::chrono::milliseconds(100), hours(24));
  o.jwks_refetch_interval = config.duration("jwks_refetch_interval", o.jwks_refetch_interval,
                                            Duration::zero(), hours(24));
  o.jwks_timeout = config.duration("jwks_timeout", o.jwks_timeout, std::chrono::milliseconds(10),
                                   std::chrono::minutes(5));
  o.jwks_max_bytes = static_cast<std::size_t>(config.integer(
      "jwks_max_bytes", static_cast<std::int64_t>(o.jwks_max_bytes), 64, std::int64_t{64} << 20));

  o.verifier.algorithms = read_algorithms(config);
  o.verifier.issuers = config.strings("issuers");
  o.verifier.audiences = config.strings("audiences");
  o.verifier.required_claims = config.strings("required_claims");
  o.verifier.leeway = std::chrono::duration_cast<std::chrono::seconds>(
      config.duration("leeway", o.verifier.leeway, Duration::zero(), hours(24)));
  o.verifier.max_token_bytes = static_cast<std::size_t>(config.integer(
      "max_token_bytes", static_cast<std::int64_t>(o.verifier.max_token_bytes), 64, 1 << 20));
  o.cache.capacity = static_cast<std::size_t>(
      config.integer("cache_capacity", static_cast<std::int64_t>(o.cache.capacity), 0, 1 << 20));
  o.cache.ttl = std::chrono::duration_cast<std::chrono::seconds>(
      config.duration("cache_ttl", o.cache.ttl, std::chrono::seconds(1), hours(24)));

  o.from_header = config.boolean("from_header", o.from_header);
  o.query_param = config.string("query_param");
  o.cookie = config.string("cookie");
  o.forward_token = config.boolean("forward_token", o.forward_token);
  o.claims_to_headers = read_claim_headers(config, o.claims_to_headers);
  o.required_scopes = config.strings("required_scopes");
  o.scopes_claim = config.string("scopes_claim", o.scopes_claim);
  o.required_roles = config.strings("required_roles");
  o.roles_claim = config.string("roles_claim", o.roles_claim);
  o.require_all_roles = config.boolean("require_all_roles", o.require_all_roles);
  o.consumer_required = config.boolean("consumer_required", o.consumer_required);
  o.consumer_id_header = config.string("consumer_id_header", o.consumer_id_header);
  o.consumer_plan_header = config.string("consumer_plan_header", o.consumer_plan_header);
  o.anonymous_header = config.string("anonymous_header", o.anonymous_header);
  o.realm = config.string("realm", o.realm);
  config.finish();
  if (config.problems().size() != problems_before) return nullptr;

  o.consumers = env.consumers;
  o.workers = std::max(1u, env.workers);
  o.control_loop = env.control_loop;
  // Without a control loop the configuration is only being checked.
  o.validate_only = env.control_loop == nullptr;
  auto filter = filters::make_jwt_auth(std::move(o));
  if (!filter) {
    report_option_error(config, filter.error());
    return nullptr;
  }
  if (env.jwks_started) {
    if (auto source = jwks_source_of(**filter)) {
      // The plugin entry's path ("routes[2].plugins[1]") names the source.
      std::string path = config.path();
      if (path.ends_with(".config")) path.resize(path.size() - 7);
      env.jwks_started(path, std::move(source));
    }
  }
  return std::move(*filter);
}

}  // namespace portico::detail

// The top of the gateway's configuration document: listeners, admin, access
// log, server limits, plans, consumers and plugin entries. Services and
// routes are read in service_config.cpp and route_config.cpp.
#include "gateway_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "../common/cidr.hpp"
#include "../tls/sha256.hpp"
#include "gateway_config_parts.hpp"

namespace portico::detail {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;

// The bounds rate-limit accepts for its own windows and quota.
constexpr std::int64_t kMaxWindowLimit = 1'000'000'000;
constexpr std::int64_t kMaxDailyQuota = 0xffffffff;

// Names seen in one array, to report the second use of each.
class NameIndex {
 public:
  explicit NameIndex(std::string_view what) : what_(what) {}
  void reserve(std::size_t names) { first_.reserve(names); }
  // Reports `name` at `path` when an earlier element already took it.
  void add(const std::string& name, const std::string& path, ConfigProblems& problems) {
    if (name.empty()) return;
    auto [it, inserted] = first_.emplace(name, path);
    if (!inserted)
      problems.add(path, fmt::format("{} '{}' is already defined at {}", what_, name, it->second));
  }

 private:
  std::string_view what_;
  std::unordered_map<std::string, std::string> first_;
};

const picojson::value& empty_object() {
  static const picojson::value kEmpty{picojson::object{}};
  return kEmpty;
}

std::string read_address(JsonObject& o, std::string_view fallback) {
  std::string address = o.string("address", std::string(fallback));
  if (!is_ip_address(address))
    o.problem("address", fmt::format("'{}' is not a numeric IPv4 or IPv6 address", address));
  return address;
}

ListenerConfig read_listener(JsonObject& l) {
  ListenerConfig out;
  out.address = read_address(l, out.address);
  out.port = static_cast<std::uint16_t>(l.integer("port", out.port, 0, 65535));
  out.workers = static_cast<unsigned>(l.integer("workers", 0, 0, 1024));
  l.finish();
  return out;
}

// Two listeners, or a listener and the admin listener, on one address and
// port would fail at bind time: said now, at the later one.
class PortClaims {
 public:
  // `owner` is the listener's path ("listeners[1]", "admin").
  void claim(const std::string& address, std::uint16_t port, const std::string& owner,
             ConfigProblems& problems) {
    if (port == 0) return;
    auto [it, inserted] = first_.emplace(fmt::format("{} port {}", address, port), owner);
    if (!inserted)
      problems.add(json_path_join(owner, "port"),
                   fmt::format("{} is already used by {}", it->first, it->second));
  }

 private:
  std::unordered_map<std::string, std::string> first_;  // "address port N" -> its owner's path
};

std::vector<ListenerConfig> read_listeners(JsonObject& root, PortClaims& ports) {
  if (!root.has("listeners")) return {ListenerConfig{}};
  std::vector<ListenerConfig> out;
  for (JsonObject& l : root.objects("listeners")) {
    out.push_back(read_listener(l));
    ports.claim(out.back().address, out.back().port, l.path(), l.problems());
  }
  if (root.get("listeners")->is<picojson::array>() &&
      root.get("listeners")->get<picojson::array>().empty())
    root.problem("listeners", "needs at least one listener (leave it out for 127.0.0.1:8080)");
  return out;
}

AdminConfig read_admin(JsonObject& root, PortClaims& ports) {
  AdminConfig out;
  if (auto a = root.object("admin")) {
    out.enabled = a->boolean("enabled", out.enabled);
    out.address = read_address(*a, out.address);
    out.port = static_cast<std::uint16_t>(a->integer("port", out.port, 0, 65535));
    a->finish();
  }
  if (out.enabled) ports.claim(out.address, out.port, "admin", root.problems());
  return out;
}

AccessLogConfig read_access_log(JsonObject& root) {
  AccessLogConfig out;
  auto l = root.object("access_log");
  if (!l) return out;
  out.enabled = l->boolean("enabled", out.enabled);
  out.path = l->string("path", "-");
  if (l->has("path") && out.path.empty())
    l->problem("path", "must name a file, or \"-\" for standard output");
  if (out.path == "-" || out.path == "stdout") out.path.clear();
  l->finish();
  return out;
}

// By the parser ip-restriction uses, so that both refuse the same texts
// ("10.0.0.1/8", with bits set after the prefix, among them).
std::vector<std::string> read_trusted_proxies(JsonObject& s) {
  std::vector<std::string> out = s.strings("trusted_proxies");
  std::vector<std::string> valid;
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto network = parse_ip_network(out[i]);
    if (network) {
      valid.push_back(std::move(out[i]));
    } else {
      s.problems().add(json_path_index(s.field_path("trusted_proxies"), i),
                       network.error().message);
    }
  }
  return valid;
}

ServerSettings read_server(JsonObject& root) {
  ServerSettings out;
  auto s = root.object("server");
  if (!s) return out;
  out.backlog = static_cast<int>(s->integer("backlog", out.backlog, 1, 65535));
  http::Limits& limits = out.limits;
  limits.max_request_line = static_cast<std::size_t>(s->integer(
      "max_request_line", static_cast<std::int64_t>(limits.max_request_line), 256, 1 << 20));
  limits.max_head_bytes = static_cast<std::size_t>(s->integer(
      "max_head_bytes", static_cast<std::int64_t>(limits.max_head_bytes), 1024, 16 << 20));
  limits.max_headers = static_cast<std::size_t>(
      s->integer("max_headers", static_cast<std::int64_t>(limits.max_headers), 1, 1000));
  if (limits.max_request_line > limits.max_head_bytes)
    s->problem("max_request_line",
               fmt::format("must not exceed max_head_bytes ({})", limits.max_head_bytes));
  out.header_timeout = s->duration("header_timeout", out.header_timeout, milliseconds(1), hours(1));
  out.idle_timeout = s->duration("idle_timeout", out.idle_timeout, milliseconds(1), hours(24));
  out.request_timeout =
      s->duration("request_timeout", out.request_timeout, Duration::zero(), hours(24));
  out.drain_timeout = s->duration("drain_timeout", out.drain_timeout, Duration::zero(), hours(1));
  out.trusted_proxies = read_trusted_proxies(*s);
  s->finish();
  return out;
}

filters::PlanConfig read_plan(JsonObject& p) {
  filters::PlanConfig out;
  out.name = read_name(p, "name");
  if (auto limits = p.object("limits")) {
    const std::pair<std::string_view, Duration> windows[] = {{"second", std::chrono::seconds(1)},
                                                             {"minute", std::chrono::minutes(1)},
                                                             {"hour", hours(1)},
                                                             {"day", hours(24)}};
    for (const auto& [key, period] : windows) {
      if (!limits->has(key)) continue;
      const std::int64_t limit = limits->integer(key, 0, 1, kMaxWindowLimit);
      if (limit > 0) out.limits.push_back({period, static_cast<std::uint64_t>(limit)});
    }
    limits->finish();
  }
  out.daily_quota = static_cast<std::uint64_t>(p.integer("daily_quota", 0, 0, kMaxDailyQuota));
  p.finish();
  return out;
}

std::vector<filters::PlanConfig> read_plans(JsonObject& root) {
  std::vector<filters::PlanConfig> out;
  NameIndex names("plan");
  for (JsonObject& p : root.objects("plans")) {
    out.push_back(read_plan(p));
    names.add(out.back().name, p.field_path("name"), p.problems());
  }
  return out;
}

bool is_hex_digest(std::string_view hex) {
  return hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

// The SHA-256 of a key in lower-case hex, whichever way it was written, so
// that a key and its "sha256:" form are seen to be the same key.
std::string key_digest(std::string_view key) {
  constexpr std::string_view kPrefix = "sha256:";
  std::string out;
  if (key.starts_with(kPrefix)) {
    for (char c : key.substr(kPrefix.size()))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  }
  Sha256 hash;
  hash.update(reinterpret_cast<const unsigned char*>(key.data()), key.size());
  unsigned char digest[Sha256::kDigestSize];
  hash.finish(digest);
  for (unsigned char b : digest)
    out += fmt::format("{:02x}", b);
  return out;
}

// Credentials are compared across consumers: one key or one JWT identity
// for two consumers would make the identity depend on the order of a list.
// Messages never show a key.
struct CredentialIndex {
  std::unordered_map<std::string, std::string> keys;  // digest -> consumer id
  std::unordered_map<std::string, std::string> jwt;   // issuer '\n' subject -> consumer id
};

void read_api_keys(JsonObject& c, filters::ConsumerConfig& out, CredentialIndex& index) {
  out.api_keys = c.strings("api_keys");
  for (std::size_t i = 0; i < out.api_keys.size(); ++i) {
    const std::string& key = out.api_keys[i];
    const std::string path = json_path_index(c.field_path("api_keys"), i);
    if (key.empty()) {
      c.problems().add(path, "an API key may not be empty");
    } else if (key.starts_with("sha256:") && !is_hex_digest(key.substr(7))) {
      c.problems().add(path, "a \"sha256:\" key must hold 64 hexadecimal digits");
    } else if (auto [it, inserted] = index.keys.emplace(key_digest(key), out.id); !inserted) {
      c.problems().add(path, fmt::format("this key is already given to consumer '{}'", it->second));
    }
  }
}

void read_jwt_identities(JsonObject& c, filters::ConsumerConfig& out, CredentialIndex& index) {
  for (JsonObject& j : c.objects("jwt")) {
    filters::JwtIdentity identity;
    identity.issuer = j.string("issuer");
    identity.subject = read_name(j, "subject");
    j.finish();
    if (identity.subject.empty()) continue;
    auto [it, inserted] = index.jwt.emplace(identity.issuer + '\n' + identity.subject, out.id);
    if (!inserted)
      j.problem(fmt::format("issuer '{}' and subject '{}' already identify consumer '{}'",
                            identity.issuer, identity.subject, it->second));
    out.jwt.push_back(std::move(identity));
  }
}

ConsumerEntry read_consumer(JsonObject& c, const std::vector<filters::PlanConfig>& plans,
                            CredentialIndex& index) {
  ConsumerEntry out;
  filters::ConsumerConfig& consumer = out.consumer;
  consumer.id = read_name(c, "id");
  consumer.plan = c.string("plan");
  const bool known = std::any_of(plans.begin(), plans.end(), [&](const filters::PlanConfig& p) {
    return p.name == consumer.plan;
  });
  if (!consumer.plan.empty() && !known)
    c.problem("plan", fmt::format("no plan named '{}'", consumer.plan));
  read_api_keys(c, consumer, index);
  read_jwt_identities(c, consumer, index);
  out.plugins = read_plugins(c, PluginScope::consumer, consumer.id);
  check_duplicate_plugins(out.plugins, c.problems());
  c.finish();
  return out;
}

std::vector<ConsumerEntry> read_consumers(JsonObject& root,
                                          const std::vector<filters::PlanConfig>& plans) {
  std::vector<ConsumerEntry> out;
  NameIndex ids("consumer");
  CredentialIndex credentials;
  std::vector<JsonObject> consumers = root.objects("consumers");
  out.reserve(consumers.size());
  ids.reserve(consumers.size());
  for (JsonObject& c : consumers) {
    out.push_back(read_consumer(c, plans, credentials));
    ids.add(out.back().consumer.id, c.field_path("id"), c.problems());
  }
  return out;
}

std::vector<ServiceConfig> read_services(JsonObject& root) {
  std::vector<ServiceConfig> out;
  NameIndex names("service");
  for (JsonObject& s : root.objects("services")) {
    out.push_back(read_service(s));
    check_duplicate_plugins(out.back().plugins, s.problems());
    names.add(out.back().cluster.name, s.field_path("name"), s.problems());
  }
  return out;
}

RouteContext route_context(const GatewayConfig& config) {
  RouteContext context;
  for (const ServiceConfig& s : config.services)
    context.services.emplace(s.cluster.name, &s);
  for (const ConsumerEntry& c : config.consumers) {
    context.consumers.insert(c.consumer.id);
    for (const PluginEntry& e : c.plugins)
      context.shared_plugins.insert(e.name);
  }
  for (const PluginEntry& e : config.plugins)
    context.shared_plugins.insert(e.name);
  return context;
}

void read_routes(JsonObject& root, GatewayConfig& config) {
  RouteContext context = route_context(config);
  NameIndex names("route");
  std::vector<JsonObject> routes = root.objects("routes");
  // Thousands of routes: grown once, not one doubling at a time.
  config.routes.reserve(routes.size());
  names.reserve(routes.size());
  context.router->reserve(routes.size());
  for (JsonObject& r : routes) {
    config.routes.push_back(read_route(r, context));
    names.add(config.routes.back().name, r.field_path("name"), r.problems());
  }
  config.router = std::move(context.router);
}

bool is_authentication(std::string_view plugin) {
  return plugin == "key-auth" || plugin == "jwt-auth";
}

PluginEntry read_plugin(JsonObject& p, PluginScope scope, const std::string& owner) {
  PluginEntry out;
  out.path = p.path();
  out.config_path = p.field_path("config");
  out.scope = scope;
  out.owner = owner;
  out.name = read_name(p, "name");
  out.enabled = p.boolean("enabled", true);
  out.config = &empty_object();
  if (const picojson::value* config = p.get("config")) {
    if (config->is<picojson::object>()) {
      out.config = config;
    } else {
      p.problem("config", fmt::format("expected an object, found {}", json_type_name(*config)));
    }
  }
  if (scope == PluginScope::route && p.has("consumer")) {
    out.scope = PluginScope::consumer_route;
    out.consumer = read_name(p, "consumer");
  }
  const bool per_consumer =
      out.scope == PluginScope::consumer || out.scope == PluginScope::consumer_route;
  if (per_consumer && is_authentication(out.name))
    p.problem("name", fmt::format("'{}' cannot be attached to a consumer: the consumer is known "
                                  "only once authentication has run",
                                  out.name));
  p.finish();
  return out;
}

}  // namespace

const char* plugin_scope_name(PluginScope scope) noexcept {
  switch (scope) {
    case PluginScope::global:
      return "global";
    case PluginScope::service:
      return "service";
    case PluginScope::route:
      return "route";
    case PluginScope::consumer:
      return "consumer";
    case PluginScope::consumer_route:
      return "consumer_route";
  }
  return "unknown";
}

bool is_ip_address(std::string_view text) {
  return parse_ip_address(text).has_value();
}

std::string read_name(JsonObject& object, std::string_view key) {
  std::string name = object.string(key, {}, true);
  if (object.has(key) && object.get(key)->is<std::string>() && name.empty())
    object.problem(key, "must not be empty");
  return name;
}

std::string duration_text(Duration duration) {
  const auto ns = duration.count();
  if (ns % 1'000'000'000 == 0) return fmt::format("{}s", ns / 1'000'000'000);
  if (ns % 1'000'000 == 0) return fmt::format("{}ms", ns / 1'000'000);
  return fmt::format("{}ns", ns);
}

std::vector<PluginEntry> read_plugins(JsonObject& owner, PluginScope scope,
                                      const std::string& owner_name) {
  std::vector<PluginEntry> out;
  for (JsonObject& p : owner.objects("plugins"))
    out.push_back(read_plugin(p, scope, owner_name));
  return out;
}

void check_duplicate_plugins(const std::vector<PluginEntry>& entries, ConfigProblems& problems) {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (entries[i].name.empty() || entries[i].name != entries[j].name ||
          entries[i].consumer != entries[j].consumer)
        continue;
      problems.add(
          json_path_join(entries[i].path, "name"),
          fmt::format("'{}' is already attached here at {}", entries[i].name, entries[j].path));
      break;
    }
  }
}

void report_primitive_error(JsonObject& object, const Error& error, std::string_view prefix,
                            std::initializer_list<std::string_view> fields) {
  std::string_view message = error.message;
  if (message.starts_with(prefix)) {
    message.remove_prefix(prefix.size());
    for (std::string_view field : fields) {
      if (message.starts_with(field) && message.size() > field.size() &&
          message[field.size()] == ' ') {
        object.problem(field, std::string(message.substr(field.size() + 1)));
        return;
      }
    }
  }
  object.problem(error.message);
}

GatewayConfig read_gateway_config(const picojson::value& document, ConfigProblems& problems) {
  GatewayConfig config;
  JsonObject root(document, "", problems);
  if (!root.valid()) return config;
  (void)root.optional_string("$schema");  // lets editors find docs/config.schema.json
  PortClaims ports;
  config.listeners = read_listeners(root, ports);
  config.admin = read_admin(root, ports);
  config.access_log = read_access_log(root);
  config.server = read_server(root);
  config.plans = read_plans(root);
  config.consumers = read_consumers(root, config.plans);
  config.services = read_services(root);
  config.plugins = read_plugins(root, PluginScope::global, {});
  check_duplicate_plugins(config.plugins, problems);
  read_routes(root, config);
  root.finish();
  return config;
}

}  // namespace portico::detail

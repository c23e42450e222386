// "services": upstream clusters read into proxy::ClusterOptions, with the
// proxy's own rules checked here so that they are reported with their JSON
// paths rather than by Server::create.
#include <fmt/format.h>

#include <array>
#include <string_view>
#include <utility>

#include "gateway_config_parts.hpp"

namespace portico::detail {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr Duration kDay = hours(24);
constexpr std::int64_t kMaxU32 = 0xffffffff;

constexpr std::array<BalancerPolicy, 6> kPolicies{
    BalancerPolicy::round_robin,   BalancerPolicy::weighted_round_robin,
    BalancerPolicy::least_request, BalancerPolicy::power_of_two_choices,
    BalancerPolicy::peak_ewma,     BalancerPolicy::maglev,
};

bool is_host_text(std::string_view address) {
  return !address.empty() && address.find_first_of(" \t\r\n/?#@") == std::string_view::npos;
}

proxy::Endpoint read_endpoint(JsonObject& e) {
  proxy::Endpoint out;
  const bool present = e.has("address");
  out.address = e.string("address", {}, true);
  out.port = static_cast<std::uint16_t>(e.integer("port", 0, 1, 65535, true));
  out.weight = static_cast<std::uint32_t>(e.integer("weight", 1, 1, kMaxEndpointWeight));
  if (present && e.get("address")->is<std::string>() && !is_host_text(out.address))
    e.problem("address", fmt::format("'{}' is neither an address nor a host name", out.address));
  e.finish();
  return out;
}

// "1".."65535"; 0 otherwise.
std::uint16_t parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return 0;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535 ? static_cast<std::uint16_t>(value) : 0;
}

// Splits "host:port" or "[v6]:port" (the port optional); false when
// brackets are unbalanced or something follows ']' but a port.
bool split_authority(std::string_view authority, std::string_view& host,
                     std::optional<std::string_view>& port) {
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (after.empty()) return true;
    if (after[0] != ':') return false;
    port = after.substr(1);
    return true;
  }
  const std::size_t colon = authority.rfind(':');
  host = authority.substr(0, colon);
  if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  return true;
}

// "http://host", "http://host:port", "http://[v6]:port", with an optional
// trailing '/'.
std::optional<proxy::Endpoint> parse_upstream_url(std::string_view url, std::string& why) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    why = url.starts_with("https://") ? "https upstreams are not supported; use http://"
                                      : "expected \"http://host:port\"";
    return std::nullopt;
  }
  std::string_view authority = url.substr(kScheme.size());
  if (authority.ends_with('/')) authority.remove_suffix(1);
  std::string_view host;
  std::optional<std::string_view> port;
  if (!split_authority(authority, host, port) || !is_host_text(host)) {
    why = host.empty() ? "the URL has no host"
                       : "expected \"http://host:port\" (no path, query or user name)";
    return std::nullopt;
  }
  proxy::Endpoint out;
  out.address = std::string(host);
  out.port = port ? parse_port(*port) : 80;
  if (out.port == 0) {
    why = fmt::format("'{}' is not a port (1 to 65535)", *port);
    return std::nullopt;
  }
  return out;
}

void read_urls(JsonObject& s, std::vector<proxy::Endpoint>& endpoints) {
  const std::string path = s.field_path("urls");
  const std::vector<std::string> urls = s.strings("urls");
  for (std::size_t i = 0; i < urls.size(); ++i) {
    std::string why;
    auto endpoint = parse_upstream_url(urls[i], why);
    if (endpoint) {
      endpoints.push_back(std::move(*endpoint));
    } else {
      s.problems().add(json_path_index(path, i), fmt::format("'{}': {}", urls[i], why));
    }
  }
}

void read_endpoints(JsonObject& s, proxy::ClusterOptions& c) {
  const std::size_t problems_before = s.problems().size();
  for (JsonObject& e : s.objects("endpoints"))
    c.endpoints.push_back(read_endpoint(e));
  read_urls(s, c.endpoints);
  // Bad entries were reported already; only say so when none was written.
  if (c.endpoints.empty() && s.problems().size() == problems_before)
    s.problem("needs at least one endpoint (\"endpoints\" or \"urls\")");
}

BalancerPolicy read_policy(JsonObject& s) {
  const std::string name = s.choice("policy",
                                    {"round_robin", "weighted_round_robin", "least_request",
                                     "power_of_two_choices", "peak_ewma", "maglev"},
                                    "round_robin");
  for (BalancerPolicy p : kPolicies)
    if (name == balancer_policy_name(p)) return p;
  return BalancerPolicy::round_robin;
}

void read_timeouts(JsonObject& s, proxy::ClusterOptions& c) {
  auto t = s.object("timeouts");
  if (!t) return;
  c.connect_timeout = t->duration("connect", c.connect_timeout, milliseconds(1), hours(1));
  c.response_timeout = t->duration("response", c.response_timeout, milliseconds(1), kDay);
  c.idle_between_bytes_timeout =
      t->duration("idle_between_bytes", c.idle_between_bytes_timeout, milliseconds(1), kDay);
  t->finish();
}

void read_pool(JsonObject& s, proxy::ClusterOptions& c) {
  auto p = s.object("pool");
  if (!p) return;
  c.max_idle_per_endpoint = static_cast<std::size_t>(p->integer("max_idle", 1024, 0, 1'000'000));
  c.idle_timeout = p->duration("idle_timeout", c.idle_timeout, milliseconds(1), kDay);
  c.max_requests_per_connection =
      static_cast<std::uint32_t>(p->integer("max_requests", 0, 0, kMaxU32));
  p->finish();
}

std::vector<int> read_statuses(JsonObject& r, std::string_view key) {
  std::vector<int> out;
  const picojson::value* v = r.get(key);
  if (v == nullptr) return out;
  if (!v->is<picojson::array>()) {
    r.problem(key, fmt::format("expected an array of HTTP statuses, found {}", json_type_name(*v)));
    return out;
  }
  const auto& items = v->get<picojson::array>();
  for (std::size_t i = 0; i < items.size(); ++i) {
    const bool status = items[i].is<double>() && items[i].get<double>() >= 100 &&
                        items[i].get<double>() <= 599 &&
                        items[i].get<double>() == static_cast<int>(items[i].get<double>());
    if (status) {
      out.push_back(static_cast<int>(items[i].get<double>()));
    } else {
      r.problems().add(json_path_index(r.field_path(key), i),
                       fmt::format("expected an HTTP status from 100 to 599, found {}",
                                   items[i].is<double>() ? items[i].serialize()
                                                         : std::string(json_type_name(items[i]))));
    }
  }
  return out;
}

void read_retries(JsonObject& s, proxy::RetryOptions& out) {
  auto r = s.object("retries");
  if (!r) return;
  out.max_retries = static_cast<std::uint32_t>(r->integer("max_retries", 1, 0, 10));
  out.retry_on_statuses = read_statuses(*r, "retry_on_statuses");
  out.backoff_base = r->duration("backoff_base", out.backoff_base, Duration::zero(), hours(1));
  out.backoff_max = r->duration("backoff_max", out.backoff_max, Duration::zero(), hours(1));
  out.budget_percent = r->number("budget_percent", out.budget_percent, 0, 100);
  out.budget_min_concurrent =
      static_cast<std::uint32_t>(r->integer("budget_min_concurrent", 3, 0, 1'000'000));
  out.replay_buffer_bytes =
      static_cast<std::size_t>(r->integer("replay_buffer_bytes", 64 * 1024, 0, 1 << 30));
  if (out.backoff_max < out.backoff_base)
    r->problem("backoff_max",
               fmt::format("must be at least backoff_base ({})", duration_text(out.backoff_base)));
  r->finish();
}

void read_health_check(JsonObject& s, proxy::HealthCheckOptions& out) {
  auto h = s.object("health_check");
  if (!h) return;
  out.path = h->string("path", {}, true);
  if (h->has("path") &&
      (!out.path.starts_with('/') || out.path.find_first_of(" \t\r\n") != std::string::npos))
    h->problem("path", "must be a path starting with '/', without spaces");
  out.host = h->string("host");
  if (out.host.find_first_of(" \t\r\n") != std::string::npos)
    h->problem("host", "must not contain whitespace");
  out.interval = h->duration("interval", out.interval, milliseconds(1), hours(1));
  out.timeout = h->duration("timeout", out.timeout, milliseconds(1), hours(1));
  out.healthy_threshold = static_cast<std::uint32_t>(h->integer("healthy_threshold", 2, 1, 1000));
  out.unhealthy_threshold =
      static_cast<std::uint32_t>(h->integer("unhealthy_threshold", 3, 1, 1000));
  out.min_status = static_cast<int>(h->integer("min_status", 200, 100, 599));
  out.max_status = static_cast<int>(h->integer("max_status", 299, 100, 599));
  if (out.max_status < out.min_status)
    h->problem("max_status", fmt::format("must be at least min_status ({})", out.min_status));
  h->finish();
}

}  // namespace

BreakerConfig read_breaker_config(JsonObject& b) {
  BreakerConfig c;
  c.consecutive_failures =
      static_cast<std::uint32_t>(b.integer("consecutive_failures", 5, 0, kMaxU32));
  c.failure_ratio = b.number("failure_ratio", c.failure_ratio, 0, 1);
  c.window = b.duration("window", c.window, milliseconds(1), kDay);
  c.min_requests = static_cast<std::uint32_t>(b.integer("min_requests", 20, 1, kMaxU32));
  c.open_duration = b.duration("open_duration", c.open_duration, milliseconds(1), kDay);
  c.open_duration_multiplier =
      b.number("open_duration_multiplier", c.open_duration_multiplier, 1, 1000);
  c.max_open_duration = b.duration("max_open_duration", c.max_open_duration, milliseconds(1), kDay);
  c.backoff_reset_after =
      b.duration("backoff_reset_after", c.backoff_reset_after, Duration::zero(), kDay);
  c.half_open_max_probes =
      static_cast<std::uint32_t>(b.integer("half_open_max_probes", 1, 1, kMaxU32));
  c.half_open_successes_to_close =
      static_cast<std::uint32_t>(b.integer("half_open_successes_to_close", 1, 1, kMaxU32));
  c.max_in_flight = static_cast<std::uint32_t>(b.integer("max_in_flight", 0, 0, kMaxU32));
  c.max_pending = static_cast<std::uint32_t>(b.integer("max_pending", 0, 0, kMaxU32));
  if (c.max_open_duration < c.open_duration) {
    b.problem("max_open_duration",
              fmt::format("must be at least open_duration ({})", duration_text(c.open_duration)));
  } else if (auto created = CircuitBreaker::create(c); !created) {
    report_primitive_error(b, created.error(), "breaker config: ",
                           {"failure_ratio", "window", "min_requests", "open_duration",
                            "open_duration_multiplier", "max_open_duration", "backoff_reset_after",
                            "half_open_max_probes", "half_open_successes_to_close"});
  }
  b.finish();
  return c;
}

namespace {

std::optional<BreakerConfig> read_breaker(JsonObject& s) {
  auto b = s.object("breaker");
  if (!b) return std::nullopt;
  return read_breaker_config(*b);
}

void read_outlier(JsonObject& s, proxy::ClusterOptions& c) {
  auto o = s.object("outlier");
  if (!o) return;
  OutlierConfig& out = c.outlier;
  out.consecutive_failures =
      static_cast<std::uint32_t>(o->integer("consecutive_failures", 5, 0, kMaxU32));
  out.base_ejection_time =
      o->duration("base_ejection_time", out.base_ejection_time, milliseconds(1), kDay * 365);
  out.max_ejection_time =
      o->duration("max_ejection_time", out.max_ejection_time, milliseconds(1), kDay * 365);
  out.max_ejection_percent =
      static_cast<std::uint32_t>(o->integer("max_ejection_percent", 10, 0, 100));
  if (out.max_ejection_time < out.base_ejection_time) {
    o->problem("max_ejection_time", fmt::format("must be at least base_ejection_time ({})",
                                                duration_text(out.base_ejection_time)));
  } else {
    BalancerConfig probe;
    probe.policy = c.policy;
    probe.outlier = out;
    probe.endpoints.push_back({"endpoint", 1});
    if (auto created = Balancer::create(probe); !created)
      report_primitive_error(*o, created.error(), "OutlierConfig.",
                             {"base_ejection_time", "max_ejection_time", "max_ejection_percent"});
  }
  o->finish();
}

}  // namespace

ServiceConfig read_service(JsonObject& s) {
  ServiceConfig out;
  proxy::ClusterOptions& c = out.cluster;
  c.name = read_name(s, "name");
  // A service served in process by a handler the host registered
  // (GatewayOptions::handlers, checked when the gateway is assembled).
  out.handler = s.string("handler");
  if (s.has("handler") && out.handler.empty())
    s.problem("handler", "must name a handler the host program registered");
  if (!s.has("handler")) read_endpoints(s, c);
  c.policy = read_policy(s);
  read_timeouts(s, c);
  read_pool(s, c);
  read_retries(s, c.retry);
  read_health_check(s, c.health_check);
  c.breaker = read_breaker(s);
  read_outlier(s, c);
  c.dns_refresh = s.duration("dns_refresh", c.dns_refresh, seconds(1), kDay);
  out.plugins = read_plugins(s, PluginScope::service, c.name);
  s.finish();
  return out;
}

}  // namespace portico::detail

#include "assemble.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <utility>

#include "../filters/error_response.hpp"
#include "portico/filters/request_state.hpp"

namespace portico::detail {

namespace {

// A plugin that consumers (or a consumer on one route) configure for
// themselves: each phase runs the instance of the request's consumer, or
// the route's own when the consumer has none. The consumer is known once
// an authentication plugin ran, so this matters for plugins that run after
// it (rate limits, transformers); before, the route's instance runs.
class ConsumerDispatch final : public proxy::Filter {
 public:
  using Overrides = std::vector<std::pair<std::string, std::shared_ptr<proxy::Filter>>>;
  ConsumerDispatch(std::string_view name, std::shared_ptr<proxy::Filter> base, Overrides overrides)
      : name_(name), base_(std::move(base)), overrides_(std::move(overrides)) {}

  std::string_view name() const noexcept override { return name_; }
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    proxy::Filter* f = pick(ctx);
    return f ? f->on_request_headers(ctx) : proxy::FilterStatus::next;
  }
  proxy::FilterStatus on_request_body(proxy::RequestContext& ctx, std::string_view body) override {
    proxy::Filter* f = pick(ctx);
    return f ? f->on_request_body(ctx, body) : proxy::FilterStatus::next;
  }
  proxy::FilterStatus on_response_headers(proxy::RequestContext& ctx) override {
    proxy::Filter* f = pick(ctx);
    return f ? f->on_response_headers(ctx) : proxy::FilterStatus::next;
  }
  proxy::FilterStatus on_response_body(proxy::RequestContext& ctx, std::string_view body) override {
    proxy::Filter* f = pick(ctx);
    return f ? f->on_response_body(ctx, body) : proxy::FilterStatus::next;
  }
  void on_early_error(proxy::RequestContext& ctx) override {
    if (proxy::Filter* f = pick(ctx)) f->on_early_error(ctx);
  }
  void on_log(const proxy::RequestContext& ctx) override {
    if (proxy::Filter* f = pick(ctx)) f->on_log(ctx);
  }

 private:
  proxy::Filter* pick(const proxy::RequestContext& ctx) const noexcept {
    const filters::RequestState* state = filters::find_request_state(ctx);
    if (state != nullptr && !state->consumer.empty()) {
      for (const auto& [consumer, filter] : overrides_)
        if (consumer == state->consumer) return filter.get();  // null: disabled for it
    }
    return base_.get();
  }

  std::string name_;
  std::shared_ptr<proxy::Filter> base_;
  Overrides overrides_;
};

// strip_path and rewrite: the path the upstream sees.
class UpstreamPath final : public proxy::Filter {
 public:
  UpstreamPath(std::string strip_prefix, std::vector<RewritePart> rewrite)
      : strip_prefix_(std::move(strip_prefix)), rewrite_(std::move(rewrite)) {}

  std::string_view name() const noexcept override { return "upstream-path"; }
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    char buf[4096];
    std::size_t n = 0;
    auto put = [&](std::string_view s) {
      const std::size_t take = std::min(s.size(), sizeof buf - n);
      std::copy_n(s.data(), take, buf + n);
      n += take;
    };
    if (!rewrite_.empty()) {
      for (const RewritePart& part : rewrite_)
        put(part.is_capture ? ctx.param(part.text).value_or("") : std::string_view(part.text));
    } else {
      std::string_view path = ctx.path();
      if (path.starts_with(strip_prefix_)) path.remove_prefix(strip_prefix_.size());
      if (path.empty() || path.front() != '/') put("/");
      put(path);
    }
    if (!ctx.query().empty()) {
      put("?");
      put(ctx.query());
    }
    if (n == sizeof buf) {
      respond_error(ctx, 414, "the rewritten path is too long");
      return proxy::FilterStatus::respond;
    }
    ctx.set_upstream_path(std::string_view(buf, n));
    return proxy::FilterStatus::next;
  }

 private:
  std::string strip_prefix_;
  std::vector<RewritePart> rewrite_;
};

struct BuiltPlugins {
  std::map<const PluginEntry*, std::shared_ptr<proxy::Filter>> instances;
};

std::string known_plugin_names(const PluginEnv& env) {
  std::string out;
  for (const PluginFactory& f : plugin_factories()) {
    if (!out.empty()) out += ", ";
    out += f.name;
  }
  if (env.custom_plugins != nullptr)
    for (const gateway::CustomPlugin& p : *env.custom_plugins)
      out += ", " + p.name;
  return out;
}

// A plugin entry naming one of the host's plugins: built from its config
// as JSON text, the host's errors reported at the config's path.
std::shared_ptr<proxy::Filter> build_custom(const gateway::CustomPlugin& plugin,
                                            const PluginEntry& e, ConfigProblems& problems) {
  if (!e.config->is<picojson::object>()) {
    problems.add(e.config_path, "must be an object");
    return nullptr;
  }
  auto built = plugin.build(e.config->serialize());
  if (!built) {
    problems.add(e.config_path, built.error().message);
    return nullptr;
  }
  return std::move(*built);
}

void build_entry(const PluginEntry& e, const PluginEnv& env, BuiltPlugins& built,
                 ConfigProblems& problems) {
  const PluginFactory* factory = find_plugin(e.name);
  const gateway::CustomPlugin* custom = find_custom_plugin(env, e.name);
  if (factory == nullptr && custom == nullptr) {
    problems.add(e.path + ".name",
                 "unknown plugin '" + e.name + "' (known: " + known_plugin_names(env) + ")");
    return;
  }
  if (!e.enabled || e.config == nullptr) return;
  std::shared_ptr<proxy::Filter> filter;
  if (factory != nullptr) {
    JsonObject config(*e.config, e.config_path, problems);
    if (!config.valid()) return;
    filter = factory->build(config, env);
  } else {
    filter = build_custom(*custom, e, problems);
  }
  if (!filter) return;
  if (env.post_to_control) {
    // The last reference may go on a worker thread (a retired route table):
    // the filter itself is released on the control thread.
    auto* held = new std::shared_ptr<proxy::Filter>(std::move(filter));
    filter = std::shared_ptr<proxy::Filter>(
        held->get(),
        [post = env.post_to_control, held](proxy::Filter*) { post([held] { delete held; }); });
  }
  built.instances[&e] = std::move(filter);
}

// Every entry applying to one route, by plugin name.
struct Applicable {
  const PluginEntry* base = nullptr;          // the most specific of global, service, route
  std::vector<const PluginEntry*> consumers;  // consumer_route entries first, then consumer
};

int base_rank(PluginScope s) {
  switch (s) {
    case PluginScope::route:
      return 3;
    case PluginScope::service:
      return 2;
    default:
      return 1;
  }
}

// What every route shares: the consumers' plugin entries, gathered once
// (a route would otherwise walk every consumer).
struct SharedEntries {
  std::vector<const PluginEntry*> consumers;
};

SharedEntries shared_entries(const GatewayConfig& config) {
  SharedEntries out;
  for (const ConsumerEntry& c : config.consumers)
    for (const PluginEntry& e : c.plugins)
      out.consumers.push_back(&e);
  return out;
}

std::map<std::string, Applicable> applicable_plugins(const GatewayConfig& config,
                                                     const SharedEntries& shared,
                                                     const RouteConfig& route) {
  std::map<std::string, Applicable> out;
  auto offer_base = [&](const PluginEntry& e) {
    Applicable& a = out[e.name];
    if (a.base == nullptr || base_rank(e.scope) >= base_rank(a.base->scope)) a.base = &e;
  };
  for (const PluginEntry& e : config.plugins)
    offer_base(e);
  if (!route.services.empty()) {
    for (const ServiceConfig& s : config.services) {
      if (s.cluster.name != route.services.front().name) continue;
      for (const PluginEntry& e : s.plugins)
        offer_base(e);
    }
  }
  for (const PluginEntry& e : route.plugins) {
    if (e.scope == PluginScope::consumer_route) {
      out[e.name].consumers.push_back(&e);
    } else {
      offer_base(e);
    }
  }
  for (const PluginEntry* e : shared.consumers)
    out[e->name].consumers.push_back(e);
  return out;
}

int priority_of(const PluginEnv& env, std::string_view name) {
  if (const PluginFactory* f = find_plugin(name)) return f->priority;
  if (const gateway::CustomPlugin* p = find_custom_plugin(env, name)) return p->priority;
  return 0;
}

// The chain's order: plugin_order first, as written; then by priority.
void order_chain(std::vector<std::string>& names, const std::vector<std::string>& plugin_order,
                 const PluginEnv& env) {
  auto rank = [&](const std::string& n) {
    auto it = std::find(plugin_order.begin(), plugin_order.end(), n);
    return it == plugin_order.end() ? plugin_order.size() : std::size_t(it - plugin_order.begin());
  };
  std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    const auto ra = rank(a), rb = rank(b);
    if (ra != rb) return ra < rb;
    return priority_of(env, a) > priority_of(env, b);
  });
}

std::shared_ptr<proxy::Filter> instance_of(const PluginEntry* e, const BuiltPlugins& built) {
  if (e == nullptr || !e->enabled) return nullptr;
  auto it = built.instances.find(e);
  return it == built.instances.end() ? nullptr : it->second;
}

std::shared_ptr<proxy::Filter> route_filter(const std::string& name, const Applicable& a,
                                            const BuiltPlugins& built) {
  auto base = instance_of(a.base, built);
  if (a.consumers.empty()) return base;
  ConsumerDispatch::Overrides overrides;
  for (const PluginEntry* e : a.consumers) {
    const std::string& id = e->scope == PluginScope::consumer_route ? e->consumer : e->owner;
    const bool seen = std::any_of(overrides.begin(), overrides.end(),
                                  [&](const auto& o) { return o.first == id; });
    if (!seen) overrides.emplace_back(id, instance_of(e, built));
  }
  return std::make_shared<ConsumerDispatch>(name, std::move(base), std::move(overrides));
}

std::vector<std::shared_ptr<proxy::Filter>> route_chain(const GatewayConfig& config,
                                                        const SharedEntries& shared,
                                                        const RouteConfig& route,
                                                        const BuiltPlugins& built,
                                                        const PluginEnv& env) {
  auto applicable = applicable_plugins(config, shared, route);
  std::vector<std::string> names;
  for (const auto& [name, a] : applicable)
    names.push_back(name);
  order_chain(names, route.plugin_order, env);
  std::vector<std::shared_ptr<proxy::Filter>> chain;
  for (const std::string& name : names)
    if (auto f = route_filter(name, applicable[name], built)) chain.push_back(std::move(f));
  return chain;
}

// The host's handler that serves the service `name`, or null when the
// service has endpoints.
const gateway::NamedHandler* handler_of(const GatewayConfig& config, const PluginEnv& env,
                                        std::string_view service) {
  for (const ServiceConfig& s : config.services) {
    if (s.cluster.name != service || s.handler.empty() || env.handlers == nullptr) continue;
    for (const gateway::NamedHandler& h : *env.handlers)
      if (h.name == s.handler) return &h;
  }
  return nullptr;
}

// Every service naming a handler names a registered one, and a route that
// sends to a handler's service sends nowhere else (a handler is no cluster
// to weigh against others).
void check_handlers(const GatewayConfig& config, const PluginEnv& env, ConfigProblems& problems) {
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& s = config.services[i];
    if (!s.handler.empty() && handler_of(config, env, s.cluster.name) == nullptr)
      problems.add("services[" + std::to_string(i) + "].handler",
                   "no handler named '" + s.handler + "' was registered by the host program");
  }
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    const RouteConfig& r = config.routes[i];
    if (r.services.size() < 2) continue;
    for (const WeightedTarget& t : r.services)
      if (handler_of(config, env, t.name) != nullptr)
        problems.add("routes[" + std::to_string(i) + "].services",
                     "'" + t.name + "' is served by a handler and cannot be weighted with others");
  }
}

void add_routes(const RouteConfig& route, const std::vector<std::shared_ptr<proxy::Filter>>& chain,
                const gateway::NamedHandler* handler, AssembledConfig& out) {
  std::vector<std::string> hosts = route.hosts;
  if (hosts.empty()) hosts.emplace_back();
  for (const RoutePath& p : route.paths) {
    std::vector<std::shared_ptr<proxy::Filter>> filters;
    if (!route.rewrite_parts.empty() || route.strip_path)
      filters.push_back(std::make_shared<UpstreamPath>(route.strip_path ? p.strip_prefix : "",
                                                       route.rewrite_parts));
    filters.insert(filters.end(), chain.begin(), chain.end());
    for (const std::string& host : hosts) {
      proxy::RouteOptions r;
      r.name = route.name;
      r.path = p.pattern;
      r.host = host;
      r.methods = route.methods;
      r.predicates = route.predicates;
      r.max_body_bytes = route.max_body_bytes;
      if (handler != nullptr) {
        r.target = proxy::Handler(handler->handler);
      } else if (route.services.size() == 1) {
        r.target = route.services.front().name;
      } else {
        r.target = route.services.front().name;
        r.weighted_clusters = route.services;
      }
      r.filters = filters;
      out.routes.push_back(std::move(r));
    }
  }
}

}  // namespace

void for_each_plugin_entry(const GatewayConfig& config,
                           const std::function<void(const PluginEntry&)>& visit) {
  for (const PluginEntry& e : config.plugins)
    visit(e);
  for (const ServiceConfig& s : config.services)
    for (const PluginEntry& e : s.plugins)
      visit(e);
  for (const RouteConfig& r : config.routes)
    for (const PluginEntry& e : r.plugins)
      visit(e);
  for (const ConsumerEntry& c : config.consumers)
    for (const PluginEntry& e : c.plugins)
      visit(e);
}

void check_plugins(const GatewayConfig& config, ConfigProblems& problems, const PluginEnv& host) {
  PluginEnv env;  // no control loop: nothing starts
  env.custom_plugins = host.custom_plugins;
  env.handlers = host.handlers;
  auto consumers = filters::Consumers::create({}, {});
  if (consumers) env.consumers = *consumers;
  BuiltPlugins built;
  for_each_plugin_entry(config, [&](const PluginEntry& e) {
    if (e.config != nullptr) build_entry(e, env, built, problems);
  });
}

AssembledConfig assemble_gateway(const GatewayConfig& config, PluginEnv env,
                                 ConfigProblems& problems) {
  AssembledConfig out;
  std::vector<filters::ConsumerConfig> consumers;
  for (const ConsumerEntry& c : config.consumers)
    consumers.push_back(c.consumer);
  auto directory = filters::Consumers::create(std::move(consumers), config.plans);
  if (!directory) {
    problems.add("consumers", directory.error().message);
    return out;
  }
  out.consumers = *directory;
  env.consumers = out.consumers;
  env.jwks_started = [&out](std::string_view source, std::shared_ptr<JwksSource> jwks) {
    out.jwks_sources.push_back({std::string(source), std::move(jwks)});
  };

  BuiltPlugins built;
  for_each_plugin_entry(config,
                        [&](const PluginEntry& e) { build_entry(e, env, built, problems); });
  check_handlers(config, env, problems);
  if (!problems.empty()) return out;

  for (const ServiceConfig& s : config.services) {
    if (s.handler.empty()) out.clusters.push_back(s.cluster);
    out.service_names.push_back(s.cluster.name);
  }
  const SharedEntries shared = shared_entries(config);
  out.routes.reserve(config.routes.size());
  for (const RouteConfig& r : config.routes) {
    const gateway::NamedHandler* handler =
        r.services.size() == 1 ? handler_of(config, env, r.services.front().name) : nullptr;
    add_routes(r, route_chain(config, shared, r, built, env), handler, out);
    out.route_names.push_back(r.name);
  }
  // What a route with no service and no plugins of its own would run: the
  // global plugins, for the requests no route takes.
  out.unrouted_filters = route_chain(config, shared, RouteConfig{}, built, env);
  return out;
}

}  // namespace portico::detail

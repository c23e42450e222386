// Gateway: a configuration document in, listeners serving it out.
//
// Loading (parse, validate, build every policy) runs on the control thread,
// because policies may start background work on its loop (a JWKS refresh);
// so does compiling the proxy's routes (Workers::reload prepares every
// worker's table on its caller's thread). Only the swap runs on each
// worker's loop, between two requests, so none changes midway and none
// pauses while thousands of routes compile.
#include "portico/gateway.hpp"

#include <fstream>
#include <sstream>
#include <thread>

#include "../config/gateway_config.hpp"
#include "../filters/error_response.hpp"
#include "../filters/jwks_fetcher.hpp"
#include "admin.hpp"
#include "assemble.hpp"
#include "control_loop.hpp"
#include "observe.hpp"
#include "portico/metrics.hpp"
#include "portico/workers.hpp"

namespace portico::gateway {

using detail::ConfigProblems;

namespace {

// One loaded configuration and everything built from it.
struct Generation {
  picojson::value document;
  detail::GatewayConfig config;
  detail::AssembledConfig assembled;
  std::shared_ptr<proxy::Filter> observe;  // metrics and access log, first of every chain
  std::uint64_t id = 0;
};

Error problems_error(const ConfigProblems& problems) {
  std::string text = problems.to_string();
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return make_error(ErrorKind::invalid_argument, std::move(text));
}

unsigned worker_count(const detail::ListenerConfig& l) {
  return l.workers != 0 ? l.workers : std::max(1u, std::thread::hardware_concurrency());
}

unsigned total_workers(const detail::GatewayConfig& c) {
  unsigned n = 0;
  for (const auto& l : c.listeners)
    n += worker_count(l);
  return std::max(1u, n);
}

// The host's plugins and handlers, as the policies' environment carries them.
detail::PluginEnv host_env(const GatewayOptions& options) {
  detail::PluginEnv env;
  env.custom_plugins = &options.plugins;
  env.handlers = &options.handlers;
  return env;
}

// Parses and validates the document into a generation not yet built.
std::shared_ptr<Generation> read(std::string_view text, const GatewayOptions& options,
                                 ConfigProblems& problems) {
  auto doc = detail::parse_json_document(text);
  if (!doc) {
    problems.add("", doc.error().message);
    return nullptr;
  }
  auto g = std::make_shared<Generation>();
  g->document = std::move(*doc);
  g->config = detail::read_gateway_config(g->document, problems);
  if (!problems.empty()) {
    // The plugins' own problems too, in one report: their entries are
    // well-formed on their own. Checked only (nothing is started).
    detail::check_plugins(g->config, problems, host_env(options));
    return nullptr;
  }
  return g;
}

// Builds the policies and the proxy's options of a generation read without
// problems; false (with problems) when a policy refuses its config.
bool build(Generation& g, detail::PluginEnv env, ConfigProblems& problems) {
  env.workers = total_workers(g.config);
  g.assembled = detail::assemble_gateway(g.config, std::move(env), problems);
  return problems.empty();
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return make_error(ErrorKind::not_found, path + ": cannot be read");
  return text.str();
}

}  // namespace

std::vector<std::string> check_config(std::string_view document) {
  return check_config(document, GatewayOptions{});
}

std::vector<std::string> check_config(std::string_view document, const GatewayOptions& options) {
  ConfigProblems problems;
  if (auto g = read(document, options, problems)) build(*g, host_env(options), problems);
  std::vector<std::string> out;
  for (const auto& p : problems.all())
    out.push_back((p.path.empty() ? std::string("(document)") : p.path) + ": " + p.message);
  return out;
}

namespace {

// Secrets in a configuration document, replaced by /config: API keys, JWK
// private and symmetric members, passwords.
bool is_secret_field(const std::string& name) {
  static const char* const kSecret[] = {"api_keys", "k",      "d",      "p",      "q",
                                        "dp",       "dq",     "qi",     "secret", "password",
                                        "token",    "apikey", "api_key"};
  for (const char* s : kSecret)
    if (name == s) return true;
  return false;
}

// A URL's query may carry a key (`jwks_url: ".../jwks?api_key=..."`): URL
// fields are shown as the error messages and /status show them.
bool is_url_field(const std::string& name) {
  return name.size() >= 4 && name.compare(name.size() - 4, 4, "_url") == 0;
}

picojson::value redacted(const picojson::value& v) {
  if (v.is<picojson::array>()) {
    picojson::array out;
    for (const auto& item : v.get<picojson::array>())
      out.push_back(redacted(item));
    return picojson::value(out);
  }
  if (!v.is<picojson::object>()) return v;
  picojson::object out;
  for (const auto& [name, field] : v.get<picojson::object>()) {
    if (is_secret_field(name))
      out[name] = picojson::value("<redacted>");
    else if (is_url_field(name) && field.is<std::string>())
      out[name] = picojson::value(detail::url_for_display(field.get<std::string>()));
    else
      out[name] = redacted(field);
  }
  return picojson::value(out);
}

std::string routes_json(const detail::GatewayConfig& c) {
  picojson::array routes;
  for (const auto& r : c.routes) {
    picojson::object o;
    o["name"] = picojson::value(r.name);
    picojson::array paths, services;
    for (const auto& p : r.paths)
      paths.push_back(picojson::value(p.pattern));
    for (const auto& t : r.services) {
      picojson::object s;
      s["name"] = picojson::value(t.name);
      s["weight"] = picojson::value(static_cast<double>(t.weight));
      services.push_back(picojson::value(s));
    }
    o["paths"] = picojson::value(paths);
    o["methods"] = picojson::value(r.methods.to_string());
    o["services"] = picojson::value(services);
    picojson::array plugins;
    for (const auto& e : r.plugins)
      plugins.push_back(picojson::value(e.name));
    o["plugins"] = picojson::value(plugins);
    routes.push_back(picojson::value(o));
  }
  return picojson::value(routes).serialize() + "\n";
}

}  // namespace

class GatewayImpl : public detail::AdminBackend {
 public:
  GatewayOptions options;
  detail::ControlLoop control;
  std::shared_ptr<Generation> current;
  std::vector<std::unique_ptr<proxy::Workers>> listeners;
  std::mutex listeners_mutex;  // the admin thread reads them while stop() clears them
  std::uint64_t next_generation = 1;
  std::atomic<std::uint64_t> generation{0};
  std::atomic<std::int64_t> drain_timeout_ns{0};
  bool stopped = false;
  std::mutex stop_mutex;
  std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();
  unsigned total_workers = 1;

  // Observability: one registry for the gateway's life, so a reload keeps
  // counting; the access log is opened once (a restart changes it).
  std::unique_ptr<metrics::Registry> registry;
  detail::GatewayMetrics gateway_metrics;
  std::shared_ptr<detail::AccessLog> access_log;
  std::unique_ptr<proxy::Server> admin;
  uv_timer_t log_timer{};
  bool log_timer_open = false;

  detail::PluginEnv env() {
    detail::PluginEnv e = host_env(options);
    e.control_loop = control.loop();
    e.post_to_control = [this](std::function<void()> task) { control.post(std::move(task)); };
    if (registry)
      e.rejection_counter = [this](std::string_view scope) {
        return gateway_metrics.rate_limit_counter(scope);
      };
    return e;
  }

  proxy::ServerOptions server_options(Generation& g, std::size_t listener) const;
  Status start_observability(const detail::AccessLogConfig& log);
  Status start_admin();
  Status start_listeners();
  std::vector<detail::JwksReport> jwks_reports() const;
  void collect();
  void flush_stale_log();
  Result<ReloadResult> reload_on_control(std::string_view text, ConfigProblems& problems);
  void close_on_control();

  // detail::AdminBackend, on the control thread
  std::string metrics_text() override { return registry->render(); }
  std::string status_json() override;
  std::string config_json() override;
  std::string routes_json() override { return gateway::routes_json(current->config); }
  detail::AdminReload reload(std::string_view body) override;
};

std::string GatewayImpl::status_json() {
  detail::AdminStatus st;
  st.version = "0.1.0";
  st.uptime = std::chrono::steady_clock::now() - started_at;
  st.workers = total_workers;
  std::lock_guard<std::mutex> listeners_lock(listeners_mutex);
  for (const auto& l : listeners) {
    const proxy::ServerStats s = l->stats();
    st.connections_active += s.connections_active;
    st.connections_total += s.connections_accepted;
  }
  st.generation = generation.load();
  st.jwks = jwks_reports();
  return detail::format_status_json(st);
}

// How the serving configuration's JWKS URLs are faring. Control thread
// (where `current` changes).
std::vector<detail::JwksReport> GatewayImpl::jwks_reports() const {
  std::vector<detail::JwksReport> out;
  if (!current) return out;
  for (const detail::JwksSourceRef& ref : current->assembled.jwks_sources)
    out.push_back({ref.source, ref.jwks->status()});
  return out;
}

std::string GatewayImpl::config_json() {
  return redacted(current->document).serialize(true);
}

detail::AdminReload GatewayImpl::reload(std::string_view body) {
  detail::AdminReload out;
  ConfigProblems problems;
  std::string text(body);
  if (text.empty()) {
    if (options.config_path.empty()) {
      problems.add("", "the gateway was not started from a file: POST the document");
    } else if (auto file = read_file(options.config_path)) {
      text = std::move(*file);
    } else {
      problems.add("", file.error().message);
    }
  }
  if (problems.empty()) {
    auto r = reload_on_control(text, problems);
    if (r) {
      out.reloaded = true;
      out.generation = r->generation;
      return out;
    }
    if (problems.empty()) problems.add("", r.error().message);
  }
  out.generation = generation.load();
  out.problems = problems.all();
  return out;
}

// Metrics that live elsewhere, read at scrape time on the control thread.
void GatewayImpl::collect() {
  proxy::ServerStats sum;
  std::vector<proxy::EndpointStatus> endpoints;
  std::mutex m;
  std::lock_guard<std::mutex> listeners_lock(listeners_mutex);
  for (const auto& l : listeners) {
    const proxy::ServerStats s = l->stats();
    sum.connections_active += s.connections_active;
    sum.connections_accepted += s.connections_accepted;
    (void)l->run_on_each([&](unsigned, proxy::Server& server) {
      auto mine = server.endpoint_status();
      std::lock_guard<std::mutex> lock(m);
      endpoints.insert(endpoints.end(), mine.begin(), mine.end());
    });
  }
  gateway_metrics.set_connections(sum);
  gateway_metrics.set_endpoints(endpoints);
  gateway_metrics.set_jwks(jwks_reports());
}

// A worker's log buffer is its own thread's: each worker writes its stale
// lines out on its loop. The listeners' workers are numbered in order, as
// in server_options().
void GatewayImpl::flush_stale_log() {
  std::lock_guard<std::mutex> listeners_lock(listeners_mutex);
  unsigned first_index = 0;
  for (const auto& l : listeners) {
    (void)l->run_on_each(
        [&](unsigned index, proxy::Server&) { access_log->flush_stale(first_index + index); });
    first_index += l->size();
  }
}

Status GatewayImpl::start_observability(const detail::AccessLogConfig& log) {
  registry = std::make_unique<metrics::Registry>(total_workers);
  auto gm = detail::GatewayMetrics::register_in(*registry);
  if (!gm) return std::move(gm).error();
  gateway_metrics = std::move(*gm);
  registry->add_collector([this] { collect(); });
  if (log.enabled) {
    detail::AccessLogOptions o;
    o.path = log.path;
    auto opened = detail::AccessLog::open(o, total_workers);
    if (!opened) return make_error(opened.error().kind, "access_log: " + opened.error().message);
    access_log = std::move(*opened);
    // Lines of a quiet worker wait at most this long.
    uv_timer_init(control.loop(), &log_timer);
    log_timer.data = this;
    log_timer_open = true;
    uv_timer_start(
        &log_timer, [](uv_timer_t* t) { static_cast<GatewayImpl*>(t->data)->flush_stale_log(); },
        200, 200);
  }
  return {};
}

Status GatewayImpl::start_admin() {
  const auto& a = current->config.admin;
  if (!a.enabled) return {};
  detail::AdminOptions o;
  o.address = a.address;
  o.port = options.admin_port.value_or(a.port);
  // The backend is this object, which outlives the admin server.
  std::shared_ptr<detail::AdminBackend> backend(std::shared_ptr<void>(), this);
  auto server = proxy::Server::create(control.loop(), detail::admin_server_options(o, backend));
  if (!server) return make_error(server.error().kind, "admin: " + server.error().message);
  if (auto st = (*server)->start(); !st)
    return make_error(st.error().kind, "admin: " + st.error().message);
  admin = std::move(*server);
  return {};
}

void GatewayImpl::close_on_control() {
  // The policies go here, on their loop's thread (see PluginEnv).
  current.reset();
  if (admin) admin->stop(Duration::zero());
  if (log_timer_open) {
    log_timer_open = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&log_timer), nullptr);
  }
}

// The routes and their router go to the proxy, which keeps them: the last
// listener takes the generation's own (the others share the router and
// copy the routes), so that thousands of routes are neither copied nor
// compiled again, and the router is freed with the last worker table that
// uses it, off the loops.
proxy::ServerOptions GatewayImpl::server_options(Generation& g, std::size_t listener) const {
  const detail::GatewayConfig& c = g.config;
  const detail::ListenerConfig& l = c.listeners[listener];
  proxy::ServerOptions o;
  o.address = l.address;
  o.port = listener < options.port_overrides.size() ? options.port_overrides[listener] : l.port;
  o.backlog = c.server.backlog;
  o.limits = c.server.limits;
  o.header_timeout = c.server.header_timeout;
  o.idle_timeout = c.server.idle_timeout;
  o.request_timeout = c.server.request_timeout;
  o.trusted_proxies = c.server.trusted_proxies;
  o.clusters = g.assembled.clusters;
  const bool last = listener + 1 == c.listeners.size();
  o.routes = last ? std::move(g.assembled.routes) : g.assembled.routes;
  o.router = last ? std::move(g.config.router) : g.config.router;
  o.filters.push_back(g.observe);
  o.unrouted_filters = g.assembled.unrouted_filters;
  // The proxy's own errors in the policies' JSON shape.
  o.error_formatter = detail::format_proxy_error;
  unsigned first_index = 0;
  for (std::size_t i = 0; i < listener; ++i)
    first_index += worker_count(c.listeners[i]);
  o.worker_index = first_index;
  return o;
}

Status GatewayImpl::start_listeners() {
  for (std::size_t i = 0; i < current->config.listeners.size(); ++i) {
    const auto& l = current->config.listeners[i];
    auto w = proxy::Workers::start(server_options(*current, i), worker_count(l));
    if (!w)
      return make_error(w.error().kind,
                        "listeners[" + std::to_string(i) + "]: " + w.error().message);
    listeners.push_back(std::move(*w));
  }
  return {};
}

namespace {

bool same_listeners(const detail::GatewayConfig& a, const detail::GatewayConfig& b) {
  if (a.listeners.size() != b.listeners.size()) return false;
  for (std::size_t i = 0; i < a.listeners.size(); ++i) {
    const auto &x = a.listeners[i], &y = b.listeners[i];
    if (x.address != y.address || x.port != y.port || x.workers != y.workers) return false;
  }
  return a.admin.enabled == b.admin.enabled && a.admin.address == b.admin.address &&
         a.admin.port == b.admin.port;
}

}  // namespace

// The observe filter of a generation: every route's series exist before
// its first request. Those of `previous` (the generation it replaces, or
// null) are reused where a route did not change.
Status attach_observe(Generation& g, const detail::GatewayMetrics& metrics,
                      std::shared_ptr<detail::AccessLog> log, const Generation* previous) {
  detail::ObserveOptions o;
  for (const auto& r : g.config.routes) {
    detail::ObservedRoute route;
    route.name = r.name;
    for (const auto& s : r.services)
      route.services.push_back(s.name);
    o.routes.push_back(std::move(route));
  }
  o.access_log = std::move(log);
  if (previous != nullptr) o.previous = previous->observe;
  auto f = detail::make_observe(metrics, std::move(o));
  if (!f) return std::move(f).error();
  g.observe = std::move(*f);
  return {};
}

Result<ReloadResult> GatewayImpl::reload_on_control(std::string_view text,
                                                    ConfigProblems& problems) {
  auto next = read(text, options, problems);
  if (!next || !build(*next, env(), problems)) return problems_error(problems);
  if (!same_listeners(current->config, next->config)) {
    problems.add("listeners", "listeners and admin cannot change while running (restart)");
    return problems_error(problems);
  }
  if (auto st = attach_observe(*next, gateway_metrics, access_log, current.get()); !st)
    return st.error();
  next->id = next_generation++;
  std::lock_guard<std::mutex> listeners_lock(listeners_mutex);
  if (listeners.empty()) return make_error(ErrorKind::invalid_argument, "the gateway is stopped");
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    if (auto st = listeners[i]->reload(server_options(*next, i)); !st)
      return make_error(st.error().kind,
                        "listeners[" + std::to_string(i) + "]: " + st.error().message);
  }
  current = std::move(next);
  generation = current->id;
  drain_timeout_ns = current->config.server.drain_timeout.count();
  return ReloadResult{current->id};
}

// ---------------------------------------------------------------- Gateway

Gateway::Gateway(std::unique_ptr<GatewayImpl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() {
  stop(Duration::zero());
}

Result<std::unique_ptr<Gateway>> Gateway::start(std::string_view document, GatewayOptions options) {
  auto impl = std::make_unique<GatewayImpl>();
  impl->options = std::move(options);
  ConfigProblems problems;
  impl->current = read(document, impl->options, problems);
  if (!impl->current) {
    impl->control.stop([] {});
    return problems_error(problems);
  }
  // The metrics, which the policies count into, exist before the policies.
  impl->total_workers = total_workers(impl->current->config);
  Status st = impl->start_observability(impl->current->config.access_log);
  if (st && !build(*impl->current, impl->env(), problems)) st = problems_error(problems);
  if (st) st = attach_observe(*impl->current, impl->gateway_metrics, impl->access_log, nullptr);
  if (st) st = impl->start_listeners();
  if (st) st = impl->start_admin();
  if (!st) {
    for (auto& l : impl->listeners)
      l->stop(Duration::zero());
    impl->listeners.clear();
    GatewayImpl* raw = impl.get();
    impl->control.stop([raw] { raw->close_on_control(); });
    return std::move(st).error();
  }
  impl->drain_timeout_ns = impl->current->config.server.drain_timeout.count();
  impl->control.start();
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Result<ReloadResult> Gateway::reload(std::string_view document) {
  Result<ReloadResult> result = make_error(ErrorKind::invalid_argument, "the gateway is stopped");
  impl_->control.run([&] {
    ConfigProblems problems;
    result = impl_->reload_on_control(document, problems);
  });
  return result;
}

Result<ReloadResult> Gateway::reload_file() {
  if (impl_->options.config_path.empty())
    return make_error(ErrorKind::invalid_argument, "the gateway was not started from a file");
  auto text = read_file(impl_->options.config_path);
  if (!text) return std::move(text).error();
  return reload(*text);
}

std::uint16_t Gateway::port(std::size_t index) const noexcept {
  return index < impl_->listeners.size() ? impl_->listeners[index]->port() : 0;
}

std::uint64_t Gateway::generation() const noexcept {
  return impl_->generation.load();
}

Duration Gateway::drain_timeout() const noexcept {
  return Duration(impl_->drain_timeout_ns.load());
}

std::uint16_t Gateway::admin_port() const noexcept {
  return impl_->admin ? impl_->admin->port() : 0;
}

std::string Gateway::metrics_text() {
  std::string text;
  impl_->control.run([&] { text = impl_->registry->render(); });
  return text;
}

void Gateway::stop(Duration drain) {
  std::lock_guard<std::mutex> lock(impl_->stop_mutex);
  if (impl_->stopped) return;
  impl_->stopped = true;
  for (auto& l : impl_->listeners)
    l->stop(drain);
  // The workers' route tables release their policies now, while the control
  // loop still runs the releases they post.
  {
    std::lock_guard<std::mutex> listeners_lock(impl_->listeners_mutex);
    impl_->listeners.clear();
  }
  GatewayImpl* raw = impl_.get();
  impl_->control.stop([raw] { raw->close_on_control(); });
  impl_->admin.reset();
  if (impl_->access_log) impl_->access_log->flush();
}

}  // namespace portico::gateway

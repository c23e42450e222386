#include "admin.hpp"

#include <charconv>
#include <exception>
#include <utility>

#include "../filters/error_response.hpp"
#include "observe.hpp"
#include "portico/metrics.hpp"
#include "portico/router.hpp"

namespace portico::detail {

namespace {

// Answers a method the endpoint does not serve with 405 in the JSON error
// shape before the handler runs, so handlers see only their own methods.
class AllowOnly final : public proxy::Filter {
 public:
  explicit AllowOnly(MethodSet allowed) : allowed_(allowed), allow_(allowed.to_string()) {}
  std::string_view name() const noexcept override { return "admin-methods"; }
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    const auto m = parse_method(ctx.request().method);
    if (m && allowed_.contains(*m)) return proxy::FilterStatus::next;
    const http::Header allow[] = {{"Allow", allow_}};
    respond_error(ctx, 405, "method not allowed", allow);
    return proxy::FilterStatus::respond;
  }

 private:
  MethodSet allowed_;
  std::string allow_;
};

class NotFound final : public proxy::Filter {
 public:
  std::string_view name() const noexcept override { return "admin-not-found"; }
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    respond_error(ctx, 404, "no such admin endpoint");
    return proxy::FilterStatus::respond;
  }
};

constexpr std::string_view kJson = "application/json";

void send(proxy::Reply& reply, int status, std::string_view content_type, std::string_view body) {
  const http::Header headers[] = {{"Content-Type", content_type}, {"Cache-Control", "no-store"}};
  reply.send(status, headers, body);
}

// A backend that throws must not take the admin loop down with it.
template <class Produce>
proxy::Handler guarded(std::string_view content_type, Produce produce) {
  return [content_type, produce = std::move(produce)](const http::RequestHead& request,
                                                      std::string_view body, proxy::Reply& reply) {
    int status = 200;
    std::string text;
    try {
      text = produce(request, body, status);
    } catch (const std::exception& e) {
      std::string error = "{\"error\":\"";
      append_json_escaped(error, e.what());
      error += "\"}\n";
      send(reply, 500, kJson, error);
      return;
    }
    send(reply, status, content_type, text);
  };
}

proxy::RouteOptions admin_route(std::string path, MethodSet methods, proxy::Handler handler,
                                std::uint64_t max_body_bytes = 64 * 1024) {
  proxy::RouteOptions r;
  r.name = "admin:" + path;
  r.path = std::move(path);
  r.target = std::move(handler);
  // Every method reaches the route, so a wrong one gets the JSON 405.
  r.methods = MethodSet::any();
  r.max_body_bytes = max_body_bytes;
  r.filters.push_back(std::make_shared<AllowOnly>(methods));
  return r;
}

void append_number(std::string& out, std::uint64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, end);
}

void append_string(std::string& out, std::string_view text) {
  out += '"';
  append_json_escaped(out, text);
  out += '"';
}

void append_time(std::string& out, const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) {
    out += "null";
    return;
  }
  out += '"';
  append_rfc3339_ms(out, *t);
  out += '"';
}

// One JWKS URL: what it holds, how its fetches went, why the last failed.
void append_jwks(std::string& out, const JwksReport& r) {
  const JwksStatus& s = r.status;
  out += "{\"source\":";
  append_string(out, r.source);
  out += ",\"url\":";
  append_string(out, s.url);
  out += ",\"keys\":";
  append_number(out, s.keys);
  out += ",\"fetches\":{\"ok\":";
  append_number(out, s.fetches_ok);
  out += ",\"error\":";
  append_number(out, s.fetches_failed);
  out += s.last_fetch_failed ? "},\"failing\":true" : "},\"failing\":false";
  out += ",\"last_success\":";
  append_time(out, s.last_success);
  out += ",\"last_failure\":";
  append_time(out, s.last_failure);
  out += ",\"last_error\":";
  if (s.last_error.empty()) {
    out += "null";
  } else {
    append_string(out, s.last_error);
  }
  out += '}';
}

}  // namespace

proxy::ServerOptions admin_server_options(const AdminOptions& options,
                                          std::shared_ptr<AdminBackend> backend) {
  proxy::ServerOptions o;
  o.address = options.address;
  o.port = options.port;
  o.error_formatter = format_proxy_error;
  const MethodSet get{Method::get, Method::head};
  o.routes.push_back(admin_route("/metrics", get,
                                 guarded(metrics::Registry::kContentType,
                                         [backend](const http::RequestHead&, std::string_view,
                                                   int&) { return backend->metrics_text(); })));
  o.routes.push_back(admin_route(
      "/status", get, guarded(kJson, [backend](const http::RequestHead&, std::string_view, int&) {
        return backend->status_json();
      })));
  o.routes.push_back(admin_route(
      "/config", get, guarded(kJson, [backend](const http::RequestHead&, std::string_view, int&) {
        return backend->config_json();
      })));
  o.routes.push_back(admin_route(
      "/routes", get, guarded(kJson, [backend](const http::RequestHead&, std::string_view, int&) {
        return backend->routes_json();
      })));
  o.routes.push_back(
      admin_route("/reload", MethodSet{Method::post},
                  guarded(kJson,
                          [backend](const http::RequestHead&, std::string_view body, int& status) {
                            const AdminReload result = backend->reload(body);
                            status = result.reloaded ? 200 : 400;
                            return format_reload_json(result);
                          }),
                  options.max_body_bytes));
  proxy::RouteOptions rest;
  rest.name = "admin:not-found";
  rest.path = "/**";
  rest.target = proxy::Handler([](const http::RequestHead&, std::string_view, proxy::Reply& r) {
    send(r, 404, kJson, "{\"error\":\"no such admin endpoint\"}\n");
  });
  rest.max_body_bytes = 64 * 1024;
  rest.filters.push_back(std::make_shared<NotFound>());
  o.routes.push_back(std::move(rest));
  return o;
}

std::string format_status_json(const AdminStatus& s) {
  std::string out = "{\"version\":\"";
  append_json_escaped(out, s.version);
  out += "\",\"uptime_seconds\":";
  char buf[32];
  const double uptime = std::chrono::duration<double>(s.uptime).count();
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, uptime, std::chars_format::fixed, 3);
  out.append(buf, end);
  out += ",\"workers\":";
  append_number(out, s.workers);
  out += ",\"connections\":{\"active\":";
  append_number(out, s.connections_active);
  out += ",\"total\":";
  append_number(out, s.connections_total);
  out += "},\"generation\":";
  append_number(out, s.generation);
  out += ",\"jwks\":[";
  for (std::size_t i = 0; i < s.jwks.size(); ++i) {
    if (i > 0) out += ',';
    append_jwks(out, s.jwks[i]);
  }
  out += "]}\n";
  return out;
}

std::string format_reload_json(const AdminReload& r) {
  std::string out = r.reloaded ? "{\"reloaded\":true" : "{\"reloaded\":false";
  out += ",\"generation\":";
  append_number(out, r.generation);
  if (!r.reloaded) {
    out += ",\"errors\":[";
    for (std::size_t i = 0; i < r.problems.size(); ++i) {
      if (i > 0) out += ',';
      out += '"';
      const ConfigProblem& p = r.problems[i];
      if (!p.path.empty()) {
        append_json_escaped(out, p.path);
        out += ": ";
      }
      append_json_escaped(out, p.message);
      out += '"';
    }
    out += ']';
  }
  out += "}\n";
  return out;
}

}  // namespace portico::detail

// portico-embedded: Portico as a guest in a host program's own event loop,
// in front of the host's in-process handlers.
//
//   portico-embedded [--listen 127.0.0.1:8080] [--upstream HOST:PORT]
//
//   GET  /hello        answered in process
//   POST /echo         answered in process with the request body
//   GET  /users/{id}   answered in process from the path
//   any  /api/**       proxied to the --upstream cluster (only when given)
//
// Every answer carries x-request-id, and every request ends with an access
// log line on stdout (a filter of the host's, see AccessLog).
//
// The host owns everything around the server: the loop (not libuv's default
// one), a heartbeat timer of its own on that loop, the state the handlers
// share (no locks: the handlers, the timer and the server all run on the
// loop's thread), and the signals. On SIGINT or SIGTERM it stops the server
// with a 5 s drain, closes its own handles once the server is stopped, and
// uv_run returns because nothing is left on the loop.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "portico/proxy.hpp"

using namespace portico;

namespace {

// What the host keeps on its loop beside the server.
struct Host {
  uv_loop_t loop{};
  uv_timer_t heartbeat{};
  uv_signal_t sigint{}, sigterm{};
  std::unique_ptr<proxy::Server> server;
  std::uint64_t handled = 0;  // requests answered by the host's handlers
};

// A filter for every request: the host's own policy in the same chain the
// built-in ones use. It tags each answer with its request id and writes an
// access-log line once the request has ended.
class AccessLog : public proxy::Filter {
 public:
  proxy::FilterStatus on_response_headers(proxy::RequestContext& ctx) override {
    ctx.set_response_header("x-request-id", std::to_string(ctx.request_id()));
    return proxy::FilterStatus::next;
  }
  void on_log(const proxy::RequestContext& ctx) override {
    const auto& o = ctx.outcome();
    std::printf(
        "%s %.*s %.*s -> %d (%llu bytes, %lld us)%s\n", std::string(ctx.client_address()).c_str(),
        static_cast<int>(ctx.request().method.size()), ctx.request().method.data(),
        static_cast<int>(ctx.path().size()), ctx.path().data(), o.status,
        static_cast<unsigned long long>(o.response_body_bytes),
        static_cast<long long>(o.duration.count() / 1000), o.client_aborted ? " client gone" : "");
  }
};

bool split_host_port(const std::string& text, std::string& host, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  const long p = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535) return false;
  port = static_cast<std::uint16_t>(p);
  return true;
}

proxy::RouteOptions route(std::string path, MethodSet methods,
                          std::variant<proxy::Handler, std::string> target) {
  proxy::RouteOptions r;
  r.name = path;
  r.path = std::move(path);
  r.methods = methods;
  r.target = std::move(target);
  return r;
}

void reply_text(proxy::Reply& reply, int status, std::string_view text) {
  const http::Header type{"content-type", "text/plain"};
  reply.send(status, {&type, 1}, text);
}

// The host's handlers: plain functions of the request that count into the
// host's own state.
proxy::Handler hello(Host& host) {
  return [&host](const http::RequestHead&, std::string_view, proxy::Reply& reply) {
    ++host.handled;
    reply_text(reply, 200, "hello from the host\n");
  };
}

proxy::Handler echo(Host& host) {
  return [&host](const http::RequestHead&, std::string_view body, proxy::Reply& reply) {
    ++host.handled;
    reply_text(reply, 200, body);
  };
}

proxy::Handler user(Host& host) {
  return [&host](const http::RequestHead& request, std::string_view, proxy::Reply& reply) {
    ++host.handled;
    std::string_view id = request.path.substr(std::string_view("/users/").size());
    id = id.substr(0, id.find('?'));
    reply_text(reply, 200, "user " + std::string(id) + "\n");
  };
}

void on_signal(uv_signal_t* signal, int signum) {
  auto* host = static_cast<Host*>(signal->data);
  std::printf("signal %d: draining\n", signum);
  uv_signal_stop(&host->sigint);
  uv_signal_stop(&host->sigterm);
  host->server->stop(std::chrono::seconds(5), [host] {
    // The server has closed all of its handles; the host closes its own.
    uv_close(reinterpret_cast<uv_handle_t*>(&host->heartbeat), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&host->sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&host->sigterm), nullptr);
  });
}

int usage() {
  std::fprintf(stderr, "usage: portico-embedded [--listen HOST:PORT] [--upstream HOST:PORT]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Host host;
  proxy::ServerOptions options;
  options.port = 8080;
  proxy::ClusterOptions backend;
  backend.name = "backend";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    proxy::Endpoint e;
    if (flag == "--listen" && split_host_port(value, options.address, options.port)) continue;
    if (flag == "--upstream" && split_host_port(value, e.address, e.port) && e.port != 0) {
      backend.endpoints.push_back(e);
      continue;
    }
    return usage();
  }
  if (argc % 2 == 0) return usage();
  options.filters.push_back(std::make_shared<AccessLog>());
  options.routes.push_back(route("/hello", {Method::get, Method::head}, hello(host)));
  options.routes.push_back(route("/echo", {Method::post}, echo(host)));
  options.routes.push_back(route("/users/{id}", {Method::get}, user(host)));
  if (!backend.endpoints.empty()) {
    options.clusters.push_back(std::move(backend));
    options.routes.push_back(route("/api/**", MethodSet::any(), std::string("backend")));
  }

  uv_loop_init(&host.loop);
  auto server = proxy::Server::create(&host.loop, std::move(options));
  if (!server) {
    std::fprintf(stderr, "portico-embedded: %s\n", server.error().message.c_str());
    return 1;
  }
  host.server = std::move(*server);
  if (auto st = host.server->start(); !st) {
    std::fprintf(stderr, "portico-embedded: %s\n", st.error().message.c_str());
    return 1;
  }
  std::printf("listening on port %u\n", host.server->port());
  std::fflush(stdout);

  // The host's own work on the same loop.
  uv_timer_init(&host.loop, &host.heartbeat);
  host.heartbeat.data = &host;
  uv_timer_start(
      &host.heartbeat,
      [](uv_timer_t* t) {
        const auto* h = static_cast<const Host*>(t->data);
        std::printf("heartbeat: %llu requests, %llu by the host's handlers\n",
                    static_cast<unsigned long long>(h->server->stats().requests),
                    static_cast<unsigned long long>(h->handled));
        std::fflush(stdout);
      },
      2000, 2000);

  // The library installs no signal handlers: signals are the host's.
  std::signal(SIGPIPE, SIG_IGN);
  for (uv_signal_t* s : {&host.sigint, &host.sigterm}) {
    uv_signal_init(&host.loop, s);
    s->data = &host;
  }
  uv_signal_start(&host.sigint, on_signal, SIGINT);
  uv_signal_start(&host.sigterm, on_signal, SIGTERM);

  uv_run(&host.loop, UV_RUN_DEFAULT);
  host.server.reset();
  const int rc = uv_loop_close(&host.loop);
  std::printf("stopped (loop closed: %s)\n", rc == 0 ? "yes" : uv_strerror(rc));
  return rc == 0 ? 0 : 1;
}

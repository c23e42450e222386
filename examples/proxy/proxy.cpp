// portico-proxy: a minimal reverse proxy built on the library.
//
//   portico-proxy --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 [--upstream ...]
//
// Every request goes to the upstreams (round robin, keep-alive pools);
// GET /healthz is answered in process. Ctrl-C drains for 5 s and exits.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "portico/proxy.hpp"

using namespace portico;

namespace {

bool split_host_port(const std::string& text, std::string& host, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const long p = std::strtol(text.c_str() + colon + 1, nullptr, 10);
  if (p <= 0 || p > 65535) return false;
  port = static_cast<std::uint16_t>(p);
  return true;
}

int usage() {
  std::fprintf(stderr,
               "usage: portico-proxy --listen HOST:PORT --upstream HOST:PORT [--upstream ...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  proxy::ServerOptions options;
  proxy::ClusterOptions cluster;
  cluster.name = "upstream";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--listen") {
      if (!split_host_port(value, options.address, options.port)) return usage();
    } else if (flag == "--upstream") {
      proxy::Endpoint e;
      if (!split_host_port(value, e.address, e.port)) return usage();
      cluster.endpoints.push_back(e);
    } else {
      return usage();
    }
  }
  if (argc % 2 == 0 || cluster.endpoints.empty()) return usage();
  options.clusters.push_back(cluster);

  proxy::RouteOptions health;
  health.name = "health";
  health.path = "/healthz";
  health.methods = {Method::get, Method::head};
  health.target =
      proxy::Handler([](const http::RequestHead&, std::string_view, proxy::Reply& reply) {
        const http::Header type{"content-type", "text/plain"};
        reply.send(200, {&type, 1}, "ok\n");
      });
  options.routes.push_back(health);
  proxy::RouteOptions all;
  all.name = "all";
  all.path = "/**";
  all.target = std::string("upstream");
  options.routes.push_back(all);

  uv_loop_t* loop = uv_default_loop();
  auto server = proxy::Server::create(loop, options);
  if (!server) {
    std::fprintf(stderr, "portico-proxy: %s\n", server.error().message.c_str());
    return 1;
  }
  if (auto st = (*server)->start(); !st) {
    std::fprintf(stderr, "portico-proxy: %s\n", st.error().message.c_str());
    return 1;
  }
  std::printf("portico-proxy listening on %s:%u\n", options.address.c_str(), (*server)->port());
  std::fflush(stdout);

  // The example, not the library, owns signals: SIGINT/SIGTERM drain and stop.
  uv_signal_t sigint, sigterm;
  auto on_signal = [](uv_signal_t* sig, int) {
    auto* srv = static_cast<proxy::Server*>(sig->data);
    srv->stop(std::chrono::seconds(5), [loop = sig->loop] {
      uv_walk(
          loop,
          [](uv_handle_t* h, void*) {
            if (!uv_is_closing(h)) uv_close(h, nullptr);
          },
          nullptr);
    });
  };
  for (uv_signal_t* s : {&sigint, &sigterm}) {
    uv_signal_init(loop, s);
    s->data = server->get();
  }
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  std::signal(SIGPIPE, SIG_IGN);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}

// portico-proxy: a minimal reverse proxy built on the library.
//
//   portico-proxy --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 [--upstream ...]
//                 [--workers N] [--max-body-bytes N]
//
// Every request goes to the upstreams (round robin, keep-alive pools);
// GET /healthz is answered in process. --workers N serves on N threads
// sharing the port (SO_REUSEPORT; 0: one per core; default 1). Ctrl-C
// drains for 5 s and exits. Request bodies stream through; larger ones than
// --max-body-bytes (default: the library's 8 MiB) are refused with 413.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "portico/proxy.hpp"
#include "portico/workers.hpp"

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

bool parse_workers(const std::string& text, unsigned& workers) {
  char* end = nullptr;
  const long n = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || n < 0 || n > 1024) return false;
  workers = static_cast<unsigned>(n);
  return true;
}

int usage() {
  std::fprintf(stderr,
               "usage: portico-proxy --listen HOST:PORT --upstream HOST:PORT [--upstream ...]\n"
               "                     [--workers N]   threads sharing the port; 0: one per core\n"
               "                     [--max-body-bytes N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  proxy::ServerOptions options;
  proxy::ClusterOptions cluster;
  cluster.name = "upstream";
  unsigned worker_count = 1;
  std::uint64_t max_body_bytes = proxy::RouteOptions{}.max_body_bytes;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--listen") {
      if (!split_host_port(value, options.address, options.port)) return usage();
    } else if (flag == "--upstream") {
      proxy::Endpoint e;
      if (!split_host_port(value, e.address, e.port)) return usage();
      cluster.endpoints.push_back(e);
    } else if (flag == "--workers") {
      if (!parse_workers(value, worker_count)) return usage();
    } else if (flag == "--max-body-bytes") {
      char* end = nullptr;
      max_body_bytes = std::strtoull(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0') return usage();
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
  all.max_body_bytes = max_body_bytes;
  options.routes.push_back(all);

  // Every worker calls the handler above on its own thread; it shares nothing.
  std::signal(SIGPIPE, SIG_IGN);
  auto workers = proxy::Workers::start(options, worker_count);
  if (!workers) {
    std::fprintf(stderr, "portico-proxy: %s\n", workers.error().message.c_str());
    return 1;
  }
  std::printf("portico-proxy listening on %s:%u (%u workers)\n", options.address.c_str(),
              (*workers)->port(), (*workers)->size());
  std::fflush(stdout);

  // The example, not the library, owns signals: SIGINT/SIGTERM drain and stop.
  // The main thread's loop only waits for them; stop() blocks it while the
  // workers drain, then the signal handles close and uv_run returns.
  uv_loop_t* loop = uv_default_loop();
  uv_signal_t sigint, sigterm;
  auto on_signal = [](uv_signal_t* sig, int) {
    static_cast<proxy::Workers*>(sig->data)->stop(std::chrono::seconds(5));
    uv_walk(
        sig->loop,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
  };
  for (uv_signal_t* s : {&sigint, &sigterm}) {
    uv_signal_init(loop, s);
    s->data = workers->get();
  }
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}

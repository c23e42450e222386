// portico-gateway: the configured gateway (include/portico/gateway.hpp) as
// a program. With --config it serves a JSON configuration (docs/config.md);
// without, an embedded demo with built-in upstream services, JWT auth with
// a freshly made key, a rate limit and the admin API.
//
//   portico-gateway [--config FILE] [--port N] [--admin-port N]
//   portico-gateway --check FILE
//
// SIGHUP reloads the file; SIGINT and SIGTERM drain and stop. The library
// installs no signal handlers: this program does.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "demo.hpp"
#include "portico/gateway.hpp"

namespace {

using portico::gateway::Gateway;
using portico::gateway::GatewayOptions;

int usage() {
  std::fprintf(stderr,
               "usage: portico-gateway [--config FILE] [--port N] [--admin-port N]\n"
               "       portico-gateway --check FILE\n");
  return 2;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool parse_port(const std::string& text, std::uint16_t& out) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

int check(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    std::fprintf(stderr, "%s: cannot be read\n", path.c_str());
    return 1;
  }
  const auto problems = portico::gateway::check_config(*text);
  for (const auto& p : problems)
    std::fprintf(stderr, "%s: %s\n", path.c_str(), p.c_str());
  if (!problems.empty()) return 1;
  std::printf("%s: valid\n", path.c_str());
  return 0;
}

struct Signals {
  Gateway* gateway;
  uv_signal_t hup, interrupt, terminate;
};

void on_reload_signal(uv_signal_t* s, int) {
  auto* sig = static_cast<Signals*>(s->data);
  auto r = sig->gateway->reload_file();
  if (r) {
    std::printf("portico-gateway: reloaded, configuration %llu\n",
                static_cast<unsigned long long>(r->generation));
  } else {
    std::fprintf(stderr,
                 "portico-gateway: reload refused, still serving the previous "
                 "configuration:\n%s\n",
                 r.error().message.c_str());
  }
  std::fflush(stdout);
}

void on_stop_signal(uv_signal_t* s, int) {
  auto* sig = static_cast<Signals*>(s->data);
  sig->gateway->stop(std::chrono::seconds(10));
  for (uv_signal_t* h : {&sig->hup, &sig->interrupt, &sig->terminate})
    uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
}

// Handles SIGHUP (reload), SIGINT and SIGTERM (stop) from now on.
void install_signals(Signals& sig) {
  uv_loop_t* loop = uv_default_loop();
  for (uv_signal_t* h : {&sig.hup, &sig.interrupt, &sig.terminate}) {
    uv_signal_init(loop, h);
    h->data = &sig;
  }
  uv_signal_start(&sig.hup, on_reload_signal, SIGHUP);
  uv_signal_start(&sig.interrupt, on_stop_signal, SIGINT);
  uv_signal_start(&sig.terminate, on_stop_signal, SIGTERM);
}

// Blocks until SIGINT or SIGTERM stopped the gateway.
void serve_until_signalled() {
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  uv_loop_close(uv_default_loop());
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  GatewayOptions options;
  std::optional<std::uint16_t> port;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string value = argv[i + 1];
    if (flag == "--check") return check(value);
    if (flag == "--config") {
      config_path = value;
    } else if (flag == "--port") {
      std::uint16_t p = 0;
      if (!parse_port(value, p)) return usage();
      port = p;
    } else if (flag == "--admin-port") {
      std::uint16_t p = 0;
      if (!parse_port(value, p)) return usage();
      options.admin_port = p;
    } else {
      return usage();
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (port) options.port_overrides.push_back(*port);

  std::optional<demo::Demo> demo_setup;
  std::string document;
  if (config_path.empty()) {
    demo_setup.emplace();
    if (!demo_setup->ok()) {
      std::fprintf(stderr, "portico-gateway: the demo upstreams could not start\n");
      return 1;
    }
    document = demo_setup->config();
  } else {
    auto text = read_file(config_path);
    if (!text) {
      std::fprintf(stderr, "portico-gateway: %s: cannot be read\n", config_path.c_str());
      return 1;
    }
    document = std::move(*text);
    options.config_path = config_path;
  }

  auto gateway = Gateway::start(document, options);
  if (!gateway) {
    std::fprintf(stderr, "portico-gateway: %s%s\n",
                 config_path.empty() ? "" : (config_path + ":\n").c_str(),
                 gateway.error().message.c_str());
    return 1;
  }
  // Before the ports are printed: whoever reads them may signal at once.
  Signals sig{gateway->get(), {}, {}, {}};
  install_signals(sig);
  std::printf("portico-gateway listening on 127.0.0.1:%u\n", (*gateway)->port());
  if ((*gateway)->admin_port() != 0)
    std::printf("portico-gateway admin API on 127.0.0.1:%u\n", (*gateway)->admin_port());
  if (demo_setup) demo_setup->print_guide((*gateway)->port(), (*gateway)->admin_port());
  std::fflush(stdout);
  serve_until_signalled();
  return 0;
}

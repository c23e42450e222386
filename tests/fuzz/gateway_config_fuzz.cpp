// Fuzz target for the whole configuration path, as `portico-gateway --check`
// takes it: the input is a document given to parse_json_document, then to
// read_gateway_config and, when that found no problem, to assemble_gateway
// with no control loop, so that every plugin is built and nothing started.
//
// Asserted (a violation aborts, and libFuzzer keeps the input):
//  - a document the parser refuses is `malformed`, with a message;
//  - every problem has a message, and a path that is empty (the document
//    itself) or starts with a letter and holds only [A-Za-z0-9_.[]-], so
//    that "path: message" lines stay readable whatever the keys were;
//  - a document with problems yields no routes and no clusters;
//  - a document without problems yields one cluster per service, the route
//    names in order, router entries that each go to a configured cluster,
//    and a consumer directory; and building it starts no thread.
//
// jwt-auth reads `keys_file` when it is built. So that an input cannot make
// the target read /dev/zero or wait on a terminal, every keys_file is
// pointed at a file of this target's own: "jwks.json" and "keys.pem" at a
// small JWKS and PEM key it writes at start, anything else at a path that
// does not exist.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <variant>

#include "../../lib/config/gateway_config.hpp"
#include "../../lib/config/json_reader.hpp"
#include "../../lib/gateway/assemble.hpp"

namespace {

using portico::ErrorKind;
using namespace portico::detail;

[[noreturn]] void fail(const char* what, std::string_view input, std::string_view detail = {}) {
  std::fprintf(stderr, "gateway_config_fuzz: %s\n  %.*s\n  document: '%.*s'\n", what,
               static_cast<int>(detail.size()), detail.data(), static_cast<int>(input.size()),
               input.data());
  std::abort();
}

// A 32-byte HMAC secret (the shortest jwt-auth accepts) and a P-256 public
// key, so that keys_file reaches both of its readers.
constexpr std::string_view kJwks =
    R"({"keys":[{"kty":"oct","kid":"file","k":"ZnV6ei1zZWNyZXQtb2YtdGhpcnR5LXR3by1ieXRlcyE"}]})";
constexpr std::string_view kPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnt6vswKt00sGRgBPRQU8nUsIGPT2\n"
    "H1UBT1aAOKgrvTg779ZPtdv36A7Ekv97NyrpD+swniPTep/ISX0NA5oGMw==\n"
    "-----END PUBLIC KEY-----\n";

struct KeyFiles {
  std::string dir;
  std::string jwks;
  std::string pem;
  std::string absent;
};

const KeyFiles* key_files = nullptr;

std::string write_temp_file(const std::string& dir, const char* name, std::string_view text) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) fail("cannot write a key file", {}, path);
  return path;
}

KeyFiles make_key_files() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/gateway_config_fuzz.XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) fail("cannot create a scratch folder", {}, dir);
  return {dir, write_temp_file(dir, "jwks.json", kJwks), write_temp_file(dir, "keys.pem", kPem),
          dir + "/absent"};
}

void remove_key_files() {
  if (key_files == nullptr) return;
  std::remove(key_files->jwks.c_str());
  std::remove(key_files->pem.c_str());
  rmdir(key_files->dir.c_str());
}

void redirect_key_files(picojson::value& value) {
  if (value.is<picojson::array>()) {
    for (picojson::value& item : value.get<picojson::array>())
      redirect_key_files(item);
    return;
  }
  if (!value.is<picojson::object>()) return;
  for (auto& [name, member] : value.get<picojson::object>()) {
    if (name == "keys_file" && member.is<std::string>()) {
      std::string& file = member.get<std::string>();
      if (file.empty()) continue;  // "no file": left for the reader to judge
      file = file == "jwks.json"  ? key_files->jwks
             : file == "keys.pem" ? key_files->pem
                                  : key_files->absent;
    } else {
      redirect_key_files(member);
    }
  }
}

bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_path_char(char c) {
  return is_letter(c) || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '[' || c == ']' ||
         c == '-';
}

bool well_formed_path(std::string_view path) {
  if (path.empty()) return true;
  return is_letter(path.front()) && std::all_of(path.begin(), path.end(), is_path_char);
}

void check_problems(const ConfigProblems& problems, std::string_view input) {
  for (const ConfigProblem& p : problems.all()) {
    if (p.message.empty()) fail("a problem without a message", input, p.path);
    if (!well_formed_path(p.path)) fail("a problem at a malformed path", input, p.path);
  }
}

// The threads of this process, from /proc (0 where it cannot be read).
int thread_count() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("Threads:")) return std::atoi(line.c_str() + 8);
  return 0;
}

void check_assembled(const GatewayConfig& config, const AssembledConfig& out,
                     std::string_view input) {
  if (out.clusters.size() != config.services.size() ||
      out.service_names.size() != config.services.size())
    fail("not one cluster per service", input);
  if (out.route_names.size() != config.routes.size()) fail("not one name per route", input);
  for (std::size_t i = 0; i < config.routes.size(); ++i)
    if (out.route_names[i] != config.routes[i].name) fail("route names out of order", input);
  if (config.routes.empty() != out.routes.empty()) fail("routes lost or made up", input);
  if (out.consumers == nullptr) fail("no consumer directory", input);
  auto is_cluster = [&](const std::string& name) {
    return std::any_of(out.clusters.begin(), out.clusters.end(),
                       [&](const auto& c) { return c.name == name; });
  };
  for (const auto& route : out.routes) {
    const auto* target = std::get_if<std::string>(&route.target);
    if (target == nullptr || !is_cluster(*target))
      fail("a route goes to no configured cluster", input, route.name);
    for (const auto& weighted : route.weighted_clusters)
      if (!is_cluster(weighted.name)) fail("a weighted route names no cluster", input, route.name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static const KeyFiles files = make_key_files();
  key_files = &files;
  std::atexit(remove_key_files);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto document = parse_json_document(input);
  if (!document) {
    if (document.error().kind != ErrorKind::malformed || document.error().message.empty())
      fail("a refused document without kind malformed or a message", input,
           document.error().message);
    return 0;
  }
  redirect_key_files(*document);

  ConfigProblems problems;
  const GatewayConfig config = read_gateway_config(*document, problems);
  check_problems(problems, input);
  if (!problems.empty()) return 0;

  PluginEnv env;  // control_loop null: check only, as --check runs
  env.workers = 0;
  for (const ListenerConfig& l : config.listeners)
    env.workers += std::max(1u, l.workers);
  env.workers = std::max(1u, env.workers);
  const int threads_before = thread_count();
  const AssembledConfig out = assemble_gateway(config, env, problems);
  if (thread_count() != threads_before) fail("building the plugins started a thread", input);
  check_problems(problems, input);
  if (!problems.empty()) {
    if (!out.routes.empty() || !out.clusters.empty())
      fail("a document with problems yielded routes or clusters", input, problems.to_string());
    return 0;
  }
  check_assembled(config, out, input);
  return 0;
}

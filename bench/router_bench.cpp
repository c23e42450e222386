// Router lookup cost.
//
// 1. The GitHub REST API route set (203 routes, the usual router benchmark):
//    every route's concrete path is looked up in a loop; each lookup is
//    checked to find the route it was made from.
// 2. Scaling: generated tables of 10 to 100,000 routes with paths of the same
//    depth, to show that lookup cost follows the path, not the table size.
//
// Usage: router_bench --routes FILE [--quick]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench.hpp"
#include "portico/router.hpp"

using namespace portico;

namespace {

struct Probe {
  std::string method;
  std::string path;
  RouteId expected;
};

// Fills each `{name}` with a value no static segment of the set uses.
std::string concrete_path(const std::string& pattern) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '{') {
      const std::size_t close = pattern.find('}', i);
      out += 'v';
      out.append(pattern, i + 1, close - i - 1);
      out += '7';
      i = close;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

bool load_routes(const char* file, Router& router, std::vector<Probe>& probes) {
  std::ifstream in(file);
  if (!in) {
    std::fprintf(stderr, "router_bench: cannot open %s\n", file);
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string method, pattern;
    fields >> method >> pattern;
    const auto m = parse_method(method);
    if (!m) {
      std::fprintf(stderr, "router_bench: unknown method in '%s'\n", line.c_str());
      return false;
    }
    RouteSpec spec;
    spec.path = pattern;
    spec.methods = MethodSet{*m};
    auto id = router.add(std::move(spec));
    if (!id) {
      std::fprintf(stderr, "router_bench: %s\n", id.error().message.c_str());
      return false;
    }
    probes.push_back({method, concrete_path(pattern), *id});
  }
  return true;
}

// Looks every probe up `rounds` times and checks the first round.
bool verify(const Router& router, const std::vector<Probe>& probes) {
  for (const Probe& p : probes) {
    const Match m = router.match(MatchInput{p.method, {}, p.path, {}, {}});
    if (m.route == nullptr || m.route->id() != p.expected) {
      std::fprintf(stderr, "router_bench: %s %s matched %s, expected route %u\n", p.method.c_str(),
                   p.path.c_str(), m.route ? m.route->name().c_str() : "nothing", p.expected);
      return false;
    }
  }
  return true;
}

bench::Sample time_lookups(const Router& router, const std::vector<Probe>& probes, std::size_t runs,
                           std::size_t lookups) {
  return bench::measure(runs, lookups, [&](std::size_t n) {
    std::size_t i = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const Probe& p = probes[i];
      const Match m = router.match(MatchInput{p.method, {}, p.path, {}, {}});
      bench::do_not_optimize(m.route);
      if (++i == probes.size()) i = 0;
    }
  });
}

std::string random_word(std::mt19937_64& rng) {
  std::string w;
  const std::size_t len = 3 + rng() % 8;
  for (std::size_t i = 0; i < len; ++i)
    w += static_cast<char>('a' + rng() % 26);
  return w;
}

// A table of `count` routes, each four segments deep, two of them static
// words and two captures, in four shapes. The generator's seed is fixed, so
// a smaller table is the start of every larger one: the first routes, and
// the paths that probe them, are the same at every size.
bool generated_table(std::size_t count, Router& router, std::vector<Probe>& probes) {
  std::mt19937_64 rng(42);
  while (router.size() < count) {
    const std::string a = random_word(rng);
    const std::string b = random_word(rng);
    std::string pattern;
    switch (rng() % 4) {
      case 0:
        pattern = "/" + a + "/{id}/" + b + "/{sub}";
        break;
      case 1:
        pattern = "/" + a + "/" + b + "/{id}/{sub}";
        break;
      case 2:
        pattern = "/{org}/" + a + "/{id}/" + b;
        break;
      default:
        pattern = "/" + a + "/{id}/{sub}/" + b;
        break;
    }
    RouteSpec spec;
    spec.path = pattern;
    spec.methods = MethodSet{Method::get};
    auto id = router.add(std::move(spec));
    if (!id) {
      if (id.error().kind == ErrorKind::conflict) continue;  // a repeated random word
      std::fprintf(stderr, "router_bench: %s\n", id.error().message.c_str());
      return false;
    }
    probes.push_back({"GET", concrete_path(pattern), *id});
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::quick_mode(argc, argv);
  const char* file = nullptr;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--routes") == 0) file = argv[i + 1];
  }
  if (file == nullptr) {
    std::fprintf(stderr, "usage: router_bench --routes github-api-routes.txt [--quick]\n");
    return 2;
  }
  const std::size_t runs = quick ? 3 : 15;

  Router github;
  std::vector<Probe> probes;
  if (!load_routes(file, github, probes) || !verify(github, probes)) return 1;
  const auto s = time_lookups(github, probes, runs, quick ? 20000 : 2000000);
  std::printf("router github-api: %zu routes, %zu lookups/run, median of %zu runs\n", github.size(),
              quick ? std::size_t{20000} : std::size_t{2000000}, runs);
  std::printf("router github-api: %.1f ns/lookup (target < 100), %.3f allocs/lookup (target 0)\n",
              s.ns_per_op, s.allocs_per_op);

  // Three probe sets per size: the 10 routes every table starts with (the
  // same lookups while the table around them grows), 256 random routes of
  // the table (their nodes stay in cache) and 8192 (mostly cache misses
  // once the table outgrows the caches, as in a gateway with a huge table).
  std::printf("router scaling (4-segment paths, GET; ns/lookup):\n");
  std::printf("  %8s  %10s  %10s  %10s  %14s\n", "routes", "same-10", "hot-256", "cold-8192",
              "allocs/lookup");
  const std::size_t sizes[] = {10, 100, 1000, 10000, 100000};
  for (std::size_t count : sizes) {
    if (quick && count > 1000) break;
    Router table;
    std::vector<Probe> sample;
    if (!generated_table(count, table, sample) || !verify(table, sample)) return 1;
    const std::vector<Probe> same(sample.begin(), sample.begin() + 10);
    std::mt19937_64 rng(7);
    std::shuffle(sample.begin(), sample.end(), rng);
    const std::vector<Probe> hot(sample.begin(),
                                 sample.begin() + std::min<std::size_t>(256, sample.size()));
    const std::vector<Probe> cold(sample.begin(),
                                  sample.begin() + std::min<std::size_t>(8192, sample.size()));
    const std::size_t lookups = quick ? 20000 : 1000000;
    const auto f = time_lookups(table, same, runs, lookups);
    const auto h = time_lookups(table, hot, runs, lookups);
    const auto c = time_lookups(table, cold, runs, lookups);
    std::printf("  %8zu  %10.1f  %10.1f  %10.1f  %14.3f\n", count, f.ns_per_op, h.ns_per_op,
                c.ns_per_op, std::max({f.allocs_per_op, h.allocs_per_op, c.allocs_per_op}));
  }
  return 0;
}

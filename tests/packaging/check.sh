#!/usr/bin/env bash
# Checks the two ways another project takes Portico: an installed copy found
# through pkg-config, and a meson subproject. Each builds and runs a small
# consumer program that uses the primitives through the exported API only.
#   tests/packaging/check.sh
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/consumer.cpp" <<'CPP'
#include <portico/balancer.hpp>
#include <portico/breaker.hpp>
#include <portico/http.hpp>
#include <portico/limiter.hpp>
#include <portico/router.hpp>

#include <chrono>
#include <cstdio>

int main() {
  portico::Router router;
  portico::RouteSpec spec;
  spec.path = "/items/{id}";
  if (!router.add(spec)) return 1;
  const portico::Match m = router.match({"GET", "", "/items/7", "", {}});
  if (!m.route || m.param("id") != "7") return 2;

  auto limiter = portico::KeyedLimiter::create({{10, std::chrono::seconds(1), 0}, 16, 1});
  if (!limiter || !limiter->check("k", portico::TimePoint{}).allowed) return 3;

  auto breaker = portico::CircuitBreaker::create({});
  if (!breaker || !breaker->try_acquire(portico::TimePoint{})) return 4;

  portico::BalancerConfig config;
  config.endpoints = {{"a:1", 1}, {"b:2", 1}};
  auto balancer = portico::Balancer::create(config);
  if (!balancer || !balancer->pick({})) return 5;

  // llhttp has no Debian library: its objects must be inside libportico.
  portico::http::RequestParser parser;
  if (parser.parse_head("GET /items/7 HTTP/1.1\r\nHost: a\r\n\r\n") !=
          portico::http::ParseState::complete ||
      parser.head().path != "/items/7")
    return 6;
  std::puts("consumer ok");
  return 0;
}
CPP

echo "-- installed copy through pkg-config"
# Unoptimised, to keep the check quick: it is about files, names and symbols.
meson setup "$work/build" "$src" --prefix="$work/prefix" --libdir=lib --buildtype=debug \
  -Dtests=false -Dexamples=false -Dbench=false >/dev/null
meson install -C "$work/build" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
c++ -std=c++20 -Wall -Wextra -Werror "$work/consumer.cpp" -o "$work/consumer" \
  $(pkg-config --cflags --libs portico)
LD_LIBRARY_PATH="$work/prefix/lib" "$work/consumer"
# The C ABI the same way: the installed portico.h, compiled as C.
cat > "$work/consumer.c" <<'C'
#include <portico.h>
#include <stdio.h>

int main(void) {
  portico_router* router = NULL;
  portico_match* match = NULL;
  int32_t result = -1;
  const char* id;
  size_t id_len;
  if (portico_version() != PORTICO_VERSION) return 1;
  if (portico_router_new(&router) != PORTICO_OK || portico_match_new(&match) != PORTICO_OK) return 2;
  if (portico_router_add(router, "items", 5, "GET", 3, "", 0, "/items/{id}", 11, NULL) != PORTICO_OK)
    return 3;
  if (portico_router_match(router, match, "GET", 3, "", 0, "/items/7", 8) != PORTICO_OK ||
      portico_match_result(match, &result) != PORTICO_OK || result != PORTICO_MATCH_FOUND)
    return 4;
  if (portico_match_param_by_name(match, "id", 2, &id, &id_len) != PORTICO_OK || id_len != 1 ||
      id[0] != '7')
    return 5;
  portico_match_free(match);
  portico_router_free(router);
  puts("C consumer ok");
  return 0;
}
C
# shellcheck disable=SC2046
cc -std=c11 -pedantic -Wall -Wextra -Werror "$work/consumer.c" -o "$work/consumer_c" \
  $(pkg-config --cflags --libs portico)
LD_LIBRARY_PATH="$work/prefix/lib" "$work/consumer_c"
# The installed library names its ABI version, and exports the API and
# nothing else: the C functions and the C++ API in namespace portico (not
# portico::detail), no std:: instantiation, no llhttp (linked in whole). The
# script lists the allowed patterns and fails on any other defined symbol.
# Lists go to files first: `readelf | grep -q` under pipefail passes
# whenever grep's early exit kills its writer.
readelf -d "$work/prefix/lib/libportico.so" > "$work/dynamic.txt"
if ! grep -q 'Library soname: \[libportico\.so\.0\]' "$work/dynamic.txt"; then
  echo "libportico.so has no soname libportico.so.0:" >&2
  grep -i soname "$work/dynamic.txt" >&2 || true
  exit 1
fi
"$src/tests/capi/exported_symbols.sh" "$work/prefix/lib/libportico.so"

echo "-- meson subproject"
mkdir -p "$work/app/subprojects"
ln -s "$src" "$work/app/subprojects/portico"
cp "$work/consumer.cpp" "$work/app/"
cat > "$work/app/meson.build" <<'MESON'
project('consumer', 'cpp', default_options: ['cpp_std=c++20'])
portico_dep = dependency('portico', fallback: ['portico', 'portico_dep'],
  default_options: ['tests=false', 'examples=false', 'bench=false'])
executable('consumer', 'consumer.cpp', dependencies: portico_dep)
MESON
(cd "$work/app" && meson wrap promote subprojects/portico/subprojects/llhttp >/dev/null)
meson setup "$work/app/build" "$work/app" >/dev/null
meson compile -C "$work/app/build" >/dev/null
"$work/app/build/consumer"
echo "packaging: 3 passed, 0 failed"

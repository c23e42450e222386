#!/bin/sh
# The shared library exports the C ABI (portico_*), the C++ API (names in
# namespace portico, mangled "7portico") and nothing else of its own: no
# bundled llhttp, no internal helper. The one allowance is the standard
# library's template instantiations that the C++ API's inline code needs
# (weak, "W"/"V"/"u", in std:: or __gnu_cxx::): those are the compiler's,
# exported with default visibility by libstdc++'s own headers.
# Usage: exported_symbols.sh libportico.so
set -eu
lib="$1"
list="exported.$$.txt"
trap 'rm -f "$list"' EXIT
nm -D --defined-only "$lib" | awk '{print $2, $3}' | sort -u -k2 > "$list"
c_count=$(awk '$2 ~ /^portico_/' "$list" | wc -l)
cpp_count=$(awk '$2 ~ /7portico/' "$list" | wc -l)
if [ "$c_count" -lt 90 ]; then
  echo "only $c_count portico_* symbols exported: the C ABI is missing" >&2
  exit 1
fi
for f in portico_version portico_last_error portico_status_name portico_gateway_new \
         portico_gateway_options_add_filter portico_request_respond portico_router_match \
         portico_jwt_verify portico_limiter_check portico_breaker_acquire portico_balancer_pick; do
  awk -v f="$f" '$2 == f && $1 == "T" {found = 1} END {exit !found}' "$list" ||
    { echo "missing C function: $f" >&2; exit 1; }
done
stray=$(awk '
  $2 ~ /^portico_/ || $2 ~ /7portico/ { next }
  ($1 == "W" || $1 == "V" || $1 == "u") && $2 ~ /^_Z(Z?N|NK|T[ISV]|)(K?St|9__gnu_cxx)/ { next }
  { print }' "$list")
if [ -n "$stray" ]; then
  echo "exported symbols outside portico_*, namespace portico and std:: instantiations:" >&2
  echo "$stray" | head -50 >&2
  exit 1
fi
echo "ok: $c_count C functions, $cpp_count C++ API symbols, $(wc -l < "$list") in all"

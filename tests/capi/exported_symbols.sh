#!/bin/sh
# The shared library exports the API and nothing else. Every defined
# dynamic symbol must be one of:
#   portico_<name>        a C ABI function ("T")
#   portico::<name>       a C++ API symbol, also as
#                         "typeinfo for", "typeinfo name for", "vtable for",
#                         "VTT for", "[non-]virtual thunk to" portico::<name>
# where <name> is not in a namespace called detail. Anything else (a weak
# std:: or fmt:: instantiation, llhttp, an internal helper) fails the test:
# lib/libportico.map says why those stay inside.
# Usage: exported_symbols.sh libportico.so
set -eu
lib="$1"
command -v c++filt >/dev/null || { echo "exported_symbols.sh: c++filt is needed" >&2; exit 1; }
list=$(mktemp)
raw=$(mktemp)
trap 'rm -f "$list" "$raw"' EXIT
# "type mangled demangled": each defined dynamic symbol once.
nm -D --defined-only "$lib" | awk '{print $2, $3}' | sort -u -k2 > "$raw"
awk '{print $2}' "$raw" | c++filt | paste -d ' ' "$raw" - > "$list"
total=$(wc -l < "$list")
c_count=$(awk '$2 ~ /^portico_/' "$list" | wc -l)
cpp_count=$(awk '$2 ~ /^_Z/' "$list" | wc -l)
if [ "$c_count" -lt 90 ]; then
  echo "only $c_count portico_* symbols exported: the C ABI is missing" >&2
  exit 1
fi
for f in portico_version portico_last_error portico_status_name portico_gateway_new \
         portico_gateway_options_add_filter portico_request_respond portico_router_match \
         portico_jwt_verify portico_limiter_check portico_breaker_acquire portico_balancer_pick \
         portico_request_set_response_status; do
  awk -v f="$f" '$2 == f && $1 == "T" {found = 1} END {exit !found}' "$list" ||
    { echo "missing C function: $f" >&2; exit 1; }
done
# The C++ API the C++ consumers link against (tests/packaging/check.sh).
for f in 'portico::Router::match(' 'portico::KeyedLimiter::create(' \
         'portico::CircuitBreaker::create(' 'portico::Balancer::create(' \
         'portico::http::RequestParser::parse_head('; do
  grep -qF " $f" "$list" || { echo "missing C++ API symbol: $f" >&2; exit 1; }
done
stray=$(awk '
  { demangled = substr($0, length($1) + length($2) + 3) }
  $1 == "T" && $2 ~ /^portico_[a-z0-9_]+$/ { next }
  $2 ~ /^_Z/ {
    name = demangled
    sub(/^(typeinfo for |typeinfo name for |vtable for |VTT for |non-virtual thunk to |virtual thunk to )/, "", name)
    if (name ~ /^portico::/ && name !~ /^portico::([A-Za-z0-9_]+::)*detail::/) next
  }
  { print }' "$list")
if [ -n "$stray" ]; then
  echo "exported symbols outside the C ABI (portico_*) and the C++ API (portico::, not detail):" >&2
  echo "$stray" | head -50 >&2
  echo "($(echo "$stray" | wc -l) in all)" >&2
  exit 1
fi
echo "ok: $total exported: $c_count C functions, $cpp_count C++ API symbols"

#!/usr/bin/env bash
# Installs the Debian packages Portico builds and tests with. Safe to run any
# number of times: it asks apt only for what is missing.
set -euo pipefail

packages=(
  g++ meson ninja-build pkg-config
  libuv1-dev libmbedtls-dev libfmt-dev picojson-dev doctest-dev
  ca-certificates  # the system CA bundle jwt-auth verifies https:// JWKS servers against
  node-llhttp    # llhttp's generated C sources, compiled by subprojects/llhttp
  clang-format   # the formatting check in CI
  clang libclang-rt-14-dev  # the fuzz targets in CI: clang's libFuzzer and sanitizer runtimes
  python3-jwt python3-cryptography  # the PyJWT peer of bench/jwt_bench
  python3-pytest  # the Python binding's tests (examples/python/tests)
  golang-go  # the Go binding in examples/go and its go test (meson test --suite go)
  nginx haproxy wrk  # the peers, upstream and load generator of bench/proxy/run.sh
)
# The Rust binding's tests (examples/rust) need cargo; one from rustup will do.
command -v cargo >/dev/null 2>&1 || packages+=(cargo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

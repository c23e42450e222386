#!/bin/sh
# Runs the Rust binding's tests (cargo test) against a built libportico,
# with every file cargo writes kept inside the build directory and no
# network: the crate has no dependencies.
#
# Usage: run-cargo-test.sh CRATE_DIR WORK_DIR LIBRARY
#   CRATE_DIR  examples/rust in the source tree
#   WORK_DIR   a directory of the build tree for cargo's target and home
#   LIBRARY    the built shared library (its directory is linked against)
set -eu

crate=$1
work=$2
library=$3

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; the Rust binding's tests need it." >&2
  echo "Install Debian's cargo package (scripts/install-deps.sh does) or rustup." >&2
  exit 1
fi

lib_dir=$(cd "$(dirname "$library")" && pwd)
mkdir -p "$work/cargo-home"
export CARGO_TARGET_DIR="$work/cargo-target"
export CARGO_HOME="$work/cargo-home"
export CARGO_NET_OFFLINE=true
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export PORTICO_LIB_DIR="$lib_dir"
# Doc tests get no run path from build.rs: they find the library this way.
export LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

cargo --version
exec cargo test --offline --locked --manifest-path "$crate/Cargo.toml"

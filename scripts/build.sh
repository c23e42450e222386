#!/usr/bin/env bash
# Configures (first time) and builds a build directory.
#   scripts/build.sh [BUILD_DIR] [meson options...]
# e.g. scripts/build.sh build-san -Dsanitize=true
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
if [ -f "$dir/meson-private/coredata.dat" ]; then
  [ $# -eq 0 ] || meson configure "$dir" "$@"
else
  meson setup "$dir" "$@"
fi
meson compile -C "$dir"

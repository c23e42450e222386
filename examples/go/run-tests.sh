#!/bin/sh
# Checks the Go binding (gofmt, go vet) and runs its tests against the
# library of a meson build, with every Go cache inside the build directory so
# that a machine with a read-only home works, and without the network.
# Usage: run-tests.sh SOURCE_DIR CAPI_DIR LIBRARY_FILE WORK_DIR [go test flags]
set -eu
src=$1 capi=$2 lib=$3 work=$4
shift 4
libdir=$(cd "$(dirname "$lib")" && pwd)
mkdir -p "$work/cache" "$work/path" "$work/tmp"

export GOCACHE="$work/cache" GOPATH="$work/path" GOTMPDIR="$work/tmp"
export GOTOOLCHAIN=local GOPROXY=off GOSUMDB=off GOFLAGS= GOWORK=off GO111MODULE=on
export GOTELEMETRY=off CGO_ENABLED=1
export CGO_CFLAGS="-g -O2 -I$capi"
export CGO_LDFLAGS="-L$libdir -Wl,-rpath,$libdir"

cd "$src"
unformatted=$("$(go env GOROOT)/bin/gofmt" -l .)
if [ -n "$unformatted" ]; then
  echo "not formatted with gofmt: $unformatted" >&2
  exit 1
fi
go vet ./...
exec go test -count=1 "$@" ./...

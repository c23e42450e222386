#!/usr/bin/env bash
# Large bodies through Portico's proxy with flat memory: a 1 GiB download, a
# 1 GiB upload, and a download read slowly (the proxy must hold back the
# upstream rather than buffer), each on its own connection, while the proxy's
# RSS is watched.
#
# Usage: bench/proxy/stream.sh --portico "CMD" [--size MIB] [--slow-size MIB]
#                              [--slow-rate MIB_PER_S] [--max-growth MIB] [--quick] [--keep]
#
#   --portico CMD     command that runs Portico's proxy in the foreground; {port}
#                     and {upstream_port} are replaced by the ports to listen on
#                     and to forward to. Its routes must allow a request body of
#                     the upload's size.
#   --size MIB        download and upload size; default 1024
#   --slow-size MIB   slow download size; default 256
#   --slow-rate MIB   the slow reader's rate in MiB/s; default 20
#   --max-growth MIB  largest RSS growth (peak minus start) allowed per transfer; default 16
#   --quick           64 MiB each way, a 32 MiB slow download (a CI run, seconds)
#   --keep            keep the work directory (logs)
#
# The upstream and the client are stream_peer.py (Debian's python3): bodies
# are a byte pattern made and checked on the fly, so a transfer is verified
# byte for byte by the receiving end without memory or disk. The proxy's
# VmRSS is sampled every 100 ms during each transfer and VmHWM, reset before
# each transfer, gives its peak. Exits 1 if a transfer is incomplete or
# damaged, or the RSS grows by more than --max-growth. Only processes this
# script starts are ever signalled, by PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}

usage() {
  sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

portico_cmd=""
size_mib=1024
slow_mib=256
slow_rate=20
max_growth=16
keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --portico) portico_cmd=$2; shift 2 ;;
    --size) size_mib=$2; shift 2 ;;
    --slow-size) slow_mib=$2; shift 2 ;;
    --slow-rate) slow_rate=$2; shift 2 ;;
    --max-growth) max_growth=$2; shift 2 ;;
    --quick) size_mib=64; slow_mib=32; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) usage ;;
    *) echo "unknown option: $1" >&2; usage 2 >&2 ;;
  esac
done

[ -n "$portico_cmd" ] || { echo "--portico CMD is required" >&2; usage 2 >&2; }
for number in "$size_mib" "$slow_mib" "$slow_rate" "$max_growth"; do
  if ! [[ $number =~ ^[0-9]+$ ]] || [ "$number" -eq 0 ]; then
    echo "not a positive number: $number" >&2
    exit 2
  fi
done
for tool in timeout "$python"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/portico-stream-bench.XXXXXX")
# shellcheck source=bench/proxy/processes.sh
. "$here/processes.sh"

show_log() {
  echo "--- $1" >&2
  tail -n 20 "$1" >&2
}

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- the processes ----------------------------------------------------------

# The upstream binds port 0 itself and says which port it got: no race.
"$python" "$here/stream_peer.py" upstream >"$work/upstream.log" 2>&1 &
upstream_pid=$!
running[$upstream_pid]=upstream
upstream_port=""
for _ in $(seq 100); do
  upstream_port=$(sed -n 's/^port=//p' "$work/upstream.log")
  [ -n "$upstream_port" ] && break
  is_running_child "$upstream_pid" || break
  sleep 0.1
done
[ -n "$upstream_port" ] || { echo "the upstream did not start" >&2; show_log "$work/upstream.log"; exit 1; }

proxy_port=$(free_port)
cmd=${portico_cmd//\{port\}/$proxy_port}
cmd=${cmd//\{upstream_port\}/$upstream_port}
# exec: the PID started here is the proxy's own, the one whose RSS is read.
bash -c "exec $cmd" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
running[$proxy_pid]=proxy
if ! wait_for_port "$proxy_port" "$proxy_pid"; then
  echo "the proxy did not start listening on 127.0.0.1:$proxy_port ($cmd)" >&2
  show_log "$work/proxy.log"
  exit 1
fi

# --- the transfers ----------------------------------------------------------

mib=$((1024 * 1024))
failures=0

# run_transfer LABEL MODE BYTES [RATE]: one transfer; prints a table row.
run_transfer() {
  local label=$1 mode=$2 bytes=$3 rate=${4:-0}
  local seconds_allowed=$((bytes / mib + 60))
  [ "$rate" -gt 0 ] && seconds_allowed=$((bytes / rate + 60))
  local out status=0
  out=$(timeout "$seconds_allowed" "$python" "$here/stream_peer.py" "$mode" --port "$proxy_port" \
    --bytes "$bytes" --rate "$rate" --watch "$proxy_pid") || status=$?
  declare -A r=()
  local pair
  for pair in $out; do
    r[${pair%%=*}]=${pair#*=}
  done
  local verdict=ok
  if [ "$status" -ne 0 ] || [ "${r[bytes]:-0}" != "$bytes" ] || [ "${r[intact]:-no}" != yes ]; then
    verdict="INCOMPLETE"
    [ "$status" -eq 124 ] && verdict="TIMED OUT"
    [ "${r[status]:-0}" = 413 ] && verdict="REFUSED (413: raise the route's max_body_bytes)"
  fi
  local start_kb=${r[rss_start_kb]:-0} peak_kb=${r[hwm_kb]:-0}
  [ "${r[hwm_reset]:-no}" = yes ] || peak_kb=${r[rss_max_kb]:-0}
  local growth_kb=$((peak_kb - start_kb))
  if [ "$verdict" = ok ] && [ "$growth_kb" -gt $((max_growth * 1024)) ]; then
    verdict="RSS GREW"
  fi
  [ "$verdict" = ok ] || failures=$((failures + 1))
  awk -v label="$label" -v bytes="${r[bytes]:-0}" -v intact="${r[intact]:-no}" -v s="${r[seconds]:-0}" \
    -v start="$start_kb" -v peak="$peak_kb" -v growth="$growth_kb" -v verdict="$verdict" 'BEGIN {
      printf "%-34s %12d  %-6s %8.1f  %9.1f MiB  %9.1f MiB  %+8.1f MiB  %s\n", label, bytes, intact,
        (s > 0 ? bytes / 1048576 / s : 0), start / 1024, peak / 1024, growth / 1024, verdict
    }'
  if [ "$verdict" != ok ] && [ -n "${r[error]:-}" ]; then
    echo "    client error: ${r[error]}" >&2
  fi
  if ! is_running_child "$proxy_pid"; then
    echo "the proxy exited during the transfer" >&2
    show_log "$work/proxy.log"
    exit 1
  fi
}

echo "== large bodies through the proxy"
echo "proxy: $cmd"
echo "upstream and client: stream_peer.py ($("$python" --version 2>&1)); RSS limit: +$max_growth MiB per transfer"

# Warm-up: the proxy's first connections, buffers and pools.
for mode in get put; do
  timeout 60 "$python" "$here/stream_peer.py" "$mode" --port "$proxy_port" --bytes $((4 * mib)) \
    >"$work/warmup-$mode.txt" 2>&1 || true
done

printf '%-34s %12s  %-6s %8s  %13s  %13s  %12s  %s\n' transfer bytes intact MiB/s "RSS start" \
  "peak (VmHWM)" growth result
run_transfer "download $size_mib MiB" get $((size_mib * mib))
run_transfer "upload $size_mib MiB" put $((size_mib * mib))
run_transfer "slow download $slow_mib MiB @ $slow_rate MiB/s" get $((slow_mib * mib)) $((slow_rate * mib))

if [ "$failures" -gt 0 ]; then
  echo "FAIL: $failures transfer(s) incomplete, damaged or with RSS growth over $max_growth MiB"
  exit 1
fi
echo "PASS: every byte arrived intact, RSS growth at most $max_growth MiB per transfer"

#!/usr/bin/env bash
# Side-by-side reverse-proxy benchmark: Portico's minimal proxy, NGINX and
# HAProxy, each one process on its own core, in front of the same upstream
# (one nginx process answering "hello\n"), driven by wrk --latency.
#
# Usage: bench/proxy/run.sh [--portico "CMD"] [--rounds N] [--duration S]
#                           [--connections "50 200 1000"] [--idle N] [--quick] [--keep]
#
#   --portico CMD   command that runs Portico's proxy in the foreground; {port}
#                   and {upstream_port} are replaced by the ports to listen on
#                   and to forward to. Without it the Portico rows are skipped.
#   --rounds N      interleaved rounds (direct, portico, nginx, haproxy, again); default 5
#   --duration S    seconds per wrk run; default 5
#   --connections L wrk connection counts; default "50 200 1000"
#   --idle N        idle keep-alive connections per proxy for the memory test,
#                   0 to skip; default 9000
#   --quick         1 round, 2 s, 50 connections, no idle test (a smoke run)
#   --keep          keep the work directory (configs, logs, raw wrk output)
#
# Why this shape: on a 2-core host the load generator and the upstream share
# one core and the proxy under test gets the other, so the proxy is what is
# measured. The host drifts by tens of percent over minutes, so rounds are
# short and interleaved, figures are medians, and comparisons are taken
# within a round. Only processes this script starts are ever signalled, by
# PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}

usage() {
  sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

portico_cmd=""
rounds=5
duration=5
connections="50 200 1000"
idle=9000
keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --portico) portico_cmd=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --quick) rounds=1; duration=2; connections=50; idle=0; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) usage ;;
    *) echo "unknown option: $1" >&2; usage 2 >&2 ;;
  esac
done

for number in "$rounds" "$duration" "$idle" $connections; do
  [[ $number =~ ^[0-9]+$ ]] || { echo "not a number: $number" >&2; exit 2; }
done
if [ "$rounds" -lt 1 ] || [ "$duration" -lt 1 ] || [ -z "$connections" ]; then
  echo "need at least one round, one second and one connection count" >&2
  exit 2
fi

for tool in nginx haproxy wrk taskset timeout "$python"; do
  command -v "$tool" >/dev/null || {
    echo "missing: $tool (scripts/install-deps.sh installs nginx, haproxy and wrk)" >&2
    exit 1
  }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/portico-proxy-bench.XXXXXX")

# shellcheck source=bench/proxy/processes.sh
. "$here/processes.sh"

# --- the machine ------------------------------------------------------------

hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
ulimit -n "$hard_nofile" 2>/dev/null || true
nofile=$(ulimit -n)

read -ra cpus <<<"$("$python" -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
if [ "${#cpus[@]}" -ge 2 ]; then
  load_pin=(taskset -c "${cpus[0]}")
  proxy_pin=(taskset -c "${cpus[1]}")
  pinning="upstream + wrk on CPU ${cpus[0]}, proxy under test on CPU ${cpus[1]}"
else
  load_pin=()
  proxy_pin=()
  pinning="skipped: only one CPU available, all processes share it"
fi

idle_note=""
# Each idle connection may cost the proxy two descriptors (client and
# upstream side), plus a margin for everything else.
if [ "$idle" -gt 0 ] && [ $((2 * idle + 256)) -gt "$nofile" ]; then
  idle_asked=$idle
  idle=$(((nofile - 256) / 2))
  idle_note="scaled down from $idle_asked: the open-files limit is $nofile"
fi

clk_tck=$(getconf CLK_TCK)

# --- helpers ----------------------------------------------------------------

# render TEMPLATE OUT NAME=VALUE...: fills @NAME@ placeholders.
render() {
  local template=$1 out=$2
  shift 2
  local args=() pair
  for pair in "$@"; do
    args+=(-e "s|@${pair%%=*}@|${pair#*=}|g")
  done
  sed "${args[@]}" "$template" >"$out"
}

http_get() {
  local port=$1 path=$2 fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: bench\r\n\r\n' "$path" >&"$fd"
  timeout 5 cat <&"$fd" || true
  exec {fd}>&-
}

rss_kb() {
  local total=0 pid kb
  for pid in $(pid_tree "$1"); do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

upstream_accepts() {
  http_get "$status_port" / | awk 'found {print $1; exit} /server accepts/ {found = 1}'
}

# --- the processes ----------------------------------------------------------

start_upstream() {
  local dir=$work/upstream
  mkdir -p "$dir"
  render "$here/upstream.nginx.conf.in" "$dir/nginx.conf" DIR="$dir" PORT="$upstream_port" \
    STATUS_PORT="$status_port" NOFILE="$nofile" WORKER_CONNECTIONS=$((nofile - 16))
  launch upstream "$dir" "$upstream_port" "${load_pin[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
}

# start_proxy TARGET PORT SIZE: a fresh proxy sized for SIZE client
# connections; sets launched_pid.
start_proxy() {
  local target=$1 port=$2 size=$3
  local dir=$work/$target-$port
  mkdir -p "$dir"
  case $target in
    nginx)
      local worker_connections=$((2 * size + 512))
      [ "$worker_connections" -gt $((nofile - 16)) ] && worker_connections=$((nofile - 16))
      render "$here/nginx.conf.in" "$dir/nginx.conf" DIR="$dir" PORT="$port" UPSTREAM_PORT="$upstream_port" \
        NOFILE="$nofile" WORKER_CONNECTIONS="$worker_connections"
      launch nginx "$dir" "$port" "${proxy_pin[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
      ;;
    haproxy)
      # Not sized to SIZE: HAProxy stops keeping idle upstream connections
      # once a quarter of its descriptors (tune.pool-high-fd-ratio) are in
      # use, so a tight maxconn would make it reconnect on every request.
      local maxconn=$(((nofile - 256) / 2))
      render "$here/haproxy.cfg.in" "$dir/haproxy.cfg" PORT="$port" UPSTREAM_PORT="$upstream_port" MAXCONN="$maxconn"
      launch haproxy "$dir" "$port" "${proxy_pin[@]}" haproxy -db -f "$dir/haproxy.cfg"
      ;;
    portico)
      local cmd=${portico_cmd//\{port\}/$port}
      cmd=${cmd//\{upstream_port\}/$upstream_port}
      echo "$cmd" >"$dir/command"
      launch portico "$dir" "$port" "${proxy_pin[@]}" bash -c "exec $cmd"
      ;;
  esac
  if ! http_get "$port" / | grep -q '^hello$'; then
    echo "$target on port $port does not answer with the upstream's body; its output:" >&2
    show_logs "$dir" >&2
    exit 1
  fi
}

# --- the runs ---------------------------------------------------------------

runs=$work/runs.tsv
printf 'conns\tround\ttarget\trps\tp50_us\tp90_us\tp99_us\trequests\terrors\tcpu_us_per_req\trss_kb\tnew_upstream_conns\n' >"$runs"

# wrk_run PORT CONNS SECONDS OUT
wrk_run() {
  if ! timeout $(($3 + 60)) "${load_pin[@]}" wrk -t1 -c"$2" -d"$3s" --timeout 10s --latency \
    "http://127.0.0.1:$1/" >"$4" 2>&1; then
    echo "wrk failed against port $1:" >&2
    cat "$4" >&2
    exit 1
  fi
}

# measure ROUND CONNS TARGET: one wrk run, one line in $runs.
measure() {
  local round=$1 conns=$2 target=$3
  local port=${port_of[$target]} pid=${pid_of[$target]:-}
  local out=$work/wrk-$conns-$round-$target.txt
  local accepts_before ticks_before=0 accepts_after ticks_after=0
  accepts_before=$(upstream_accepts)
  [ -n "$pid" ] && ticks_before=$(cpu_ticks "$pid")
  wrk_run "$port" "$conns" "$duration" "$out"
  [ -n "$pid" ] && ticks_after=$(cpu_ticks "$pid")
  accepts_after=$(upstream_accepts)

  local parsed
  parsed=$(parse_wrk "$out") || {
    echo "could not parse wrk output:" >&2
    cat "$out" >&2
    exit 1
  }
  local rps p50 p90 p99 requests errors
  IFS=$'\t' read -r rps p50 p90 p99 requests errors <<<"$parsed"
  local cpu="-" rss="-"
  if [ -n "$pid" ]; then
    cpu=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$clk_tck" -v n="$requests" \
      'BEGIN { printf "%.2f", n ? t * 1e6 / hz / n : 0 }')
    rss=$(rss_kb "$pid")
  fi
  # The second status read is itself one new connection; so, in a direct run,
  # is the probe connection wrk opens (and closes unused) to check the address.
  local new_conns=$((accepts_after - accepts_before - 1))
  [ "$target" = direct ] && new_conns=$((new_conns - 1))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$round" "$target" "$rps" "$p50" "$p90" \
    "$p99" "$requests" "$errors" "$cpu" "$rss" "$new_conns" >>"$runs"
  printf '  round %s/%s %5s conns %-8s %9.0f req/s  p99 %-9s CPU %6s us/req  new upstream conns %s%s\n' \
    "$round" "$rounds" "$conns" "$target" "$rps" "$(fmt_us "$p99")" "$cpu" "$new_conns" \
    "$([ "$errors" -gt 0 ] && echo "  ERRORS $errors")"
}

targets=(direct)
[ -n "$portico_cmd" ] && targets+=(portico)
targets+=(nginx haproxy)

max_conns=0
for c in $connections; do
  [ "$c" -gt "$max_conns" ] && max_conns=$c
done
if [ $((max_conns + 256)) -gt "$nofile" ]; then
  echo "the open-files limit ($nofile) is too low for $max_conns connections" >&2
  exit 1
fi

read -ra ports <<<"$(free_ports 5)"
upstream_port=${ports[0]}
status_port=${ports[1]}
declare -A port_of=([direct]=$upstream_port [portico]=${ports[2]} [nginx]=${ports[3]} [haproxy]=${ports[4]})
declare -A pid_of=()

echo "== reverse-proxy benchmark"
echo "nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(haproxy -v | head -n 1 | awk '{print "haproxy", $3}'), $(wrk --version 2>&1 | head -n 1 | awk '{print "wrk", $2}')"
echo "pinning: $pinning"
echo "rounds: $rounds x $duration s, connections: $connections, open-files limit: $nofile"
# Other work on the host is the usual cause of drift between rounds.
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "$portico_cmd" ] && echo "portico: $portico_cmd" || echo "portico: skipped (no --portico command)"

start_upstream
for target in "${targets[@]}"; do
  [ "$target" = direct ] && continue
  start_proxy "$target" "${port_of[$target]}" "$max_conns"
  pid_of[$target]=$launched_pid
done

# Warm-up: first upstream connections, lazy allocations, page faults.
for target in "${targets[@]}"; do
  wrk_run "${port_of[$target]}" 50 1 "$work/warmup-$target.txt"
done

for round in $(seq "$rounds"); do
  for conns in $connections; do
    for target in "${targets[@]}"; do
      measure "$round" "$conns" "$target"
    done
  done
done

# --- idle keep-alive connections on fresh proxies ---------------------------

idle_tsv=""
if [ "$idle" -gt 0 ]; then
  for target in "${targets[@]}"; do
    [ "$target" = direct ] || stop_pid "${pid_of[$target]}"
  done
  idle_tsv=$work/idle.tsv
  printf 'target\tcount\topened\tanswered\tstill_open\tbefore_kb\tafter_kb\n' >"$idle_tsv"
  echo "  idle test: $idle connections per proxy${idle_note:+ ($idle_note)}"
  for target in "${targets[@]}"; do
    [ "$target" = direct ] && continue
    read -r port <<<"$(free_ports 1)"
    start_proxy "$target" "$port" "$idle"
    pid=$launched_pid
    result=$(timeout 180 "${load_pin[@]}" "$python" "$here/idle_conns.py" --port "$port" --count "$idle" \
      --pids "$(pid_tree "$pid" | paste -sd,)") || echo "  $target: idle test incomplete: $result" >&2
    echo "  $target: $result"
    declare -A field=()
    for pair in $result; do
      field[${pair%%=*}]=${pair#*=}
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$idle" "${field[opened]:-0}" "${field[answered]:-0}" \
      "${field[still_open]:-0}" "${field[before_kb]:-0}" "${field[after_kb]:-0}" >>"$idle_tsv"
    unset field
    stop_pid "$pid"
  done
fi

# --- report -----------------------------------------------------------------

report_args=(--runs "$runs")
[ -n "$idle_tsv" ] && report_args+=(--idle "$idle_tsv")
[ -n "$portico_cmd" ] && report_args+=(--portico-ran)
"$python" "$here/report.py" "${report_args[@]}"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$idle" -eq 0 ]; then
  echo "idle keep-alive test: skipped (--quick or --idle 0)"
elif [ -n "$idle_note" ]; then
  echo "note: idle connections $idle_note"
fi

#!/usr/bin/env bash
# The cost of the policy set: portico-gateway with jwt-auth, rate-limit,
# request-id and the metrics endpoint ("full") against the same gateway with
# no policies ("bare"), side by side in one run, in front of one upstream.
#
# Usage: bench/gateway/run.sh [--gateway PATH] [--rounds N] [--duration S]
#                             [--connections "1 50"] [--quick] [--keep]
#
#   --gateway PATH  the portico-gateway binary; default
#                   build/examples/gateway/portico-gateway (use a release build:
#                   meson setup build-release -Dbuildtype=release)
#   --rounds N      interleaved rounds (bare, full, then again); default 5
#   --duration S    seconds per wrk run; default 5
#   --connections L wrk connection counts, each measured in every round;
#                   default "1 50" (unloaded latency, then a saturating load)
#   --quick         2 rounds of 2 s at 50 connections (a smoke run for CI)
#   --keep          keep the work directory (token, configs, raw wrk output)
#
# To run it:
#   meson setup build-release -Dbuildtype=release -Dtests=false
#   ninja -C build-release examples/gateway/portico-gateway
#   bench/gateway/run.sh --gateway build-release/examples/gateway/portico-gateway
#   bench/gateway/run.sh --quick    # the CI smoke run, about 20 s
#
# Needs nginx, wrk and python3 with the cryptography module (Debian's
# python3-cryptography; scripts/install-deps.sh installs all three). Set
# PYTHON to an interpreter that has it when the first python3 on PATH does not.
#
# The two gateways, both `portico-gateway --config FILE` with one worker
# ("workers": 1) and the access log off (so neither pays for log lines):
#
#   bare  one catch-all route to the upstream service; no plugins, no consumer,
#         admin listener off (so no /metrics endpoint). The gateway's own
#         request counters and histograms (the `observe` filter) are always
#         recorded and the configuration cannot turn them off, so the bare
#         gateway pays for metric recording too; what differs is the policies.
#   full  the same route, plus the global plugins request-id (id and W3C trace
#         context generated per request), jwt-auth (an RS256 public key given
#         inline in `pem_keys`, RS256 only, issuer and audience checked, the
#         token cache on at its default size), rate-limit (by consumer, windows
#         of 10^9 per second and per minute from the consumer's plan, so it
#         counts every request and refuses none: this measures cost, not
#         refusals), one consumer the token's (iss, sub) resolves to, and the
#         admin listener with /metrics.
#
# An RSA key (2048 bits) and one token (exp ten years away) are made at
# start; the private key stays in memory, the token and both configurations
# go to a temporary work directory. wrk sends the same request to both gateways,
# `Authorization: Bearer <token>` included, so they parse the same bytes; the
# bare gateway forwards the header upstream, the full one removes it.
#
# Before measuring, the script checks that the full gateway runs its
# policies: no token gets 401, the token gets 200 with X-RateLimit-Limit and
# X-Request-ID, and /metrics counts both answers. After the runs it checks
# that no request was refused or failed (a rate-limit refusal would make the
# full gateway look cheap) and that /metrics counted no rate-limit rejection.
#
# Method, as in bench/proxy/run.sh: on a 2-core host the upstream (Debian's
# nginx, one process, `return 200`) and wrk share the first CPU and the
# gateway under test gets the second (taskset). The host drifts by tens of
# percent over minutes, so rounds are short and interleaved (bare, full,
# bare, full...), figures are medians over rounds, and comparisons are taken
# within a round first (full/bare req/s, full-bare p99, full-bare CPU per
# request), then their median printed. CPU per request is the gateway
# process's utime+stime (every thread) from /proc/PID/stat around each wrk
# run, divided by the requests wrk completed; it moves far less with other
# load on the host than req/s and latency do, so bare/full CPU per request is
# printed too, as the req/s ratio a saturated gateway core would show.
# "core busy" is req/s times CPU per request: below about 90% the gateway was
# not what limited req/s (the load core was, or other work on the host), and
# the report says so.
#
# Reading p99 at 50 connections: wrk keeps every connection busy, so the
# gateway is saturated and a request's latency is mostly its wait behind the
# others (about connections / throughput). An extra few microseconds of CPU
# per request then shows up multiplied by the queue depth (and, on a shared
# host, by whatever else the gateway's core runs). So the default also
# measures one connection, where full-bare p99 is the latency the policies
# add to one request.
#
# The targets (issue 5): full/bare req/s >= 0.90 and full-bare p99 < 100 us.
# The report judges each at every connection count. When a gateway's core
# was less than 90% busy, the req/s ratio measured the load core, not the
# gateway, so the report also judges the req/s target on bare/full CPU per
# request (what the ratio is once the gateway core is the limit) and says
# which of the two is the honest figure for that run.
# The script prints whether each was met and exits 0 either way (a loaded CI
# host cannot judge them); it exits 1 when something does not work.
# Only processes this script starts are ever signalled, by PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=bench/gateway/common.sh
. "$here/common.sh"
find_python

usage() {
  sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

gateway=$repo/build/examples/gateway/portico-gateway
rounds=5
duration=5
connections="1 50"
keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --gateway) gateway=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --quick) rounds=2; duration=2; connections=50; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) usage ;;
    *) echo "unknown option: $1" >&2; usage 2 >&2 ;;
  esac
done

for number in "$rounds" "$duration" $connections; do
  [[ $number =~ ^[0-9]+$ ]] || { echo "not a number: $number" >&2; exit 2; }
done
if [ "$rounds" -lt 1 ] || [ "$rounds" -gt 100 ] || [ "$duration" -lt 1 ] || [ "$duration" -gt 600 ] ||
  [ -z "$connections" ]; then
  echo "need 1..100 rounds, 1..600 seconds and at least one connection count" >&2
  exit 2
fi
[ -x "$gateway" ] || { echo "not an executable: $gateway (build it, or pass --gateway)" >&2; exit 1; }

require_tools nginx wrk taskset timeout

work=$(mktemp -d "${TMPDIR:-/tmp}/portico-gateway-bench.XXXXXX")

# shellcheck source=bench/proxy/processes.sh
. "$here/../proxy/processes.sh"

# --- the machine ------------------------------------------------------------

hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
ulimit -n "$hard_nofile" 2>/dev/null || true
nofile=$(ulimit -n)

read -ra cpus <<<"$("$python" -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
if [ "${#cpus[@]}" -ge 2 ]; then
  load_pin=(taskset -c "${cpus[0]}")
  gateway_pin=(taskset -c "${cpus[1]}")
  pinning="upstream + wrk on CPU ${cpus[0]}, gateway under test on CPU ${cpus[1]}"
else
  load_pin=()
  gateway_pin=()
  pinning="skipped: only one CPU available, all processes share it"
fi

clk_tck=$(getconf CLK_TCK)

# --- the runs' helpers ------------------------------------------------------

# More runnable work than CPUs means the pinned gateway shares its core with
# other processes, and its figures measure the scheduler as much as itself.
warn_if_busy() {
  local cpu_count
  cpu_count=$(getconf _NPROCESSORS_ONLN)
  awk -v load="$(cut -d' ' -f1 /proc/loadavg)" -v n="$cpu_count" 'BEGIN { exit !(load > n) }' &&
    echo "note: the host is busy (1-minute load above its $cpu_count CPUs): figures are indicative only"
  return 0
}

rate_limit_rejections() {
  http_request "$admin_port" /metrics | awk '/^portico_rate_limit_rejections_total/ {n += $NF} END {print n + 0}'
}

# --- the runs ---------------------------------------------------------------

runs=$work/runs.tsv
printf 'conns\tround\ttarget\trps\tp50_us\tp90_us\tp99_us\trequests\terrors\tcpu_us_per_req\n' >"$runs"

# wrk_run PORT CONNS SECONDS OUT
wrk_run() {
  if ! timeout $(($3 + 60)) "${load_pin[@]}" wrk -t1 -c"$2" -d"$3s" --timeout 10s --latency \
    -H "Authorization: Bearer $token" "http://127.0.0.1:$1/" >"$4" 2>&1; then
    echo "wrk failed against port $1:" >&2
    cat "$4" >&2
    exit 1
  fi
}

# measure ROUND CONNS TARGET: one wrk run, one line in $runs.
measure() {
  local round=$1 conns=$2 target=$3
  local port=${port_of[$target]} pid=${pid_of[$target]}
  local out=$work/wrk-$conns-$round-$target.txt
  local ticks_before ticks_after
  ticks_before=$(cpu_ticks "$pid")
  wrk_run "$port" "$conns" "$duration" "$out"
  ticks_after=$(cpu_ticks "$pid")

  local parsed
  parsed=$(parse_wrk "$out") || {
    echo "could not parse wrk output:" >&2
    cat "$out" >&2
    exit 1
  }
  local rps p50 p90 p99 requests errors cpu
  IFS=$'\t' read -r rps p50 p90 p99 requests errors <<<"$parsed"
  cpu=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$clk_tck" -v n="$requests" \
    'BEGIN { printf "%.2f", n ? t * 1e6 / hz / n : 0 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$round" "$target" "$rps" "$p50" "$p90" \
    "$p99" "$requests" "$errors" "$cpu" >>"$runs"
  printf '  round %s/%s %4s conns %-4s %9.0f req/s  p50 %-7s p90 %-7s p99 %-7s CPU %6s us/req%s\n' \
    "$round" "$rounds" "$conns" "$target" "$rps" "$(fmt_us "$p50")" "$(fmt_us "$p90")" "$(fmt_us "$p99")" \
    "$cpu" "$([ "$errors" -gt 0 ] && echo "  ERRORS $errors")"
  # A refused or failed request is answered without the upstream (or not at
  # all), which would make that gateway look cheaper than it is.
  [ "$errors" -eq 0 ] || fail "$target: $errors non-2xx answers or socket errors in round $round (see $out)"
}

report() {
  "$python" - "$runs" <<'EOF'
import csv, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1], newline=""), delimiter="\t"))
TARGET_RPS_RATIO = 0.90  # full/bare req/s at least this
TARGET_P99_DELTA_US = 100.0  # full-bare p99 under this


def fmt_us(us):
    return f"{us:.0f} us" if abs(us) < 1000 else f"{us / 1000:.2f} ms"


for conns in sorted({int(r["conns"]) for r in rows}):
    by = {}
    for r in rows:
        if int(r["conns"]) == conns:
            by.setdefault(r["target"], {})[int(r["round"])] = r
    bare, full = by["bare"], by["full"]
    same = sorted(set(bare) & set(full))

    def median(runs, field):
        return statistics.median(float(r[field]) for r in runs.values())

    def same_round(op, field):
        values = [op(float(full[n][field]), float(bare[n][field])) for n in same]
        return values, statistics.median(values)

    print(f"\n{conns} connections, {len(same)} rounds (medians over rounds)")
    print(f"  {'gateway':<8} {'req/s':>10} {'p50':>10} {'p90':>10} {'p99':>10} {'CPU us/req':>11} {'core busy':>10}")
    busy = {}
    for name, runs in (("bare", bare), ("full", full)):
        busy[name] = statistics.median(float(r["rps"]) * float(r["cpu_us_per_req"]) / 1e4 for r in runs.values())
        print(f"  {name:<8} {median(runs, 'rps'):>10.0f} {fmt_us(median(runs, 'p50_us')):>10} "
              f"{fmt_us(median(runs, 'p90_us')):>10} {fmt_us(median(runs, 'p99_us')):>10} "
              f"{median(runs, 'cpu_us_per_req'):>11.2f} {busy[name]:>9.0f}%")
    ratios, ratio = same_round(lambda f, b: f / b, "rps")
    p50s, p50 = same_round(lambda f, b: f - b, "p50_us")
    p99s, p99 = same_round(lambda f, b: f - b, "p99_us")
    cpus, cpu = same_round(lambda f, b: f - b, "cpu_us_per_req")
    print("  same round, by round: full/bare req/s " + " ".join(f"{v:.3f}" for v in ratios))
    print("                        full-bare p99    " + " ".join(f"{v:.0f}" for v in p99s) + " (us)")
    print("                        full-bare CPU    " + " ".join(f"{v:.2f}" for v in cpus) + " (us/req)")
    verdict = lambda ok: "met" if ok else "MISSED"
    print(f"full/bare req/s {ratio:.3f} (target >= {TARGET_RPS_RATIO:.2f})"
          f"  {verdict(ratio >= TARGET_RPS_RATIO)}  [{conns} conns]")
    print(f"full-bare p99 {p99:.0f} µs (target < {TARGET_P99_DELTA_US:.0f} µs)"
          f"  {verdict(p99 < TARGET_P99_DELTA_US)}  [{conns} conns]")
    print(f"full-bare p50 {p50:.0f} µs, CPU {cpu:.2f} µs/request [{conns} conns]")
    # CPU time per request hardly depends on what else the host runs, so on
    # a busy host this is the steadier estimate of the req/s ratio a
    # saturated gateway core would give.
    _, capacity = same_round(lambda f, b: b / f, "cpu_us_per_req")
    print(f"bare/full CPU per request {capacity:.3f} (the req/s ratio at full core use)"
          f"  {verdict(capacity >= TARGET_RPS_RATIO)}  [{conns} conns]")
    if conns > 1 and min(busy.values()) < 90:
        print(f"note: a gateway kept its core only {min(busy.values()):.0f}% busy, so req/s was bounded by the"
              " load core or other work on the host, not by the gateway: the req/s ratio and the p99"
              " difference do not measure the policies there; bare/full CPU per request is the honest"
              " req/s figure, and the 1-connection p99 difference the honest latency figure")
EOF
}

read -ra ports <<<"$(free_ports 5)"
upstream_port=${ports[0]}
status_port=${ports[1]}
bare_port=${ports[2]}
full_port=${ports[3]}
admin_port=${ports[4]}
declare -A port_of=([bare]=$bare_port [full]=$full_port)
declare -A pid_of=()

echo "== gateway policy cost: full policy set vs no policies"
echo "gateway: $gateway"
echo "nginx $(nginx -v 2>&1 | sed 's|.*/||') (upstream), $(wrk --version 2>&1 | head -n 1 | awk '{print "wrk", $2}')"
echo "pinning: $pinning"
echo "rounds: $rounds x $duration s, connections: $connections, 1 gateway worker each, access log off in both"
echo "full: request-id, jwt-auth (RS256, cache on), rate-limit (never refuses), admin with /metrics"
echo "bare: no plugins, admin (so /metrics) off; metric recording itself cannot be turned off and runs in both"
# Other work on the host is the usual cause of drift between rounds.
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
warn_if_busy

make_setup "$work" "$upstream_port" "$bare_port" "$full_port" "$admin_port"
token=$(cat "$work/token")

start_upstream
for target in bare full; do
  start_gateway "$target" "${port_of[$target]}" "$work/$target" "${gateway_pin[@]}"
  pid_of[$target]=$launched_pid
done
verify_gateways

# Warm-up: upstream connections, the token cache, the rate-limit plan's
# tables, lazy allocations, page faults.
for target in bare full; do
  wrk_run "${port_of[$target]}" 50 1 "$work/warmup-$target.txt"
done

for round in $(seq "$rounds"); do
  for conns in $connections; do
    for target in bare full; do
      measure "$round" "$conns" "$target"
    done
  done
done

rejected=$(rate_limit_rejections)
[ "$rejected" -eq 0 ] || fail "/metrics counts $rejected rate-limit rejections: the limits are too low"
echo "checked: no request refused or failed; /metrics counts 0 rate-limit rejections"

report
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
warn_if_busy

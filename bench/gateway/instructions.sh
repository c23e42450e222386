#!/usr/bin/env bash
# The cost of the policy set in instructions: user-space instructions per
# request of portico-gateway with the full policy set and with none, counted
# by callgrind. The same two configurations as run.sh (common.sh writes
# them), but a count that does not move with whatever else the host runs,
# so a change of a few hundred instructions per request shows.
#
# Usage: bench/gateway/instructions.sh [--gateway PATH] [--requests N]
#                                      [--warmup W] [--keep]
#
#   --gateway PATH  the portico-gateway binary; default
#                   build/examples/gateway/portico-gateway (use a release build:
#                   meson setup build-release -Dbuildtype=release)
#   --requests N    requests counted per configuration; default 2000
#   --warmup W      requests sent before those, not counted; default 300
#   --keep          keep the work directory, callgrind's output files with it
#                   (callgrind_annotate reads them)
#
# Needs valgrind, nginx and python3 with the cryptography module (as run.sh).
#
# Method: each configuration runs twice under `valgrind --tool=callgrind`,
# one worker, behind the same nginx upstream: once sent W requests, once
# W + N, each time over one keep-alive connection, one request at a time,
# with the request wrk sends in run.sh (Authorization: Bearer <token>
# included). Both runs pay the same start, warm-up (the upstream connection,
# the token cache, lazy allocations) and stop, so the difference of their
# totals over N is what one steady-state request costs: parsing, the
# policies, the upstream exchange, metric recording, and the libuv and libc
# work around them. Every thread of the process counts (callgrind's total),
# the kernel does not. Before the runs the script checks, without valgrind,
# that the full gateway runs its policies (run.sh's checks); during them,
# that every answer is a 200 and, from the full gateway, carries the
# rate-limit and request-id fields.
#
# Prints a line per configuration and then, e.g.,
#   instructions per request: bare 37985 full 54862 (+16877, +44%)
# The count moves by a few instructions per request between runs (timers
# that fire while valgrind runs slower, hash seeds); a change smaller than
# about 50 is noise. Exits 1 when something does not work.
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
requests=2000
warmup=300
keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --gateway) gateway=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage ;;
    *) echo "unknown option: $1" >&2; usage 2 >&2 ;;
  esac
done

for number in "$requests" "$warmup"; do
  [[ $number =~ ^[0-9]+$ ]] || { echo "not a number: $number" >&2; exit 2; }
done
if [ "$requests" -lt 1 ] || [ "$requests" -gt 100000 ] || [ "$warmup" -gt 100000 ]; then
  echo "need 1..100000 requests and at most 100000 warm-up requests" >&2
  exit 2
fi
[ -x "$gateway" ] || { echo "not an executable: $gateway (build it, or pass --gateway)" >&2; exit 1; }

require_tools valgrind nginx timeout

work=$(mktemp -d "${TMPDIR:-/tmp}/portico-gateway-instructions.XXXXXX")

# shellcheck source=bench/proxy/processes.sh
. "$here/../proxy/processes.sh"

nofile=$(ulimit -n)
load_pin=()
# Valgrind starts the gateway and, at its end, writes its counts slowly.
start_wait_tenths=600
stop_wait_tenths=1200

# drive TOKEN_FILE PORT COUNT [FIELD...]: COUNT requests over one
# keep-alive connection, one at a time; fails unless each is answered 200
# with every FIELD present.
drive() {
  timeout 600 "$python" - "$@" <<'EOF'
import socket, sys

token = open(sys.argv[1]).read().strip()
port, count = int(sys.argv[2]), int(sys.argv[3])
fields = [f.lower().encode() for f in sys.argv[4:]]
# What wrk sends in run.sh.
request = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           f"Authorization: Bearer {token}\r\n\r\n").encode()
sock = socket.create_connection(("127.0.0.1", port), timeout=60)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
pending = b""
for n in range(count):
    sock.sendall(request)
    while b"\r\n\r\n" not in pending:
        data = sock.recv(65536)
        if not data:
            sys.exit(f"request {n + 1}: the connection closed")
        pending += data
    head, pending = pending.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ")[1]
    names = {line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
             for line in lines[1:] if b":" in line}
    if status != b"200":
        sys.exit(f"request {n + 1}: status {status.decode()}, expected 200\n{head.decode()}")
    missing = [f.decode() for f in fields if f not in names]
    if missing:
        sys.exit(f"request {n + 1}: no {', '.join(missing)} in\n{head.decode()}")
    length = int(names.get(b"content-length", b"0"))
    while len(pending) < length:
        data = sock.recv(65536)
        if not data:
            sys.exit(f"request {n + 1}: the connection closed in the body")
        pending += data
    pending = pending[length:]
sock.close()
EOF
}

# callgrind_total FILE: the instructions of a callgrind output file.
callgrind_total() {
  awk '/^(summary|totals):/ { print $2; found = 1; exit } END { exit !found }' "$1"
}

# count_run NAME COUNT: one run of the NAME gateway under callgrind that is
# sent COUNT requests; sets `counted` to its total instructions. (Not in a
# $(...) subshell: the gateway must be this shell's own child.)
count_run() {
  local name=$1 count=$2
  local port=${port_of[$name]} dir=$work/$name-$count
  local out=$dir/callgrind.out
  local fields=()
  [ "$name" = full ] && fields=(X-RateLimit-Remaining X-Request-ID)
  start_gateway "$name" "$port" "$dir" valgrind --tool=callgrind --callgrind-out-file="$out" \
    --dump-line=no --compress-strings=no
  local pid=$launched_pid
  drive "$work/token" "$port" "$count" "${fields[@]}" >"$dir/client.log" 2>&1 || {
    cat "$dir/client.log" >&2
    fail "$name gateway under callgrind, $count requests"
  }
  stop_pid "$pid"
  [ -s "$out" ] || fail "callgrind wrote no counts for the $name gateway (see $dir)" "$(show_logs "$dir")"
  counted=$(callgrind_total "$out") || fail "no total in $out"
}

read -ra ports <<<"$(free_ports 5)"
upstream_port=${ports[0]}
status_port=${ports[1]}
bare_port=${ports[2]}
full_port=${ports[3]}
admin_port=${ports[4]}
declare -A port_of=([bare]=$bare_port [full]=$full_port)

echo "== gateway policy cost in instructions: full policy set vs no policies"
echo "gateway: $gateway"
echo "$(valgrind --version) (callgrind), nginx $(nginx -v 2>&1 | sed 's|.*/||') upstream"
echo "per configuration: $warmup warm-up requests, then $requests counted, one keep-alive connection, 1 gateway worker"

make_setup "$work" "$upstream_port" "$bare_port" "$full_port" "$admin_port"
token=$(cat "$work/token")
start_upstream

# The policies run (run.sh's checks), on gateways without valgrind.
declare -A pid_of=()
for target in bare full; do
  start_gateway "$target" "${port_of[$target]}" "$work/$target-check"
  pid_of[$target]=$launched_pid
done
verify_gateways
for target in bare full; do
  stop_pid "${pid_of[$target]}"
done

declare -A per_request=()
for target in bare full; do
  count_run "$target" "$warmup"
  short=$counted
  count_run "$target" $((warmup + requests))
  long=$counted
  [ "$long" -gt "$short" ] || fail "$target: $long instructions with more requests, $short with fewer"
  per_request[$target]=$(((long - short + requests / 2) / requests))
  printf '%s: %d instructions with %d requests, %d with %d: %d per request\n' "$target" "$short" \
    "$warmup" "$long" $((warmup + requests)) "${per_request[$target]}"
done

bare=${per_request[bare]}
full=${per_request[full]}
awk -v b="$bare" -v f="$full" 'BEGIN {
  printf "instructions per request: bare %d full %d (%+d, %+.0f%%)\n", b, f, f - b, (f - b) * 100 / b
}'

# Process bookkeeping and wrk parsing shared by the proxy and gateway
# benchmarks (sourced, not run).
# The sourcing script sets $work (a scratch directory) and $keep (1 keeps
# it) and $python first, and records every process it starts in
# running[PID]=name.
# Only our own children are ever signalled, and all are stopped on exit.
# A process gets $start_wait_tenths tenths of a second to listen and
# $stop_wait_tenths to exit on SIGTERM (defaults 100 and 50; a process
# under valgrind needs more of both).

# PID -> name of every process started here and not yet stopped.
declare -A running=()

# A PID is only signalled while it is still our own running child, so a PID
# reused by some other process after ours exited is never touched.
is_running_child() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -ra fields <<<"${stat##*) }"
  [ "${fields[1]}" = "$$" ] && [ "${fields[0]}" != Z ]
}

stop_pid() {
  local pid=$1
  if is_running_child "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "${stop_wait_tenths:-50}"); do
      is_running_child "$pid" || break
      sleep 0.1
    done
    if is_running_child "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  unset "running[$pid]"
}

cleanup() {
  local pid
  for pid in "${!running[@]}"; do
    stop_pid "$pid"
  done
  if [ "$keep" = 1 ]; then
    echo "work directory kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- starting processes and reading what they did -------------------------

free_ports() {
  "$python" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
}

wait_for_port() {
  local port=$1 pid=$2
  for _ in $(seq "${start_wait_tenths:-100}"); do
    is_running_child "$pid" || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

show_logs() {
  local log
  for log in "$1"/*.log; do
    [ -s "$log" ] && { echo "--- $log" && tail -n 20 "$log"; }
  done
  [ -f "$1/command" ] && echo "command: $(cat "$1/command")"
  return 0
}

# launch NAME DIR PORT CMD...: starts CMD in the background and waits until it
# listens on PORT; sets launched_pid.
launch() {
  local name=$1 dir=$2 port=$3
  shift 3
  "$@" >"$dir/stdout.log" 2>&1 &
  launched_pid=$!
  running[$launched_pid]=$name
  if ! wait_for_port "$port" "$launched_pid"; then
    echo "$name did not start listening on 127.0.0.1:$port; its output:" >&2
    show_logs "$dir" >&2
    exit 1
  fi
}

pid_tree() {
  local pid=$1 child
  echo "$pid"
  # shellcheck disable=SC2013 # the file is a space-separated list
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    pid_tree "$child"
  done
}

cpu_ticks() {
  local total=0 pid stat fields
  for pid in $(pid_tree "$1"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -ra fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# parse_wrk FILE: prints rps p50_us p90_us p99_us requests errors (tab-separated).
parse_wrk() {
  awk '
    function us(v,  n, unit) {
      n = v + 0; unit = v; sub(/^[0-9.]+/, "", unit)
      if (unit == "us") return n
      if (unit == "ms") return n * 1e3
      if (unit == "s") return n * 1e6
      if (unit == "m") return n * 6e7
      if (unit == "h") return n * 3.6e9
      return -1
    }
    /^ *50% / { p50 = us($2) }
    /^ *90% / { p90 = us($2) }
    /^ *99% / { p99 = us($2) }
    / requests in / { requests = $1 }
    /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /^Requests\/sec:/ { rps = $2 }
    END {
      if (rps == "" || p99 == "" || requests == "" || p50 < 0 || p90 < 0 || p99 < 0) exit 1
      printf "%s\t%.1f\t%.1f\t%.1f\t%d\t%d\n", rps, p50, p90, p99, requests, errors
    }' "$1"
}

fmt_us() {
  awk -v us="$1" 'BEGIN { if (us < 1000) printf "%.0fus", us; else if (us < 1e6) printf "%.2fms", us / 1e3; else printf "%.2fs", us / 1e6 }'
}

# Process bookkeeping shared by the proxy benchmarks (sourced, not run).
# The sourcing script sets $work (a scratch directory) and $keep (1 keeps
# it) first, and records every process it starts in running[PID]=name.
# Only our own children are ever signalled, and all are stopped on exit.

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
    for _ in $(seq 50); do
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

# shellcheck shell=bash disable=SC2154 # the sourcing script sets the variables named below
# The two gateways of the policy-cost benchmark and what they need, shared
# by run.sh (wall clock) and instructions.sh (instructions per request)
# (sourced, not run; run.sh's header describes the two configurations).
# The sourcing script sets $here (this folder), $work, $python, $gateway,
# the ports ($upstream_port, $status_port, $bare_port, $full_port,
# $admin_port), $nofile, load_pin (the command prefix that pins the
# upstream, maybe empty) and, once make_setup wrote it, $token; and it
# sources ../proxy/processes.sh first.

# --- helpers ----------------------------------------------------------------

# find_python: sets $python to $PYTHON, else python3, else the system's
# interpreter (where Debian's modules are) when the first python3 on PATH
# lacks the cryptography module the token signing needs.
find_python() {
  python=${PYTHON:-python3}
  if [ -z "${PYTHON:-}" ] && ! python3 -c 'import cryptography' 2>/dev/null &&
    [ -x /usr/bin/python3 ]; then
    python=/usr/bin/python3
  fi
}

# require_tools TOOL...: exits naming the first tool missing, or $python
# without the cryptography module.
require_tools() {
  local tool
  for tool in "$@" "$python"; do
    command -v "$tool" >/dev/null || {
      echo "missing: $tool (scripts/install-deps.sh installs the benchmark's tools)" >&2
      exit 1
    }
  done
  "$python" -c 'import cryptography' 2>/dev/null || {
    echo "$python has no cryptography module: install python3-cryptography, or set PYTHON" >&2
    exit 1
  }
}

# http_request PORT PATH [HEADER...]: the whole response (status line,
# header fields, body), over one HTTP/1.0 connection.
http_request() {
  local port=$1 path=$2 fd header
  shift 2
  exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
  {
    printf 'GET %s HTTP/1.0\r\nHost: bench\r\n' "$path"
    for header in "$@"; do
      printf '%s\r\n' "$header"
    done
    printf '\r\n'
  } >&"$fd"
  timeout 5 cat <&"$fd" | tr -d '\r' || true
  exec {fd}>&-
}

status_of() {
  head -n 1 | awk '{print $2}'
}

# --- the key, the token and the two configurations --------------------------

# make_setup DIR UPSTREAM_PORT BARE_PORT FULL_PORT ADMIN_PORT: writes
# DIR/token, DIR/bare.json and DIR/full.json (the private key stays in
# memory; only the public key is written, into full.json).
make_setup() {
  "$python" - "$@" <<'EOF'
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

out, upstream_port, bare_port, full_port, admin_port = sys.argv[1], *map(int, sys.argv[2:])
issuer, audience, subject, kid = "https://idp.bench.invalid", "bench-api", "bench-user", "bench-rs256"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
public_pem = key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
now = int(time.time())
claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": now,
          "exp": now + 10 * 365 * 86400, "roles": ["reader"], "scope": "bench"}
signing_input = b64url(compact({"alg": "RS256", "typ": "JWT", "kid": kid})) + "." + b64url(compact(claims))
signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
with open(f"{out}/token", "w") as f:
    f.write(signing_input + "." + b64url(signature) + "\n")


def config(port, admin, plugins, consumers=(), plans=()):
    return {
        "listeners": [{"address": "127.0.0.1", "port": port, "workers": 1}],
        "admin": admin,
        "access_log": {"enabled": False},
        # Only so that stopping a gateway between runs does not wait.
        "server": {"drain_timeout": "1s"},
        "services": [{"name": "upstream", "endpoints": [{"address": "127.0.0.1", "port": upstream_port}]}],
        "routes": [{"name": "bench", "paths": ["/**"], "service": "upstream"}],
        "plans": list(plans),
        "consumers": list(consumers),
        "plugins": plugins,
    }


never_refused = {"second": 1000000000, "minute": 1000000000}
full = config(
    full_port,
    {"enabled": True, "address": "127.0.0.1", "port": admin_port},
    [
        {"name": "request-id"},
        {"name": "jwt-auth", "config": {
            "pem_keys": [{"pem": public_pem, "kid": kid, "alg": "RS256"}],
            "algorithms": ["RS256"], "issuers": [issuer], "audiences": [audience],
            "cache_capacity": 4096, "cache_ttl": "5m"}},
        {"name": "rate-limit", "config": {"limit_by": "consumer", "limits": never_refused}},
    ],
    consumers=[{"id": "bench", "plan": "bench", "jwt": [{"issuer": issuer, "subject": subject}]}],
    plans=[{"name": "bench", "limits": never_refused}],
)
bare = config(bare_port, {"enabled": False}, [])
for name, doc in (("full", full), ("bare", bare)):
    with open(f"{out}/{name}.json", "w") as f:
        json.dump(doc, f, indent=2)
EOF
}

# --- the processes ----------------------------------------------------------

start_upstream() {
  local dir=$work/upstream
  mkdir -p "$dir"
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$upstream_port|g" -e "s|@STATUS_PORT@|$status_port|g" \
    -e "s|@NOFILE@|$nofile|g" -e "s|@WORKER_CONNECTIONS@|$((nofile - 16))|g" \
    "$here/../proxy/upstream.nginx.conf.in" >"$dir/nginx.conf"
  launch upstream "$dir" "$upstream_port" "${load_pin[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
}

# start_gateway NAME PORT DIR [WRAPPER...]: runs the gateway on
# $work/NAME.json behind WRAPPER (taskset, valgrind...), its output in DIR;
# sets launched_pid.
start_gateway() {
  local name=$1 port=$2 dir=$3
  shift 3
  mkdir -p "$dir"
  if ! "$gateway" --check "$work/$name.json" >"$dir/check.log" 2>&1; then
    echo "the $name configuration does not validate:" >&2
    cat "$dir/check.log" >&2
    exit 1
  fi
  launch "gateway-$name" "$dir" "$port" "$@" "$gateway" --config "$work/$name.json"
}

fail() {
  echo "check failed: $1" >&2
  [ $# -gt 1 ] && printf '%s\n' "$2" | head -n 30 >&2
  exit 1
}

# Proves the full gateway runs its policies before a single figure is taken.
verify_gateways() {
  local response status metrics
  response=$(http_request "$bare_port" / "Authorization: Bearer $token")
  status=$(status_of <<<"$response")
  [ "$status" = 200 ] || fail "bare gateway answered $status with the token, expected 200" "$response"

  response=$(http_request "$full_port" /)
  status=$(status_of <<<"$response")
  [ "$status" = 401 ] || fail "full gateway answered $status without a token, expected 401" "$response"
  grep -qi '^WWW-Authenticate: Bearer' <<<"$response" ||
    fail "full gateway's 401 has no WWW-Authenticate: Bearer" "$response"

  response=$(http_request "$full_port" / "Authorization: Bearer $token")
  status=$(status_of <<<"$response")
  [ "$status" = 200 ] || fail "full gateway answered $status with the token, expected 200" "$response"
  local field
  for field in X-RateLimit-Limit X-RateLimit-Remaining X-RateLimit-Reset X-Request-ID; do
    grep -qi "^$field: " <<<"$response" || fail "full gateway's 200 has no $field" "$response"
  done

  metrics=$(http_request "$admin_port" /metrics)
  grep -q '^portico_requests_total{route="bench",service="upstream",code_class="2xx"} [1-9]' <<<"$metrics" ||
    fail "/metrics on the admin port does not count the 200" "$metrics"
  grep -q '^portico_requests_total{route="bench",service="upstream",code_class="4xx"} [1-9]' <<<"$metrics" ||
    fail "/metrics on the admin port does not count the 401" "$metrics"

  echo "checked: full gateway without token -> 401; with token -> 200 with $(grep -i '^X-RateLimit-Limit:' <<<"$response"), X-Request-ID; /metrics counts both"
}

#!/usr/bin/env python3
"""Requests/s through a gateway with one filter written in Python (the
ctypes binding of examples/python) against the same filter written in C,
and against no filter, side by side in one run.

Usage: filter_bench.py [--library PATH] [--c-filter PATH] [--rounds N]
                       [--duration S] [--connections N] [--workers N] [--quick]

  --library PATH   libportico's shared object (default: $PORTICO_LIBRARY, else
                   the one the build configured, else the loader's search)
  --c-filter PATH  the shared object built from bench/python/bench_filter.c
                   (default: $PORTICO_BENCH_FILTER, else the one the build made)
  --rounds N       interleaved rounds (none, C, Python, then again); default 5
  --duration S     seconds per wrk run; default 5
  --connections N  wrk connections; default 50
  --workers N      gateway worker threads; default 1
  --quick          2 rounds of 2 s (a smoke run for CI, about 20 s)

The three gateways run in this process, each with one route to the same C
in-process handler (which answers 200 with the X-Tenant header it received),
one worker and no access log or admin listener:

  none    no filter
  C       portico_bench_tenant_filter (bench_filter.c) through NativeFilter
  Python  the same filter as a @portico.filter function

The filter: no X-Api-Key answers 401 at once; otherwise the key is copied to
X-Tenant. wrk sends the same request, with the key, to all three. Before
measuring, each gateway is checked (with the key: 200 and the key echoed,
or "-" without a filter; without it: 401 from the filtered ones), and after
the runs each filter must have been called at least once per completed
request, with no non-2xx answer or socket error.

Method: on a host with two CPUs or more, this process (so the gateway's
threads) is pinned to the second CPU and wrk to the first. Rounds are short
and interleaved, figures are medians over rounds, and the Python/C ratio is
taken within each round first. CPU per request is this process's user+system
time during a run divided by the requests wrk completed: it moves far less
with other load on the host than req/s does. With more than one worker the
Python callbacks still run one at a time (the GIL).

Bounded: every wrk run is killed after its duration plus 30 s; traffic goes
to 127.0.0.1 only; the only process started is wrk.
"""
import argparse
import ctypes
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys

# Filled in by the build (meson configure_file) for the copy it installs in
# the build directory; the source file itself falls back to the environment.
CONFIGURED = {"library": "@PORTICO_LIBRARY@", "c_filter": "@PORTICO_BENCH_FILTER@",
              "binding": "@PORTICO_PYTHON_DIR@"}


def configured(name):
    value = CONFIGURED[name]
    return "" if value.startswith("@") else value


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", dest="libportico",
                        default=os.environ.get("PORTICO_LIBRARY") or configured("library"))
    parser.add_argument("--c-filter", default=os.environ.get("PORTICO_BENCH_FILTER")
                        or configured("c_filter"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 2, 2
    if not (1 <= args.rounds <= 100 and 1 <= args.duration <= 600 and 1 <= args.connections <= 10000
            and 1 <= args.workers <= 64):
        parser.error("need 1..100 rounds, 1..600 seconds, 1..10000 connections, 1..64 workers")
    if not args.c_filter:
        parser.error("no --c-filter: build bench/python/bench_filter.c (meson -Dbench=true) "
                     "or pass its path")
    return args


def import_portico(library):
    if library:
        os.environ["PORTICO_LIBRARY"] = library
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (configured("binding"),
                      os.path.join(here, "..", "..", "examples", "python")):
        if candidate and os.path.isdir(os.path.join(candidate, "portico")):
            sys.path.insert(0, candidate)
            break
    import portico
    return portico


def fail(message):
    print(f"check failed: {message}", file=sys.stderr)
    sys.exit(1)


def pin():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return [], "skipped: only one CPU available, wrk and the gateways share it"
    os.sched_setaffinity(0, {cpus[1]})
    taskset = shutil.which("taskset")
    return ([taskset, "-c", str(cpus[0])] if taskset else [],
            f"wrk on CPU {cpus[0]}, this process (the gateways) on CPU {cpus[1]}")


def get(port, headers):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def us(text):
    value, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", text).groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[unit]


def parse_wrk(output):
    fields = {}
    for name, pattern in (("rps", r"^Requests/sec:\s+([0-9.]+)"),
                          ("requests", r"^\s*(\d+) requests in"),
                          ("p50", r"^\s*50%\s+(\S+)"), ("p99", r"^\s*99%\s+(\S+)")):
        m = re.search(pattern, output, re.M)
        if not m:
            raise ValueError(f"no {name} in wrk's output:\n{output}")
        fields[name] = m.group(1)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors += int(m.group(1)) if m else 0
    return {"rps": float(fields["rps"]), "requests": int(fields["requests"]),
            "p50": us(fields["p50"]), "p99": us(fields["p99"]), "errors": errors}


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wrk(pin_cmd, port, connections, duration):
    command = pin_cmd + ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
                         "--latency", "-H", "X-Api-Key: acme", f"http://127.0.0.1:{port}/"]
    before = cpu_seconds()
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30)
    cpu = cpu_seconds() - before
    if done.returncode != 0:
        fail(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    run = parse_wrk(done.stdout)
    run["cpu_us"] = cpu * 1e6 / run["requests"] if run["requests"] else 0.0
    return run


def main():
    args = parse_args()
    if not shutil.which("wrk"):
        fail("wrk is not installed (Debian's wrk; scripts/install-deps.sh installs it)")
    portico = import_portico(args.libportico)
    native = ctypes.CDLL(os.path.abspath(args.c_filter))
    native.portico_bench_filter_calls.restype = ctypes.c_uint64
    pin_cmd, pinning = pin()

    python_calls = [0]

    @portico.filter("tenant-py")
    def tenant(request):
        python_calls[0] += 1
        key = request.header("X-Api-Key")
        if key is None:
            return portico.Response(401, b"no key\n")
        request.set_header("X-Tenant", key)

    tenant_c = portico.NativeFilter("tenant-c", on_request=native.portico_bench_tenant_filter,
                                    library=native)
    answer = portico.NativeHandler("answer", native.portico_bench_tenant_handler, library=native)

    def config(plugin):
        return {
            "listeners": [{"address": "127.0.0.1", "port": 0, "workers": args.workers}],
            "admin": {"enabled": False},
            "access_log": {"enabled": False},
            "server": {"drain_timeout": "1s"},
            "services": [{"name": "answer", "handler": "answer"}],
            "routes": [{"name": "all", "paths": ["/**"], "service": "answer"}],
            "plugins": [{"name": plugin}] if plugin else [],
        }

    reports = []
    targets = {"none": None, "C": "tenant-c", "Python": "tenant-py"}
    gateways = {name: portico.Gateway(config(plugin), filters=[tenant, tenant_c], handlers=[answer],
                                      port=0, on_error=reports.append)
                for name, plugin in targets.items()}

    print("== requests/s through a gateway with one filter: Python (ctypes binding) vs C")
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()
    print(f"libportico {portico.libportico_version}, Python {sys.version.split()[0]}, "
          f"wrk {wrk_version[1] if len(wrk_version) > 1 else '?'}")
    print(f"pinning: {pinning}")
    print(f"rounds: {args.rounds} x {args.duration} s, {args.connections} connections, "
          f"{args.workers} gateway worker(s), access log off")
    print(f"load average at start: {' '.join(open('/proc/loadavg').read().split()[:3])}")

    try:
        for gw in gateways.values():
            gw.start()
        ports = {name: gw.port() for name, gw in gateways.items()}
        for name, port in ports.items():
            status, body = get(port, {"X-Api-Key": "acme"})
            expected = b"-" if name == "none" else b"acme"
            if (status, body) != (200, expected):
                fail(f"{name}: with the key, answered {status} {body!r}, expected 200 {expected!r}")
            if name != "none":
                status, body = get(port, {})
                if status != 401:
                    fail(f"{name}: without a key, answered {status} {body!r}, expected 401")
        print("checked: with the key, 200 and X-Tenant set by the filter (none: no X-Tenant); "
              "without it, 401 from each filter")

        for port in ports.values():  # warm-up
            wrk(pin_cmd, port, args.connections, 1)
        c_before, py_before = native.portico_bench_filter_calls(), python_calls[0]
        runs = {name: [] for name in targets}
        for round_ in range(1, args.rounds + 1):
            for name, port in ports.items():
                run = wrk(pin_cmd, port, args.connections, args.duration)
                runs[name].append(run)
                print(f"  round {round_}/{args.rounds} {name:<6} {run['rps']:9.0f} req/s  "
                      f"p50 {run['p50']:7.0f} us  p99 {run['p99']:7.0f} us  "
                      f"CPU {run['cpu_us']:6.2f} us/req")
                if run["errors"]:
                    fail(f"{name}: {run['errors']} non-2xx answers or socket errors in round {round_}")
        c_calls = native.portico_bench_filter_calls() - c_before
        py_calls = python_calls[0] - py_before
        c_done = sum(r["requests"] for r in runs["C"])
        py_done = sum(r["requests"] for r in runs["Python"])
        if c_calls < c_done or py_calls < py_done:
            fail(f"filter calls below completed requests: C {c_calls} < {c_done} or "
                 f"Python {py_calls} < {py_done}")
        if reports:
            fail(f"the gateways reported errors: {reports[:3]}")
        print(f"checked: no failed request; the C filter ran {c_calls} times for {c_done} "
              f"requests, the Python one {py_calls} for {py_done}")
    finally:
        for gw in gateways.values():
            gw.close()

    def median(name, field):
        return statistics.median(r[field] for r in runs[name])

    print(f"\nmedians over {args.rounds} rounds")
    print(f"  {'filter':<8} {'req/s':>10} {'p50 us':>8} {'p99 us':>8} {'CPU us/req':>11}")
    for name in targets:
        print(f"  {name:<8} {median(name, 'rps'):>10.0f} {median(name, 'p50'):>8.0f} "
              f"{median(name, 'p99'):>8.0f} {median(name, 'cpu_us'):>11.2f}")
    ratios = [p["rps"] / c["rps"] for p, c in zip(runs["Python"], runs["C"])]
    cost = [p["cpu_us"] - c["cpu_us"] for p, c in zip(runs["Python"], runs["C"])]
    c_cost = [c["cpu_us"] - n["cpu_us"] for c, n in zip(runs["C"], runs["none"])]
    capacity = [c["cpu_us"] / p["cpu_us"] for p, c in zip(runs["Python"], runs["C"]) if p["cpu_us"]]
    print("  same round, by round: Python/C req/s " + " ".join(f"{r:.3f}" for r in ratios))
    print(f"Python/C req/s {statistics.median(ratios):.3f} (median of same-round ratios)")
    print(f"C/Python CPU per request {statistics.median(capacity):.3f} "
          "(the req/s ratio at full core use)")
    print(f"the Python filter costs {statistics.median(cost):.2f} us of CPU per request more than "
          f"the C one; the C filter {statistics.median(c_cost):.2f} us more than none")
    print(f"load average at end: {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()

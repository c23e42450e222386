#!/usr/bin/env python3
"""Configuration at scale: a gateway with 10,000 routes and 1,000 consumers.

Prints how long the gateway takes to start on it and to reload it (POST
/reload), its resident memory after each, and what a client sending
requests the whole time saw: failures, and latency percentiles before,
during and after the reloads. Everything runs on 127.0.0.1: one upstream
(a threaded Python HTTP server) and portico-gateway.

    bench/gateway/scale.py [--gateway build-release/examples/gateway/portico-gateway]
                           [--routes 10000] [--consumers 1000] [--reloads 5] [--quick]

Figures (debugoptimized, 2 cores shared with other work, so wall times
swing 2-3x from run to run; --reloads 8). Reading the configuration is most
of a reload. The router the validator builds to find conflicts used to be
built again by the proxy; it is now handed over, and Router::reserve sizes
its node array once. Per reload, counted by callgrind on one document:
693 M instructions before, 593 M after (Router::add 128 M -> 60 M: one
build instead of two; the proxy's compile 76 M -> 7 M). Resident memory
after 8 reloads: 170 MiB before, 153 MiB after (80.5 and 77.1 MiB at
start). Start: about 1 s either way (the metric series of 10,000 routes are
a large part of it). Reloads, in back-to-back runs: 235-1611 ms before,
251-798 ms after.
"""
import argparse
import http.client
import http.server
import json
import os
import re
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time


class Upstream(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out in two writes: with Nagle's algorithm the
    # body waits for the gateway's delayed ACK (~40 ms), which would be
    # measured as the gateway's latency.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def document(routes, consumers, upstream_port, generation):
    services = [{"name": f"svc{i}", "endpoints": [{"address": "127.0.0.1", "port": upstream_port}]}
                for i in range(10)]
    route_list = []
    for i in range(routes):
        route_list.append({
            "name": f"r{i}",
            "paths": [f"/api/v1/group{i % 100}/res{i}/{{id}}"],
            "methods": ["GET"],
            "service": f"svc{i % 10}",
            "plugins": [{"name": "key-auth"}] if i % 2 == 0 else [],
        })
    consumer_list = [{"id": f"c{i}", "plan": "basic", "api_keys": [f"key-{generation}-{i:06d}"]}
                     for i in range(consumers)]
    return {
        "listeners": [{"address": "127.0.0.1", "port": 0, "workers": 2}],
        "admin": {"address": "127.0.0.1", "port": 0},
        "access_log": {"enabled": False},
        "services": services,
        "routes": route_list,
        "plans": [{"name": "basic", "limits": {"second": 1000000}}],
        "consumers": consumer_list,
        "plugins": [{"name": "request-id"}],
    }


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class Client(threading.Thread):
    """Keep-alive GETs of an open route, recording (time, latency, ok)."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop, self.samples = port, stop, []

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        deadline = time.time() + 600  # bounded whatever happens
        while not self.stop.is_set() and time.time() < deadline:
            path = f"/api/v1/group{(2 * i + 1) % 100}/res{2 * i + 1}/7"  # odd routes: no key
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except Exception:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.samples.append((time.time(), time.perf_counter() - t0, ok))
            i = (i + 1) % 4000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", default="build/examples/gateway/portico-gateway")
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--consumers", type=int, default=1000)
    ap.add_argument("--reloads", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.routes, a.consumers, a.reloads = 1000, 100, 2

    upstream = Upstream(("127.0.0.1", 0), Answer)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    tmp = tempfile.TemporaryDirectory()
    path = os.path.join(tmp.name, "scale.json")
    docs = []
    for g in range(2):
        text = json.dumps(document(a.routes, a.consumers, upstream.server_address[1], g))
        docs.append(text)
    with open(path, "w") as f:
        f.write(docs[0])

    t0 = time.perf_counter()
    proc = subprocess.Popen([a.gateway, "--config", path, "--port", "0", "--admin-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = admin = None
    deadline = time.time() + 120
    while time.time() < deadline and (port is None or admin is None):
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on [0-9.]+:(\d+)", line)
        port = int(m.group(1)) if m else port
        m = re.search(r"admin API on [0-9.]+:(\d+)", line)
        admin = int(m.group(1)) if m else admin
    start_s = time.perf_counter() - t0
    if port is None or admin is None:
        proc.kill()
        sys.exit("gateway did not start: " + proc.stderr.read())
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    print(f"scale config: {a.routes} routes, {a.consumers} consumers, "
          f"{len(docs[0]) / 1e6:.1f} MB of JSON, 2 workers")
    print(f"scale start:  {start_s * 1000:8.0f} ms to listening, RSS {rss_kib(proc.pid) / 1024:.1f} MiB")

    stop = threading.Event()
    client = Client(port, stop)
    client.start()
    time.sleep(1.0)
    windows = []
    try:
        for r in range(a.reloads):
            body = docs[(r + 1) % 2].encode()
            conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=120)
            t1 = time.time()
            conn.request("POST", "/reload", body=body)
            resp = conn.getresponse()
            text = resp.read().decode()
            t2 = time.time()
            windows.append((t1, t2))
            print(f"scale reload {r + 1}: {(t2 - t1) * 1000:8.0f} ms, HTTP {resp.status} {text.strip()}, "
                  f"RSS {rss_kib(proc.pid) / 1024:.1f} MiB")
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        stop.set()
        client.join(timeout=15)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

    during = [s for s in client.samples if any(t1 <= s[0] <= t2 + 0.05 for t1, t2 in windows)]
    outside = [s for s in client.samples if s not in during]
    failed = sum(1 for s in client.samples if not s[2])
    ms = lambda xs, p: percentile([x[1] * 1000 for x in xs], p)
    print(f"scale client: {len(client.samples)} requests, {failed} failed")
    print(f"scale latency outside reloads: n={len(outside)} p50 {ms(outside, 50):.2f} ms "
          f"p99 {ms(outside, 99):.2f} ms max {ms(outside, 100):.2f} ms")
    print(f"scale latency during reloads:  n={len(during)} p50 {ms(during, 50):.2f} ms "
          f"p99 {ms(during, 99):.2f} ms max {ms(during, 100):.2f} ms")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

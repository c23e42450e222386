"""Runs the built portico-gateway binary against real upstreams on 127.0.0.1.

Every gateway listens on ephemeral ports (--port 0 --admin-port 0) and
prints them; every upstream is a real HTTP server on a thread of the test.
"""
import http.client
import http.server
import json
import os
import re
import signal
import socketserver
import subprocess
import tempfile
import threading
import time

GATEWAY = os.environ.get("PORTICO_GATEWAY", "build/examples/gateway/portico-gateway")


class Upstream:
    """An HTTP/1.1 server that records each request and answers with `reply`
    (a function of the recorded request returning (status, headers, body))."""

    def __init__(self, reply=None):
        self.requests = []
        self.reply = reply or (lambda req: (200, {"Content-Type": "application/json"},
                                            json.dumps({"path": req["path"]}).encode()))
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                req = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body}
                outer.requests.append(req)
                status, headers, payload = outer.reply(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_one

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Gateway:
    """portico-gateway on a config file, on ephemeral ports."""

    def __init__(self, config, expect_start=True):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "gateway.json")
        self.write(config)
        self.proc = subprocess.Popen(
            [GATEWAY, "--config", self.path, "--port", "0", "--admin-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = self.admin_port = None
        if not expect_start:
            return
        deadline = time.time() + 10
        while time.time() < deadline and (self.port is None or self.admin_port is None):
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on [0-9.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            m = re.search(r"admin API on [0-9.]+:(\d+)", line)
            if m:
                self.admin_port = int(m.group(1))
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("gateway did not start: " + self.proc.stderr.read())
        # The rest of stdout (reload messages) is drained in the background.
        self.output = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def write(self, config):
        with open(self.path, "w") as f:
            f.write(config if isinstance(config, str) else json.dumps(config))

    def request(self, method, path, headers=None, body=None, port=None):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=10)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        result = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        conn.close()
        return result

    def admin(self, method, path, body=None):
        return self.request(method, path, body=body, port=self.admin_port)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()
        return self.proc.returncode


def check(config_text):
    """portico-gateway --check on a document: (exit code, stderr lines)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(config_text)
        path = f.name
    try:
        p = subprocess.run([GATEWAY, "--check", path], capture_output=True, text=True,
                           timeout=30)
        lines = [l[len(path) + 2:] for l in p.stderr.splitlines() if l.startswith(path + ": ")]
        return p.returncode, lines
    finally:
        os.unlink(path)


def service(name, port, **extra):
    s = {"name": name, "endpoints": [{"address": "127.0.0.1", "port": port}]}
    s.update(extra)
    return s


def config(services, routes, **extra):
    c = {"listeners": [{"address": "127.0.0.1", "port": 0, "workers": 2}],
         "admin": {"address": "127.0.0.1", "port": 0},
         "access_log": {"enabled": False},
         "services": services, "routes": routes}
    c.update(extra)
    return c

"""Runs the built portico-gateway binary against real upstreams on 127.0.0.1.

Every gateway listens on ephemeral ports (--port 0 --admin-port 0) and
prints them; every upstream is a real HTTP server on a thread of the test.
Every wait is bounded, and only processes started here are signalled.
"""
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import queue
import re
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GATEWAY = os.environ.get("PORTICO_GATEWAY",
                         os.path.join(REPO, "build", "examples", "gateway", "portico-gateway"))
START_TIMEOUT = 10
REQUEST_TIMEOUT = 10


class Upstream:
    """An HTTP/1.1 server that records each request and answers with `reply`
    (a function of the recorded request returning (status, headers, body)).

    By default it answers 200 with {"upstream": name, "path": ...}, so a test
    can tell which upstream a request reached. `delay` holds every answer."""

    def __init__(self, reply=None, name="upstream", delay=0.0):
        self.name = name
        self.delay = delay
        self.requests = []
        self.arrived = threading.Event()
        self.reply = reply or self.default_reply
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The head and the body are two writes: without this, Nagle and
            # delayed ACKs hold every response for tens of milliseconds.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                req = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "header_list": [(k.lower(), v) for k, v in self.headers.items()],
                       "body": body}
                outer.requests.append(req)
                outer.arrived.set()
                if outer.delay:
                    time.sleep(outer.delay)
                status, headers, payload = outer.reply(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_one

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def default_reply(self, req):
        return (200, {"Content-Type": "application/json"},
                json.dumps({"upstream": self.name, "path": req["path"]}).encode())

    def last(self):
        return self.requests[-1] if self.requests else None

    def clear(self):
        self.requests.clear()
        self.arrived.clear()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def refused_port():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Response:
    def __init__(self, status, header_list, body):
        self.status = status
        self.header_list = [(k.lower(), v) for k, v in header_list]
        self.headers = dict(self.header_list)
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Response({self.status}, {self.headers}, {self.body[:200]!r})"


def send(conn, method, path, headers=None, body=None):
    """One request on an http.client connection. `headers` is a dict or a
    list of (name, value) pairs, so a name may be sent twice."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in pairs}
    conn.putrequest(method, path, skip_host="host" in names, skip_accept_encoding=True)
    for k, v in pairs:
        conn.putheader(k, v)
    if body is not None and "content-length" not in names:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    return Response(r.status, r.getheaders(), data)


class Client:
    """A keep-alive client connection; reconnects when the gateway closed it."""

    def __init__(self, port, timeout=REQUEST_TIMEOUT):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, headers=None, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            r = send(self.conn, method, path, headers, body)
        except Exception:
            self.close()
            raise
        if r.headers.get("connection", "").lower() == "close":
            self.close()
        return r

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Gateway:
    """portico-gateway on a config file, on ephemeral ports."""

    def __init__(self, config):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "gateway.json")
        self.write(config)
        self.output = []
        self.errors = []
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(
            [GATEWAY, "--config", self.path, "--port", "0", "--admin-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._drains = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.output, True),
                             daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.errors, False),
                             daemon=True)]
        for t in self._drains:
            t.start()
        self.port = self.admin_port = None
        try:
            self._await_ports()
        except Exception:
            self.stop()
            raise

    def _drain(self, stream, into, announce):
        for line in stream:
            into.append(line)
            if announce:
                self._lines.put(line)
        if announce:
            self._lines.put(None)

    def _await_ports(self):
        deadline = time.monotonic() + START_TIMEOUT
        while self.port is None or self.admin_port is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("gateway did not print its ports in time")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                raise RuntimeError(f"gateway exited ({self.proc.returncode}): "
                                   + "".join(self.errors))
            m = re.search(r"listening on [0-9.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            m = re.search(r"admin API on [0-9.]+:(\d+)", line)
            if m:
                self.admin_port = int(m.group(1))

    def write(self, config):
        with open(self.path, "w") as f:
            f.write(config if isinstance(config, str) else json.dumps(config))

    def request(self, method, path, headers=None, body=None, port=None):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port,
                                          timeout=REQUEST_TIMEOUT)
        try:
            return send(conn, method, path, headers, body)
        finally:
            conn.close()

    def get(self, path, headers=None):
        return self.request("GET", path, headers)

    def admin(self, method, path, body=None):
        return self.request(method, path, body=body, port=self.admin_port)

    def reload(self, config=None):
        """POST /reload with a document (or none: the file is read again)."""
        body = b"" if config is None else (
            config if isinstance(config, str) else json.dumps(config)).encode()
        return self.admin("POST", "/reload", body)

    def metrics(self):
        return self.admin("GET", "/metrics").body.decode()

    def wait_output(self, pattern, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(pattern, line) for line in list(self.output)):
                return True
            time.sleep(0.02)
        return False

    def signal(self, sig):
        """Sends `sig` once the gateway has a handler for it: it prints its
        ports before it installs its handlers, and a signal sent in between
        meets the default action (SIGHUP would kill it)."""
        deadline = time.monotonic() + 5
        while not self.catches(sig) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def catches(self, sig):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) >> (int(sig) - 1) & 1)
        except OSError:
            pass
        return False

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self._drains:
            t.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.dir.cleanup()
        return self.proc.returncode


def run_config(config_text, timeout=10):
    """Starts the gateway on a document that should be refused:
    (exit code, stderr). A gateway that starts anyway is stopped."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "gateway.json")
        with open(path, "w") as f:
            f.write(config_text)
        proc = subprocess.Popen([GATEWAY, "--config", path, "--port", "0", "--admin-port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
            return None, err
        return proc.returncode, err


def check(config_text):
    """portico-gateway --check on a document: (exit code, stderr lines
    without the file name, stdout)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "gateway.json")
        with open(path, "w") as f:
            f.write(config_text)
        p = subprocess.run([GATEWAY, "--check", path], capture_output=True, text=True,
                           timeout=30)
        lines = [l[len(path) + 2:] for l in p.stderr.splitlines() if l.startswith(path + ": ")]
        return p.returncode, lines, p.stdout


def service(name, port, **extra):
    s = {"name": name, "endpoints": [{"address": "127.0.0.1", "port": port}]}
    s.update(extra)
    return s


def config(services, routes, workers=2, **extra):
    c = {"listeners": [{"address": "127.0.0.1", "port": 0, "workers": workers}],
         "admin": {"address": "127.0.0.1", "port": 0},
         "access_log": {"enabled": False},
         "services": services, "routes": routes}
    c.update(extra)
    return c


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(secret, claims, kid="k1", header=None):
    """A JWS compact token signed with HMAC-SHA256."""
    head = {"alg": "HS256", "typ": "JWT", "kid": kid}
    head.update(header or {})
    signing_input = (b64url(json.dumps(head, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def hs256_jwks(secret, kid="k1"):
    return {"keys": [{"kty": "oct", "kid": kid, "alg": "HS256", "k": b64url(secret)}]}


def sha256_key(key):
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class GatewayTestCase(unittest.TestCase):
    """Asserts shared by the suites."""

    def assertJsonError(self, r, status, phrase=None):
        """The one error shape: {"error": ..., "request_id": ...}."""
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r)
        doc = r.json()
        self.assertEqual(set(doc), {"error", "request_id"}, doc)
        self.assertIsInstance(doc["error"], str)
        self.assertIsInstance(doc["request_id"], str)
        self.assertTrue(doc["request_id"], doc)
        if "x-request-id" in r.headers:
            self.assertEqual(doc["request_id"], r.headers["x-request-id"])
        if phrase is not None:
            self.assertIn(phrase, doc["error"])
        return doc

    def assertFromUpstream(self, r, name, path=None):
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual(doc["upstream"], name, doc)
        if path is not None:
            self.assertEqual(doc["path"], path, doc)
        return doc

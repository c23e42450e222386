"""Shared helpers: a recording upstream, HTTP requests over loopback, a
gateway configuration builder and HS256 tokens, all with the standard
library. Every gateway listens on an ephemeral port of 127.0.0.1."""
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import socket
import threading
import time

import pytest

TIMEOUT = 10


class Upstream:
    """An HTTP/1.1 server on a thread that records every request and
    answers 200 with {"path": ...}."""

    def __init__(self):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": body})
                payload = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def last(self):
        assert self.requests, "the upstream received no request"
        return self.requests[-1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Reply({self.status}, {self.headers}, {self.body[:200]!r})"


def request(port, path="/", method="GET", headers=None, body=None):
    """One request on a new connection; the reply."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     response.read())
    finally:
        conn.close()


def raw_request(port, data):
    """Sends raw bytes (anything http.client would refuse to send) and
    reads the whole reply (the request should say Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def config(routes, services, plugins=(), workers=1, **extra):
    """A configuration on 127.0.0.1 (the port is given to the Gateway) with
    the access log and the admin listener off unless `extra` says so."""
    doc = {
        "listeners": [{"address": "127.0.0.1", "port": 0, "workers": workers}],
        "admin": {"enabled": False},
        "access_log": {"enabled": False},
        "server": {"drain_timeout": "1s"},
        "services": list(services),
        "routes": list(routes),
        "plugins": list(plugins),
    }
    doc.update(extra)
    return doc


def upstream_service(upstream, name="upstream"):
    return {"name": name, "urls": [f"http://127.0.0.1:{upstream.port}"]}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HMAC_SECRET = b"a test secret of at least thirty-two bytes!"
HMAC_KID = "test-hs256"


def hs256_token(claims, secret=HMAC_SECRET, kid=HMAC_KID):
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def hs256_jwks(secret=HMAC_SECRET, kid=HMAC_KID):
    return {"keys": [{"kty": "oct", "kid": kid, "alg": "HS256", "k": b64url(secret)}]}

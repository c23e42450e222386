#!/usr/bin/env python3
"""End-to-end tests of portico-gateway: proxying and graceful stop.

Run as a program, this file runs the whole e2e suite (every test_*.py of
this folder): the binary is PORTICO_GATEWAY, else the default build's.
"""
import http.client
import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

from harness import (Gateway, GatewayTestCase, Response, Upstream, config, refused_port,
                     service)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class Proxying(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.users = Upstream(name="users")
        cls.users_v2 = Upstream(name="users-v2")
        cls.blue = Upstream(name="blue")
        cls.green = Upstream(name="green")
        services = [service("users", cls.users.port), service("users-v2", cls.users_v2.port),
                    service("blue", cls.blue.port), service("green", cls.green.port)]
        routes = [
            {"name": "strip", "paths": ["/api/users/{id}", "/static/**"], "service": "users",
             "strip_path": True},
            {"name": "rewrite", "paths": ["/users/{id}"], "service": "users",
             "rewrite": "/v2/users/{id}"},
            {"name": "weighted", "paths": ["/shop/**"],
             "services": [{"name": "blue", "weight": 50}, {"name": "green", "weight": 50}]},
            {"name": "items", "paths": ["/items/{id}"], "service": "users"},
            {"name": "items-v2", "paths": ["/items/{id}"], "headers": {"X-API-Version": "2"},
             "service": "users-v2"},
            {"name": "plain", "paths": ["/plain"], "service": "users"},
        ]
        cls.gw = Gateway(config(services, routes, plugins=[{"name": "request-id"}]))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        for u in (cls.users, cls.users_v2, cls.blue, cls.green):
            u.close()

    def setUp(self):
        for u in (self.users, self.users_v2, self.blue, self.green):
            u.clear()

    def test_strip_path_removes_the_static_prefix_and_keeps_the_query(self):
        r = self.gw.get("/api/users/7?expand=1")
        self.assertFromUpstream(r, "users", "/7?expand=1")
        r = self.gw.get("/static/css/a.css")
        self.assertFromUpstream(r, "users", "/css/a.css")
        self.assertEqual([q["path"] for q in self.users.requests], ["/7?expand=1", "/css/a.css"])

    def test_rewrite_uses_the_captured_parameter(self):
        r = self.gw.get("/users/42?q=x")
        self.assertFromUpstream(r, "users", "/v2/users/42?q=x")
        self.assertEqual(self.users.last()["path"], "/v2/users/42?q=x")

    def test_weighted_services_both_get_traffic(self):
        names = [self.gw.get(f"/shop/{i}").json()["upstream"] for i in range(40)]
        self.assertEqual(set(names), {"blue", "green"}, names)
        self.assertEqual(len(self.blue.requests) + len(self.green.requests), 40)
        self.assertGreater(len(self.blue.requests), 0)
        self.assertGreater(len(self.green.requests), 0)

    def test_header_selects_the_version_route(self):
        self.assertFromUpstream(self.gw.get("/items/3"), "users", "/items/3")
        self.assertFromUpstream(self.gw.get("/items/3", {"X-API-Version": "2"}), "users-v2",
                                "/items/3")
        self.assertFromUpstream(self.gw.get("/items/3", {"x-api-version": "1"}), "users",
                                "/items/3")
        self.assertEqual(len(self.users.requests), 2)
        self.assertEqual(len(self.users_v2.requests), 1)
        self.assertEqual(self.users_v2.last()["headers"].get("x-api-version"), "2")

    def test_x_forwarded_for_from_an_untrusted_client_is_replaced(self):
        self.assertEqual(self.gw.get("/plain").status, 200)
        self.assertEqual(self.users.last()["headers"].get("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(self.gw.get("/plain", {"X-Forwarded-For": "203.0.113.9"}).status, 200)
        self.assertEqual(self.users.last()["headers"].get("x-forwarded-for"), "127.0.0.1")

    def test_request_id_is_kept_and_echoed(self):
        r = self.gw.get("/plain", {"X-Request-ID": "client-id-1"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("x-request-id"), "client-id-1")
        self.assertEqual(self.users.last()["headers"].get("x-request-id"), "client-id-1")

    def test_request_id_is_generated_when_absent_or_invalid(self):
        for headers in ({}, {"X-Request-ID": "has space"}):
            r = self.gw.get("/plain", headers)
            self.assertEqual(r.status, 200)
            rid = r.headers.get("x-request-id", "")
            self.assertRegex(rid, r"^[0-9a-f]{32}$")
            self.assertEqual(self.users.last()["headers"].get("x-request-id"), rid)

    def test_traceparent_is_continued_with_a_new_span(self):
        r = self.gw.get("/plain", {"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
        self.assertEqual(r.status, 200)
        sent = self.users.last()["headers"]
        m = TRACEPARENT_RE.match(sent.get("traceparent", ""))
        self.assertIsNotNone(m, sent)
        self.assertEqual(m.group(1), TRACE_ID)
        self.assertNotEqual(m.group(2), "00f067aa0ba902b7")
        self.assertEqual(m.group(3), "01")
        self.assertEqual(sent.get("tracestate"), "vendor=1")

    def test_traceparent_is_started_when_absent_or_malformed(self):
        for headers in ({}, {"traceparent": "00-xyz-01", "tracestate": "vendor=1"}):
            self.assertEqual(self.gw.get("/plain", headers).status, 200)
            sent = self.users.last()["headers"]
            m = TRACEPARENT_RE.match(sent.get("traceparent", ""))
            self.assertIsNotNone(m, sent)
            self.assertNotEqual(m.group(1), "0" * 32)
            self.assertNotIn("tracestate", sent)

    def test_unmatched_path_is_404(self):
        r = self.gw.get("/nowhere")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(sum(len(u.requests) for u in (self.users, self.users_v2)), 0)


class TrustedProxies(GatewayTestCase):
    def test_forwarded_for_from_a_trusted_peer_is_extended_and_used(self):
        up = Upstream(name="app")
        routes = [{"name": "r", "paths": ["/**"], "service": "app",
                   "plugins": [{"name": "ip-restriction",
                                "config": {"deny": ["198.51.100.0/24"]}}]}]
        gw = Gateway(config([service("app", up.port)], routes,
                            server={"trusted_proxies": ["127.0.0.1"]}))
        try:
            r = gw.get("/x", {"X-Forwarded-For": "203.0.113.9"})
            self.assertEqual(r.status, 200)
            self.assertEqual(up.last()["headers"].get("x-forwarded-for"),
                             "203.0.113.9, 127.0.0.1")
            r = gw.get("/x", {"X-Forwarded-For": "198.51.100.7"})
            self.assertJsonError(r, 403, "not allowed")
            self.assertEqual(len(up.requests), 1)
        finally:
            gw.stop()
            up.close()


def exchange(sock, request):
    """Sends raw request bytes on `sock` and reads one whole response."""
    sock.sendall(request)
    r = http.client.HTTPResponse(sock, method=request.split(b" ", 1)[0].decode())
    r.begin()
    return Response(r.status, r.getheaders(), r.read())


class ProxyErrors(GatewayTestCase):
    """The proxy's own answers (no route, an upstream that refused, a request
    that does not parse) in the policies' JSON shape, and the connection
    kept for the next request whenever the request was read whole."""

    @classmethod
    def setUpClass(cls):
        cls.up = Upstream(name="app")
        routes = [{"name": "down", "paths": ["/down"], "service": "down"},
                  {"name": "app", "paths": ["/app"], "service": "app"}]
        cls.gw = Gateway(config([service("down", refused_port(), retries={"max_retries": 0}),
                                 service("app", cls.up.port)],
                                routes, plugins=[{"name": "request-id"}]))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.up.close()

    def setUp(self):
        self.up.clear()

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        self.addCleanup(sock.close)
        return sock

    def test_proxy_errors_use_the_json_shape(self):
        doc = self.assertJsonError(self.gw.get("/down"), 502, "refused")
        # The upstream's address is for the access log, not for clients.
        self.assertNotIn("127.0.0.1", doc["error"])
        self.assertJsonError(self.gw.get("/nowhere"), 404, "no route")

    def test_the_request_id_is_the_one_the_policy_set(self):
        # The request-id policy ran (a routed request): the body quotes the
        # X-Request-ID it kept or made, and echoed.
        r = self.gw.get("/down", {"X-Request-ID": "client-chosen-42"})
        self.assertEqual(self.assertJsonError(r, 502)["request_id"], "client-chosen-42")
        self.assertEqual(r.headers.get("x-request-id"), "client-chosen-42")
        doc = self.assertJsonError(self.gw.get("/down"), 502)
        self.assertRegex(doc["request_id"], r"^[0-9a-f]{32}$")
        # No route: the global request-id policy still marks the answer,
        # with the client's id or one it made.
        r = self.gw.get("/nowhere", {"X-Request-ID": "client-chosen-43"})
        self.assertEqual(self.assertJsonError(r, 404)["request_id"], "client-chosen-43")
        self.assertEqual(r.headers.get("x-request-id"), "client-chosen-43")
        doc = self.assertJsonError(self.gw.get("/nowhere"), 404)
        self.assertRegex(doc["request_id"], r"^[0-9a-f]{32}$")

    def test_404_and_502_keep_the_connection_for_the_next_request(self):
        sock = self.connect()
        r = exchange(sock, b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertJsonError(r, 404)
        self.assertNotEqual(r.headers.get("connection", "").lower(), "close")
        # A small body nobody read is passed over, not a reason to close.
        r = exchange(sock, b"POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        self.assertJsonError(r, 404)
        r = exchange(sock, b"GET /down HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertJsonError(r, 502)
        self.assertNotEqual(r.headers.get("connection", "").lower(), "close")
        r = exchange(sock, b"GET /app HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertFromUpstream(r, "app", "/app")

    def test_a_request_that_does_not_parse_is_answered_and_the_connection_closed(self):
        for what, request in (
                ("smuggling shape", b"POST /app HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                ("bad request line", b"GET /app HTTP/1.1 extra\r\nHost: a\r\n\r\n")):
            with self.subTest(what):
                sock = self.connect()
                r = exchange(sock, request + b"GET /app HTTP/1.1\r\nHost: a\r\n\r\n")
                self.assertJsonError(r, 400)
                self.assertEqual(r.headers.get("connection", "").lower(), "close")
                self.assertEqual(sock.recv(4096), b"")  # the pipelined request is not read
        self.assertEqual(self.up.requests, [])


class GracefulStop(GatewayTestCase):
    def test_sigterm_lets_the_request_in_flight_finish(self):
        slow = Upstream(name="slow", delay=1.0)
        gw = Gateway(config([service("slow", slow.port)],
                            [{"name": "r", "paths": ["/**"], "service": "slow"}]))
        result = {}

        def client():
            try:
                result["response"] = gw.get("/slow")
            except Exception as e:  # reported by the assertions below
                result["error"] = e

        t = threading.Thread(target=client)
        try:
            t.start()
            self.assertTrue(slow.arrived.wait(5), "the request never reached the upstream")
            started = time.monotonic()
            gw.signal(signal.SIGTERM)
            t.join(10)
            self.assertFalse(t.is_alive())
            self.assertNotIn("error", result, result.get("error"))
            self.assertFromUpstream(result["response"], "slow", "/slow")
            gw.proc.wait(timeout=10)
            self.assertEqual(gw.proc.returncode, 0)
            print(f"\n  graceful stop: in-flight request answered, exited after "
                  f"{time.monotonic() - started:.2f}s", file=sys.stderr)
        finally:
            gw.stop()
            slow.close()


def load_tests(loader, standard_tests, pattern):
    """As a program: every test_*.py of this folder. Under discovery or
    `-m unittest test_gateway`: this module's tests only."""
    if __name__ != "__main__":
        return standard_tests
    here = os.path.dirname(os.path.abspath(__file__))
    return loader.discover(here, pattern="test_*.py", top_level_dir=here)


if __name__ == "__main__":
    unittest.main(verbosity=2)

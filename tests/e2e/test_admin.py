"""End-to-end tests of portico-gateway: the admin API, hot reload (POST
/reload, SIGHUP) and reloads under load."""
import json
import os
import signal
import tempfile
import sys
import threading
import time
import unittest

from harness import (Client, Gateway, GatewayTestCase, Upstream, config, hs256_jwks, service)

JWT_SECRET = b"admin-test-secret-0123456789abcd"
API_KEY = "very-secret-api-key"


def route(name, prefix, service_name="app", **extra):
    r = {"name": name, "paths": [prefix + "/**"], "service": service_name}
    r.update(extra)
    return r


class AdminApi(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = Upstream(name="app")
        cls.doc = config(
            [service("app", cls.app.port)],
            [route("counted", "/counted"), route("other", "/other"),
             route("secured", "/secured",
                   plugins=[{"name": "jwt-auth", "config": {"jwks": hs256_jwks(JWT_SECRET)}}])],
            consumers=[{"id": "alice", "api_keys": [API_KEY]}])
        cls.gw = Gateway(cls.doc)

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.app.close()

    def test_metrics_count_requests_by_route(self):
        for _ in range(3):
            self.assertEqual(self.gw.get("/counted/a").status, 200)
        self.assertEqual(self.gw.get("/nowhere").status, 404)
        r = self.gw.admin("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/plain; version=0.0.4"), r)
        text = r.body.decode()
        self.assertIn("# TYPE portico_requests_total counter", text)
        self.assertRegex(text, r'(?m)^portico_requests_total\{route="counted",service="app",'
                               r'code_class="2xx"\} 3$')
        self.assertRegex(text, r'(?m)^portico_request_duration_seconds_count'
                               r'\{route="counted"\} 3$')
        self.assertRegex(text, r'(?m)^portico_requests_total\{route="unmatched",service="",'
                               r'code_class="4xx"\} [1-9]')
        self.assertRegex(text, r'(?m)^portico_connections_total [1-9]')

    def test_status(self):
        r = self.gw.admin("GET", "/status")
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(set(doc), {"version", "uptime_seconds", "workers", "connections",
                                    "generation", "jwks"})
        # The secured route's keys are inline: no JWKS URL to report.
        self.assertEqual(doc["jwks"], [])
        self.assertEqual(doc["workers"], 2)
        self.assertGreater(doc["uptime_seconds"], 0)
        self.assertIsInstance(doc["generation"], int)
        self.assertEqual(set(doc["connections"]), {"active", "total"})

    def test_config_redacts_secrets(self):
        r = self.gw.admin("GET", "/config")
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(doc["consumers"][0]["api_keys"], "<redacted>")
        jwk = doc["routes"][2]["plugins"][0]["config"]["jwks"]["keys"][0]
        self.assertEqual(jwk["k"], "<redacted>")
        self.assertEqual(jwk["kty"], "oct")
        self.assertEqual([x["name"] for x in doc["routes"]], ["counted", "other", "secured"])
        self.assertNotIn(API_KEY.encode(), r.body)
        self.assertNotIn(hs256_jwks(JWT_SECRET)["keys"][0]["k"].encode(), r.body)

    def test_routes(self):
        r = self.gw.admin("GET", "/routes")
        self.assertEqual(r.status, 200)
        routes = r.json()
        self.assertEqual([x["name"] for x in routes], ["counted", "other", "secured"])
        self.assertEqual(routes[0]["paths"], ["/counted/**"])
        self.assertEqual(routes[0]["services"], [{"name": "app", "weight": 1}])
        self.assertEqual(routes[2]["plugins"], ["jwt-auth"])

    def test_admin_errors_are_json(self):
        self.assertJsonError(self.gw.admin("GET", "/nope"), 404)
        r = self.gw.admin("DELETE", "/metrics")
        self.assertJsonError(r, 405, "method not allowed")
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        r = self.gw.admin("GET", "/reload")
        self.assertJsonError(r, 405)
        self.assertEqual(r.headers.get("allow"), "POST")


class Reload(GatewayTestCase):
    def setUp(self):
        self.app = Upstream(name="app")
        self.doc = config([service("app", self.app.port)], [route("old", "/old")])
        self.gw = Gateway(self.doc)
        self.generation = self.status()["generation"]

    def tearDown(self):
        self.gw.stop()
        self.app.close()

    def status(self):
        return self.gw.admin("GET", "/status").json()

    def with_route(self, name, prefix, **top):
        doc = json.loads(json.dumps(self.doc))
        doc["routes"].append(route(name, prefix))
        doc.update(top)
        return doc

    def assertOldServing(self):
        self.assertFromUpstream(self.gw.get("/old/x"), "app", "/old/x")
        self.assertEqual(self.status()["generation"], self.generation)

    def assertRefused(self, r, *lines):
        self.assertEqual(r.status, 400, r)
        doc = r.json()
        self.assertEqual(doc["reloaded"], False)
        self.assertEqual(doc["generation"], self.generation)
        for line in lines:
            self.assertTrue(any(e.startswith(line) for e in doc["errors"]), doc["errors"])
        return doc

    def test_invalid_document_is_refused_and_the_old_one_keeps_serving(self):
        bad = self.with_route("new", "/new")
        bad["routes"][1]["paths"] = ["/new/{id"]
        bad["routes"][1]["service"] = "missing"
        bad["plugins"] = [{"name": "request-id", "config": {"max_length": 0}}]
        doc = self.assertRefused(self.gw.reload(bad), "routes[1].paths[0]: ",
                                 "routes[1].service: no service named 'missing'")
        print(f"\n  refused reload: {doc['errors']}", file=sys.stderr)
        self.assertRefused(self.gw.reload("{not json"), "invalid JSON")
        self.assertOldServing()
        self.assertEqual(self.gw.get("/new/1").status, 404)

    def test_invalid_plugin_config_is_refused(self):
        bad = self.with_route("new", "/new")
        bad["plugins"] = [{"name": "rate-limit", "config": {"limits": {"minute": 0}}}]
        self.assertRefused(self.gw.reload(bad), "plugins[0].config.limits.minute: ")
        self.assertOldServing()

    def test_valid_document_is_swapped_in(self):
        new = self.with_route("new", "/new")
        new["routes"].pop(0)
        r = self.gw.reload(new)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"reloaded": True, "generation": self.generation + 1})
        self.assertFromUpstream(self.gw.get("/new/x"), "app", "/new/x")
        self.assertEqual(self.gw.get("/old/x").status, 404)
        self.assertEqual(self.status()["generation"], self.generation + 1)
        self.assertEqual([x["name"] for x in self.gw.admin("GET", "/routes").json()], ["new"])

    def test_empty_post_reads_the_file_again(self):
        self.gw.write(self.with_route("filed", "/filed"))
        r = self.gw.reload()
        self.assertEqual(r.status, 200, r)
        self.assertFromUpstream(self.gw.get("/filed/x"), "app", "/filed/x")

    def test_sighup_reloads_the_file(self):
        self.gw.write(self.with_route("hup", "/hup"))
        self.gw.signal(signal.SIGHUP)
        self.assertTrue(self.gw.wait_output(
            rf"reloaded, configuration {self.generation + 1}\b"), self.gw.output)
        self.assertFromUpstream(self.gw.get("/hup/x"), "app", "/hup/x")
        self.assertEqual(self.status()["generation"], self.generation + 1)

    def test_sighup_with_an_invalid_file_keeps_serving(self):
        bad = self.with_route("hup", "/hup")
        bad["routes"][1]["paths"] = ["/hup/{x"]
        self.gw.write(bad)
        self.gw.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("reload refused" in l
                                                      for l in self.gw.errors):
            time.sleep(0.02)
        text = "".join(self.gw.errors)
        self.assertIn("reload refused", text)
        self.assertIn("routes[1].paths[0]", text)
        self.assertOldServing()

    def test_reload_that_changes_listeners_is_refused(self):
        for what, edit in (
                ("workers", {"listeners": [{"address": "127.0.0.1", "port": 0, "workers": 1}]}),
                ("admin", {"admin": {"address": "127.0.0.1", "port": 1}})):
            with self.subTest(what):
                doc = self.with_route("new", "/new", **edit)
                self.assertRefused(self.gw.reload(doc), "listeners: ")
                self.assertOldServing()
                self.assertEqual(self.gw.get("/new/x").status, 404)


class ReloadUnderLoad(GatewayTestCase):
    CLIENTS = 4
    WARMUP_RELOADS = 20
    RELOADS = 100
    RSS_BOUND_KIB = 8 * 1024

    def test_reloads_under_keep_alive_load(self):
        v1, v2 = Upstream(name="v1"), Upstream(name="v2")
        # rate-limit allocates its key tables (2 MiB a window) with each
        # configuration, so a generation that is never freed shows in RSS.
        plugins = [{"name": "request-id"},
                   {"name": "rate-limit",
                    "config": {"limit_by": "ip", "limits": {"second": 1000000}}}]
        docs = [config([service("app", up.port)], [route("load", "/load", plugins=plugins)],
                       workers=2)
                for up in (v1, v2)]
        gw = Gateway(docs[0])
        try:
            warm = self.run_load(gw, docs, self.WARMUP_RELOADS)
            time.sleep(0.5)
            rss_warm = gw.rss_kib()
            run = self.run_load(gw, docs, self.RELOADS)
            time.sleep(1.0)
            rss_after = gw.rss_kib()
            print(f"\n  reload under load: {run['ok']} requests ok, {run['failed']} failed, "
                  f"{self.RELOADS} reloads in {run['seconds']:.2f}s, "
                  f"served by v1 {run['by']['v1']} / v2 {run['by']['v2']}, "
                  f"reconnects {run['reconnects']}\n"
                  f"  RSS after warm-up ({self.WARMUP_RELOADS} reloads, {warm['ok']} requests): "
                  f"{rss_warm} KiB; after {self.RELOADS} more reloads: {rss_after} KiB "
                  f"(+{rss_after - rss_warm} KiB, bound +{self.RSS_BOUND_KIB} KiB)",
                  file=sys.stderr)
            self.assertEqual(warm["failed"], 0, warm["failures"][:5])
            self.assertEqual(run["failed"], 0, run["failures"][:5])
            self.assertGreater(run["by"]["v1"], 0)
            self.assertGreater(run["by"]["v2"], 0)
            self.assertLessEqual(rss_after, rss_warm + self.RSS_BOUND_KIB)
            status = gw.admin("GET", "/status").json()
            self.assertEqual(status["generation"], self.WARMUP_RELOADS + self.RELOADS)
            # An even number of reloads leaves the first document serving.
            self.assertFromUpstream(gw.get("/load/last"), "v1", "/load/last")
        finally:
            gw.stop()
            v1.close()
            v2.close()

    def run_load(self, gw, docs, reloads):
        """`reloads` reloads alternating the two documents while CLIENTS
        keep-alive clients send requests the whole time."""
        stop = threading.Event()
        lock = threading.Lock()
        result = {"ok": 0, "failed": 0, "failures": [], "by": {"v1": 0, "v2": 0},
                  "reconnects": 0}

        def client(n):
            c = Client(gw.port)
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    was_open = c.conn is not None
                    r = c.request("GET", f"/load/{n}/{i}")
                    name = r.json().get("upstream") if r.status == 200 else None
                    good = name in ("v1", "v2")
                except Exception as e:  # counted as a failure, reported below
                    good, r, name = False, e, None
                with lock:
                    if good:
                        result["ok"] += 1
                        result["by"][name] += 1
                    else:
                        result["failed"] += 1
                        result["failures"].append(repr(r))
                    if not was_open and i > 1:
                        result["reconnects"] += 1
            c.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(self.CLIENTS)]
        for t in threads:
            t.start()
        started = time.monotonic()
        try:
            time.sleep(0.1)
            for i in range(reloads):
                r = gw.reload(docs[(i + 1) % 2])
                self.assertEqual(r.status, 200, r)
                time.sleep(0.005)
            time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        result["seconds"] = time.monotonic() - started
        self.assertFalse(any(t.is_alive() for t in threads), "a client thread hung")
        return result


class AccessLog(GatewayTestCase):
    """Each worker owns its log buffer; a quiet worker's lines are written
    on its own loop within about max_age plus the timer's period."""

    def test_quiet_workers_lines_are_written_without_a_stop(self):
        app = Upstream(name="app")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "access.log")
            gw = Gateway(config([service("app", app.port)], [route("logged", "/logged")],
                                workers=2, access_log={"enabled": True, "path": path}))
            try:
                for i in range(4):
                    self.assertEqual(gw.get(f"/logged/{i}").status, 200)
                lines = []
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and len(lines) < 4:
                    time.sleep(0.05)
                    with open(path) as f:
                        lines = f.read().splitlines()
                self.assertEqual(len(lines), 4, lines)
                paths = sorted(json.loads(line)["path"] for line in lines)
                self.assertEqual(paths, [f"/logged/{i}" for i in range(4)])
            finally:
                gw.stop()
                app.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

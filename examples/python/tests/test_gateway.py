"""A gateway started from Python, with Python filters and handlers, under
real HTTP requests over loopback."""
import json
import threading
import time

import pytest

import portico
from conftest import (config, hs256_jwks, hs256_token, raw_request, request, upstream_service)


def echo_handler_config(plugins=(), path="/**"):
    return config(routes=[{"name": "echo", "paths": [path], "service": "echo"}],
                  services=[{"name": "echo", "handler": "echo"}], plugins=plugins)


@portico.handler("echo")
def echo(req):
    """Answers with what the handler saw, as JSON."""
    return portico.Response(200, json.dumps({
        "method": req.method, "path": req.path, "query": req.query,
        "x_tenant": req.header("X-Tenant"), "body": req.body.decode(),
    }), {"Content-Type": "application/json"})


def test_filter_edits_reach_the_upstream(upstream):
    seen = []

    @portico.filter("tenant")
    def tenant(req):
        seen.append({"method": req.method, "path": req.path, "query": req.query,
                     "client": req.client_address, "id": req.param("id"),
                     "config": req.plugin_config, "key": req.header("x-api-key")})
        req.set_header("X-Tenant", req.plugin_config["tenant"])
        req.remove_header("X-Api-Key")
        req.set_path(f"/v2/users/{req.param('id')}?from=python")

    doc = config(routes=[{"name": "users", "paths": ["/users/{id}"], "service": "upstream",
                          "plugins": [{"name": "tenant", "config": {"tenant": "acme"}}]}],
                 services=[upstream_service(upstream)])
    with portico.Gateway(doc, filters=[tenant], port=0) as gw:
        reply = request(gw.port(), "/users/42?q=1", headers={"X-Api-Key": "k1"})
    assert reply.status == 200, reply
    arrived = upstream.last()
    assert arrived["path"] == "/v2/users/42?from=python"
    assert arrived["headers"]["x-tenant"] == "acme"
    assert "x-api-key" not in arrived["headers"]
    assert seen == [{"method": "GET", "path": "/users/42", "query": "q=1", "client": "127.0.0.1",
                     "id": "42", "config": {"tenant": "acme"}, "key": "k1"}]


def test_filter_answers_at_once_without_the_upstream(upstream):
    @portico.filter("key-required")
    def key_required(req):
        if req.header("X-Api-Key") is None:
            return portico.Response(401, "no key\n", {"WWW-Authenticate": "Key"})

    doc = config(routes=[{"name": "all", "paths": ["/**"], "service": "upstream"}],
                 services=[upstream_service(upstream)], plugins=[{"name": "key-required"}])
    with portico.Gateway(doc, filters=[key_required], port=0) as gw:
        refused = request(gw.port(), "/a")
        allowed = request(gw.port(), "/b", headers={"X-Api-Key": "k"})
    assert refused.status == 401
    assert refused.body == b"no key\n"
    assert refused.headers["www-authenticate"] == "Key"
    assert allowed.status == 200
    assert [r["path"] for r in upstream.requests] == ["/b"]


def test_respond_from_the_request_object():
    @portico.filter("teapot")
    def teapot(req):
        req.respond(418, b"short and stout", [("X-Pot", "1"), ("X-Pot-Size", 2)])

    with portico.Gateway(echo_handler_config([{"name": "teapot"}]), filters=[teapot],
                         handlers=[echo], port=0) as gw:
        reply = request(gw.port(), "/")
    assert (reply.status, reply.body) == (418, b"short and stout")
    assert reply.headers["x-pot"] == "1" and reply.headers["x-pot-size"] == "2"


def test_response_phase_reads_status_and_edits_headers():
    seen = []

    @portico.filter("stamp")
    def stamp(req):
        req.set_header("X-Tenant", "t1")

    @stamp.on_response
    def stamp_response(req):
        seen.append(req.response_status)
        req.set_response_header("X-Stamped", f"{req.method} {req.response_status}")
        req.remove_response_header("Content-Type")

    with portico.Gateway(echo_handler_config([{"name": "stamp"}]), filters=[stamp],
                         handlers=[echo], port=0) as gw:
        reply = request(gw.port(), "/x")
    assert reply.status == 200
    assert reply.headers["x-stamped"] == "GET 200"
    assert "content-type" not in reply.headers
    assert reply.json()["x_tenant"] == "t1"
    assert seen == [200]


def test_a_response_only_filter():
    @portico.filter("server-name", phase="response")
    def server_name(req):
        req.set_response_header("X-Served-By", "python")

    with portico.Gateway(echo_handler_config([{"name": "server-name"}]), filters=[server_name],
                         handlers=[echo], port=0) as gw:
        assert request(gw.port(), "/").headers["x-served-by"] == "python"


def test_handlers_see_the_body_and_answer_in_several_forms():
    @portico.handler("text")
    def text(req):
        # The route's {name}, read by the handler itself.
        return f"hello {req.param('name')}"

    @portico.handler("raw")
    def raw(req):
        return req.body[::-1]

    @portico.handler("created")
    def created(req):
        req.respond(201, b"", {"Location": "/things/1"})

    doc = config(routes=[{"name": "echo", "paths": ["/echo"], "service": "echo"},
                         {"name": "text", "paths": ["/hello/{name}"], "service": "text"},
                         {"name": "raw", "paths": ["/raw"], "service": "raw"},
                         {"name": "created", "paths": ["/things"], "service": "created"}],
                 services=[{"name": n, "handler": n} for n in ("echo", "text", "raw", "created")])
    with portico.Gateway(doc, handlers=[echo, text, raw, created], port=0) as gw:
        port = gw.port()
        posted = request(port, "/echo?x=1", method="POST", body=b"payload")
        hello = request(port, "/hello/ada")
        reversed_ = request(port, "/raw", method="PUT", body=b"abc")
        made = request(port, "/things", method="POST", body=b"{}")
    assert posted.json() == {"method": "POST", "path": "/echo", "query": "x=1", "x_tenant": None,
                             "body": "payload"}
    assert (hello.status, hello.body) == (200, b"hello ada")
    assert hello.headers["content-type"].startswith("text/plain")
    assert reversed_.body == b"cba"
    assert made.status == 201 and made.headers["location"] == "/things/1"


def test_a_filter_reads_the_claims_jwt_auth_verified(upstream):
    @portico.filter("subject")
    def subject(req):
        claims = req.claims
        req.set_header("X-Subject", claims["sub"])
        req.set_header("X-Roles", ",".join(claims["roles"]))

    doc = config(routes=[{"name": "all", "paths": ["/**"], "service": "upstream"}],
                 services=[upstream_service(upstream)],
                 plugins=[{"name": "jwt-auth", "config": {"jwks": hs256_jwks(),
                                                          "algorithms": ["HS256"]}},
                          {"name": "subject"}])
    token = hs256_token({"sub": "ada", "roles": ["admin", "ops"], "exp": int(time.time()) + 600})
    with portico.Gateway(doc, filters=[subject], port=0) as gw:
        without = request(gw.port(), "/")
        with_token = request(gw.port(), "/", headers={"Authorization": f"Bearer {token}"})
    assert without.status == 401  # jwt-auth answered; the Python filter never ran
    assert with_token.status == 200, with_token
    arrived = upstream.last()["headers"]
    assert arrived["x-subject"] == "ada"
    assert arrived["x-roles"] == "admin,ops"
    assert len(upstream.requests) == 1


def test_claims_are_none_without_jwt_auth():
    seen = []

    @portico.filter("look")
    def look(req):
        seen.append((req.claims, req.consumer))

    with portico.Gateway(echo_handler_config([{"name": "look"}]), filters=[look], handlers=[echo],
                         port=0) as gw:
        assert request(gw.port(), "/").status == 200
    assert seen == [(None, None)]


def test_headers_as_received():
    seen = []

    @portico.filter("headers")
    def headers(req):
        seen.append([(n.lower(), v) for n, v in req.headers if n.lower().startswith("x-")])

    with portico.Gateway(echo_handler_config([{"name": "headers"}]), filters=[headers],
                         handlers=[echo], port=0) as gw:
        raw_request(gw.port(), b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nX-B: two\r\nX-A: 3\r\n"
                               b"Connection: close\r\n\r\n")
    assert seen == [[("x-a", "1"), ("x-b", "two"), ("x-a", "3")]]


def test_metrics_reload_and_generation():
    with portico.Gateway(echo_handler_config(), handlers=[echo], port=0) as gw:
        assert gw.generation == 0
        assert request(gw.port(), "/").status == 200
        assert "portico_requests_total" in gw.metrics()
        gw.reload(echo_handler_config(path="/only/{*rest}"))
        assert gw.generation == 1
        assert request(gw.port(), "/only/this").status == 200
        assert request(gw.port(), "/other").status == 404
        with pytest.raises(portico.InvalidConfigError) as refused:
            gw.reload(echo_handler_config(path="/broken/{id"))
        assert "paths[0]" in str(refused.value)
        assert gw.generation == 1
        assert request(gw.port(), "/only/still").status == 200


def test_from_file_and_reload_file(tmp_path):
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(echo_handler_config(path="/first")))
    with portico.Gateway.from_file(path, handlers=[echo], port=0) as gw:
        assert request(gw.port(), "/first").status == 200
        path.write_text(json.dumps(echo_handler_config(path="/second")))
        gw.reload_file()
        assert request(gw.port(), "/second").status == 200
        assert request(gw.port(), "/first").status == 404


def test_admin_port_override():
    doc = echo_handler_config()
    doc["admin"] = {"enabled": True, "address": "127.0.0.1", "port": 1}
    with portico.Gateway(doc, handlers=[echo], port=0, admin_port=0) as gw:
        assert gw.admin_port not in (0, 1)
        assert b"portico_" in request(gw.admin_port, "/metrics").body


def test_run_blocks_until_request_stop():
    gw = portico.Gateway(echo_handler_config(), handlers=[echo], port=0)
    ready = threading.Event()
    stopped = []

    def serve():
        ready.set()
        gw.run()
        stopped.append(True)

    runner = threading.Thread(target=serve)
    runner.start()
    ready.wait(5)
    deadline = time.monotonic() + 10
    port = None
    while port is None and time.monotonic() < deadline:
        try:
            port = gw.port()
        except portico.StateError:
            time.sleep(0.02)
    assert port and request(port, "/").status == 200
    gw.request_stop()
    runner.join(10)
    assert stopped == [True]
    gw.close()


def test_two_gateways_in_one_process_keep_their_own_filters():
    def tagging(tag):
        @portico.filter("tag")
        def tag_filter(req):
            req.set_header("X-Tenant", tag)
        return tag_filter

    with portico.Gateway(echo_handler_config([{"name": "tag"}]), filters=[tagging("one")],
                         handlers=[echo], port=0) as first, \
         portico.Gateway(echo_handler_config([{"name": "tag"}]), filters=[tagging("two")],
                         handlers=[echo], port=0) as second:
        assert request(first.port(), "/").json()["x_tenant"] == "one"
        assert request(second.port(), "/").json()["x_tenant"] == "two"


def test_many_requests_from_several_threads_through_python_callbacks():
    calls = []

    @portico.filter("count")
    def count(req):
        calls.append(1)
        req.set_header("X-Tenant", req.param("n"))

    doc = echo_handler_config([{"name": "count"}], path="/n/{n}")
    doc["listeners"][0]["workers"] = 2  # two C threads calling into Python
    failures = []

    def client(k):
        for i in range(50):
            reply = request(gw.port(), f"/n/{k}-{i}")
            if reply.status != 200 or reply.json()["x_tenant"] != f"{k}-{i}":
                failures.append(reply)

    with portico.Gateway(doc, filters=[count], handlers=[echo], port=0) as gw:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not failures
    assert len(calls) == 200


def test_the_readme_example_runs():
    import os
    import subprocess
    import sys
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example.py")
    done = subprocess.run([sys.executable, example], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "b'hello, acme\\n'"

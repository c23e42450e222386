"""Misuse from Python gives an exception with a status and a message, never
a crash; a misbehaving Python callback costs its request a 500, and the
gateway keeps serving."""
import ctypes
import json
import socket

import pytest

import portico
from portico import _native
from conftest import config, hs256_jwks, raw_request, request


def handler_config(plugins=(), path="/**"):
    return config(routes=[{"name": "echo", "paths": [path], "service": "echo"}],
                  services=[{"name": "echo", "handler": "echo"}], plugins=plugins)


@portico.handler("echo")
def echo(req):
    return portico.Response(200, json.dumps({"path": req.path, "x_raw": req.header("X-Raw")},
                                            ensure_ascii=True))


# --- closed objects ---------------------------------------------------------

@pytest.mark.parametrize("make, use", [
    (portico.Router, lambda r: r.match("GET", "/")),
    (portico.Router, lambda r: r.add("/x")),
    (lambda: portico.JwtVerifier.from_key(b"k" * 32, kind="hmac"), lambda v: v.verify("a.b.c")),
    (lambda: portico.Limiter(10), lambda limiter: limiter.check("k")),
    (portico.Breaker, lambda b: b.acquire()),
    (lambda: portico.Balancer({"endpoints": [{"id": "a:1"}]}), lambda b: b.pick()),
    (lambda: portico.Gateway(handler_config(), handlers=[echo], port=0), lambda g: g.start()),
    (lambda: portico.Gateway(handler_config(), handlers=[echo], port=0), lambda g: g.metrics()),
])
def test_use_after_close_raises(make, use):
    obj = make()
    obj.close()
    obj.close()  # closing twice is fine
    assert obj.closed
    with pytest.raises(portico.InvalidHandleError) as closed:
        use(obj)
    assert closed.value.status == 2
    assert "closed" in str(closed.value)


def test_with_block_closes():
    with portico.Router() as router:
        router.add("/x")
    with pytest.raises(portico.InvalidHandleError):
        len(router)


def test_a_request_kept_after_its_callback_is_dead():
    kept = []

    @portico.filter("keep")
    def keep(req):
        kept.append(req)

    with portico.Gateway(handler_config([{"name": "keep"}]), filters=[keep], handlers=[echo],
                         port=0) as gw:
        assert request(gw.port(), "/").status == 200
    with pytest.raises(portico.InvalidHandleError):
        kept[0].path
    with pytest.raises(portico.InvalidHandleError):
        kept[0].set_header("X-Late", "1")


def test_the_library_refuses_null_handles_and_lying_lengths():
    lib = _native.lib
    route = ctypes.c_uint32()
    assert lib.portico_router_add(None, b"", 0, b"", 0, b"", 0, b"/", 1,
                                  ctypes.byref(route)) == _native.ERR_INVALID_HANDLE
    assert lib.portico_last_error()  # a message, whatever its words
    assert lib.portico_gateway_start(None) == _native.ERR_INVALID_HANDLE
    decision = _native.LimitDecision()
    assert lib.portico_limiter_check(None, b"k", 1, 1, _native.NOW,
                                     ctypes.byref(decision)) == _native.ERR_INVALID_HANDLE
    lib.portico_router_free(None)  # free(NULL) does nothing
    with portico.Router() as router:
        # A NULL pointer with a length: the length lies.
        assert lib.portico_router_add(router.ptr, None, 5, b"", 0, b"", 0, b"/", 1,
                                      ctypes.byref(route)) == _native.ERR_INVALID_ARGUMENT
        # The out pointer missing.
        assert lib.portico_router_size(router.ptr, None) == _native.ERR_INVALID_ARGUMENT
        # A length past a NUL: text holding a NUL byte.
        assert lib.portico_router_add(router.ptr, b"", 0, b"", 0, b"", 0, b"/a\0b", 4,
                                      ctypes.byref(route)) == _native.ERR_INVALID_UTF8
        assert len(router) == 0
    # Another object's handle where a router is expected.
    with portico.Limiter(10) as limiter:
        assert lib.portico_router_size(limiter.ptr, ctypes.byref(ctypes.c_size_t())) == \
            _native.ERR_INVALID_HANDLE


# --- configuration ----------------------------------------------------------

def test_bad_json_names_the_problem():
    with pytest.raises(portico.InvalidJsonError) as bad:
        portico.Gateway('{"routes": [}', port=0)
    assert bad.value.status_name == "PORTICO_ERR_INVALID_JSON"
    assert "line 1" in bad.value.message
    assert isinstance(bad.value, ValueError)


def test_invalid_config_lists_every_problem():
    doc = handler_config(path="/users/{id")
    doc["routes"].append({"name": "orphan", "paths": ["/o"], "service": "nowhere"})
    doc["admin"]["prot"] = 1
    with pytest.raises(portico.InvalidConfigError) as bad:
        portico.Gateway(doc, handlers=[echo], port=0)
    problems = bad.value.problems
    assert any(p.startswith("routes[0].paths[0]") for p in problems), problems
    assert any(p.startswith("routes[1].service") and "nowhere" in p for p in problems), problems
    assert any(p.startswith("admin.prot") for p in problems), problems


def test_an_unknown_plugin_or_handler_is_named():
    with pytest.raises(portico.InvalidConfigError) as bad:
        portico.Gateway(handler_config([{"name": "not-registered"}]), handlers=[echo], port=0)
    assert "not-registered" in str(bad.value)
    with pytest.raises(portico.InvalidConfigError) as bad:
        portico.check_config(handler_config())  # "echo" not given
    assert "echo" in str(bad.value)
    portico.check_config(handler_config(), handlers=[echo])  # valid: no exception


def test_a_filter_may_not_take_a_builtins_name():
    with pytest.raises(portico.ConflictError):
        portico.Gateway(handler_config(), filters=[portico.Filter("jwt-auth", lambda r: None)],
                        port=0)


def test_not_a_filter_is_a_type_error():
    with pytest.raises(TypeError):
        portico.Gateway(handler_config(), filters=[lambda req: None], handlers=[echo], port=0)


def test_primitives_refuse_bad_configuration():
    with pytest.raises(portico.InvalidArgumentError):
        portico.Limiter(rate=0)
    with pytest.raises(portico.InvalidConfigError):
        portico.Breaker({"consecutive_failures": "many"})
    with pytest.raises(portico.InvalidJsonError):
        portico.Breaker("{not json")
    with pytest.raises(portico.Error) as bad:
        portico.Balancer({"policy": "coin_toss", "endpoints": [{"id": "a:1"}]})
    assert "coin_toss" in bad.value.message or "policy" in bad.value.message
    with pytest.raises(portico.Error):
        portico.JwtVerifier.from_key(b"too short", kind="hmac")
    with pytest.raises(portico.InvalidConfigError):
        portico.JwtVerifier.from_jwks(hs256_jwks(), leeway="soon")
    with pytest.raises(portico.InvalidArgumentError) as bad:
        portico.JwtVerifier.from_jwks('{"keys": []}')
    assert "no usable key" in bad.value.message
    with pytest.raises(TypeError):
        portico.JwtVerifier.from_jwks(hs256_jwks(), leway=3)


def test_a_taken_port_and_a_second_start():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        gw = portico.Gateway(handler_config(), handlers=[echo], port=taken.getsockname()[1])
        with pytest.raises(portico.IOFailure) as failed:
            gw.start()
        assert isinstance(failed.value, OSError)
        gw.close()
    with portico.Gateway(handler_config(), handlers=[echo], port=0) as gw:
        with pytest.raises(portico.StateError):
            gw.start()


# --- text that is not UTF-8 -------------------------------------------------

def test_text_that_is_not_utf8_is_refused():
    with portico.Router() as router:
        with pytest.raises(portico.InvalidUtf8Error):
            router.add(b"/caf\xe9")
        with pytest.raises(portico.InvalidUtf8Error):
            router.add("/lone-\ud800-surrogate")
        with pytest.raises(portico.InvalidUtf8Error):
            router.add("/a\x00b")
        router.add("/cafe/{id}", name="café")  # UTF-8 text is fine
        assert router.match("GET", "/cafe/1").params == {"id": "1"}
        with pytest.raises(portico.MalformedError):
            router.add("/café")  # but a path pattern is ASCII (percent-encoded)
    with pytest.raises(portico.InvalidUtf8Error):
        portico.Gateway(b'{"admin": {"address": "\xff"}}', port=0)
    with pytest.raises(TypeError):
        portico.Router().add(42)


def test_header_values_that_are_not_utf8_pass_through_a_filter():
    seen = []

    @portico.filter("copy")
    def copy(req):
        value = req.header("X-Raw")
        seen.append(value)
        req.set_header("X-Copy", value)

    @copy.on_response
    def copy_back(req):
        req.set_response_header("X-Raw-Back", req.header("X-Raw"))

    with portico.Gateway(handler_config([{"name": "copy"}]), filters=[copy], handlers=[echo],
                         port=0) as gw:
        reply = raw_request(gw.port(), b"GET / HTTP/1.1\r\nHost: t\r\nX-Raw: caf\xe9 \xff\r\n"
                                       b"Connection: close\r\n\r\n")
    head = reply.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 200"), reply
    assert b"\r\nX-Raw-Back: caf\xe9 \xff" in head or b"\r\nx-raw-back: caf\xe9 \xff" in head
    assert seen == ["caf\udce9 \udcff"]


# --- callbacks that misbehave -----------------------------------------------

def serve_and_check(filters, handlers, plugins, paths):
    """Starts a gateway; the statuses of GET `paths` in order, and the
    reported errors."""
    reports = []
    with portico.Gateway(handler_config(plugins), filters=filters, handlers=handlers, port=0,
                         on_error=reports.append) as gw:
        statuses = [request(gw.port(), p).status for p in paths]
    return statuses, reports


def test_a_filter_that_raises_answers_500_and_the_gateway_goes_on():
    @portico.filter("flaky")
    def flaky(req):
        if req.path == "/boom":
            raise ValueError("boom")

    statuses, reports = serve_and_check([flaky], [echo], [{"name": "flaky"}],
                                        ["/ok", "/boom", "/ok", "/boom", "/ok"])
    assert statuses == [200, 500, 200, 500, 200]
    assert len(reports) == 2
    assert "flaky" in reports[0] and "ValueError" in reports[0] and "boom" in reports[0]


@pytest.mark.parametrize("garbage", [42, "yes", True, object(), 1])
def test_a_filter_that_returns_garbage_answers_500(garbage):
    @portico.filter("garbage")
    def returns_garbage(req):
        return garbage if req.path == "/bad" else None

    statuses, reports = serve_and_check([returns_garbage], [echo], [{"name": "garbage"}],
                                        ["/bad", "/ok"])
    assert statuses == [500, 200]
    assert len(reports) == 1 and "garbage" in reports[0]


def test_a_response_phase_that_raises_answers_500():
    @portico.filter("late", phase="response")
    def late(req):
        if req.path == "/boom":
            raise KeyError("late")

    statuses, reports = serve_and_check([late], [echo], [{"name": "late"}], ["/boom", "/ok"])
    assert statuses == [500, 200]
    # Reported once: by the binding, which sets the status to 500 itself,
    # not again by the gateway for a return value outside the contract.
    assert len(reports) == 1, reports
    assert "late" in reports[0] and "KeyError" in reports[0] and "response phase" in reports[0]


def test_a_response_phase_that_answers_is_reported_once():
    @portico.filter("late-answer", phase="response")
    def late_answer(req):
        return portico.Response(418)  # too late: the upstream has answered

    statuses, reports = serve_and_check([late_answer], [echo], [{"name": "late-answer"}], ["/"])
    assert statuses == [500]
    assert len(reports) == 1, reports
    assert "StateError" in reports[0]


def test_the_response_phase_may_replace_the_status():
    refused = []

    @portico.filter("teapot", phase="response")
    def teapot(req):
        for bad in (199, 600, 2**40):
            try:
                req.response_status = bad
            except (portico.InvalidArgumentError, ValueError) as e:
                refused.append(type(e).__name__)
        req.response_status = 418

    statuses, reports = serve_and_check([teapot], [echo], [{"name": "teapot"}], ["/"])
    assert statuses == [418]
    assert reports == []
    assert refused == ["InvalidArgumentError", "InvalidArgumentError", "ValueError"]


def test_a_handler_that_raises_or_answers_nothing_answers_500():
    @portico.handler("echo")
    def bad_handler(req):
        if req.path == "/raise":
            raise RuntimeError("handler broke")
        if req.path == "/nothing":
            return None
        if req.path == "/garbage":
            return 3.14
        return "fine"

    statuses, reports = serve_and_check([], [bad_handler], [],
                                        ["/raise", "/nothing", "/garbage", "/ok"])
    assert statuses == [500, 500, 500, 200]
    assert len(reports) == 3
    assert "RuntimeError" in reports[0] and "handler broke" in reports[0]


def test_an_edit_the_library_refuses_is_an_exception_in_the_filter():
    outcomes = []

    @portico.filter("edits")
    def edits(req):
        for name, value in (("Content-Length", "5"), ("X-Bad", "a\r\nInjected: 1"),
                            ("Connection", "close")):
            try:
                req.set_header(name, value)
                outcomes.append((name, "accepted"))
            except portico.InvalidArgumentError as e:
                outcomes.append((name, e.status_name))
        try:
            req.set_response_header("X-Too-Early", "1")  # the response phase only
            outcomes.append(("response", "accepted"))
        except portico.Error as e:
            outcomes.append(("response", type(e).__name__))

    statuses, _ = serve_and_check([edits], [echo], [{"name": "edits"}], ["/"])
    assert statuses == [200]
    assert outcomes[:3] == [("Content-Length", "PORTICO_ERR_INVALID_ARGUMENT"),
                            ("X-Bad", "PORTICO_ERR_INVALID_ARGUMENT"),
                            ("Connection", "PORTICO_ERR_INVALID_ARGUMENT")]
    assert outcomes[3][1] != "accepted"


def test_a_callback_may_not_stop_its_gateway_but_may_request_a_stop():
    outcomes = []
    holder = {}

    @portico.filter("meddle")
    def meddle(req):
        for action in (lambda: holder["gw"].stop(), lambda: holder["gw"].close(),
                       lambda: holder["gw"].metrics()):
            try:
                action()
                outcomes.append("allowed")
            except portico.StateError:
                outcomes.append("StateError")

    with portico.Gateway(handler_config([{"name": "meddle"}]), filters=[meddle], handlers=[echo],
                         port=0) as gw:
        holder["gw"] = gw
        assert request(gw.port(), "/").status == 200
    assert outcomes == ["StateError"] * 3


def test_an_on_error_that_raises_is_contained():
    def broken_reporter(message):
        raise RuntimeError("reporter broke too")

    @portico.filter("flaky")
    def flaky(req):
        raise ValueError("boom")

    with portico.Gateway(handler_config([{"name": "flaky"}]), filters=[flaky], handlers=[echo],
                         port=0, on_error=broken_reporter) as gw:
        assert request(gw.port(), "/").status == 500
        assert request(gw.port(), "/").status == 500


def test_without_on_error_failures_go_to_the_portico_logger(caplog):
    @portico.filter("flaky")
    def flaky(req):
        raise ValueError("logged")

    with caplog.at_level("ERROR", logger="portico"):
        with portico.Gateway(handler_config([{"name": "flaky"}]), filters=[flaky],
                             handlers=[echo], port=0) as gw:
            assert request(gw.port(), "/").status == 500
    records = [r for r in caplog.records if r.name == "portico"]
    assert len(records) == 1
    assert "ValueError: logged" in records[0].getMessage()
    assert records[0].exc_info and records[0].exc_info[0] is ValueError

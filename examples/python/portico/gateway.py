"""A configured gateway with filters and handlers written in Python.

The C library calls the filters and handlers on its worker threads; ctypes
takes the GIL for each call, so Python callbacks run one at a time across
the workers (the C work around them does not). A callback is always given a
Request that is valid only until it returns.

What must never happen, and how it is prevented:
- a callback's exception crossing into C: every callback is wrapped, the
  exception is reported (on_error, or the "portico" logger) and the request
  is answered 500;
- a ctypes callback object freed while the library may still call it: the
  Gateway keeps every one until the C gateway is freed (close(), the end of
  its `with` block, garbage collection or interpreter exit).
"""
import atexit
import ctypes
import json
import logging
import os
import threading
import traceback
import weakref

from . import _native, errors
from ._handle import Handle, new_handle
from ._native import lib, to_bytes, to_str, view

logger = logging.getLogger("portico")

_REQUEST_GONE = "request (a Request is only valid during the callback that received it)"


class Response:
    """A local answer: returned from a handler or a filter (or given to
    Request.respond). `body` is bytes or str (UTF-8); `headers` a dict or a
    list of (name, value) pairs. Content-Length is added by the gateway."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status=200, body=b"", headers=None):
        self.status = status
        self.body = body
        self.headers = headers

    def __repr__(self):
        return f"Response({self.status!r}, {self.body!r}, {self.headers!r})"


class Request:
    """One request as a filter or handler sees it.

    Strings are str; bytes that are not UTF-8 (header values may hold any)
    come back as surrogate escapes and are sent out again unchanged. Lookups
    that find nothing return None (or `default`); edits the library refuses
    raise portico.Error."""

    __slots__ = ("_ptr", "_responded")

    def __init__(self, pointer):
        self._ptr = pointer
        self._responded = False

    def _handle(self):
        if self._ptr is None:
            raise errors.closed(_REQUEST_GONE)
        return self._ptr

    def _view(self, fn):
        data, length = ctypes.c_void_p(), ctypes.c_size_t()
        errors.check(fn(self._handle(), ctypes.byref(data), ctypes.byref(length)))
        return view(data, length)

    def _view_or_none(self, fn, *key):
        data, length = ctypes.c_void_p(), ctypes.c_size_t()
        status = fn(self._handle(), *key, ctypes.byref(data), ctypes.byref(length))
        if status == _native.ERR_NOT_FOUND:
            return None
        errors.check(status)
        return view(data, length)

    def _lookup(self, fn, name, default):
        name = to_bytes(name, "name")
        value = self._view_or_none(fn, name, len(name))
        return default if value is None else to_str(value)

    # --- reading (request and response phases, handlers)

    @property
    def method(self):
        return to_str(self._view(lib.portico_request_method))

    @property
    def path(self):
        """The normalised path without the query (not a filter's rewrite)."""
        return to_str(self._view(lib.portico_request_path))

    @property
    def query(self):
        """The raw query without '?'; "" when none."""
        return to_str(self._view(lib.portico_request_query))

    def header(self, name, default=None):
        """The first header of that name (any case), with earlier filters'
        edits applied."""
        return self._lookup(lib.portico_request_header, name, default)

    @property
    def headers(self):
        """The headers as received (edits not applied): (name, value) pairs
        in arrival order."""
        request = self._handle()
        count = ctypes.c_size_t()
        errors.check(lib.portico_request_header_count(request, ctypes.byref(count)))
        name, name_len, value, value_len = (ctypes.c_void_p(), ctypes.c_size_t(),
                                            ctypes.c_void_p(), ctypes.c_size_t())
        pairs = []
        for i in range(count.value):
            errors.check(lib.portico_request_header_at(request, i, ctypes.byref(name),
                                                       ctypes.byref(name_len), ctypes.byref(value),
                                                       ctypes.byref(value_len)))
            pairs.append((to_str(view(name, name_len)), to_str(view(value, value_len))))
        return pairs

    @property
    def client_address(self):
        """"127.0.0.1"; "" in a handler."""
        return to_str(self._view(lib.portico_request_client_address))

    def param(self, name, default=None):
        """A path parameter of the matched route ("{id}")."""
        return self._lookup(lib.portico_request_param, name, default)

    @property
    def claims(self):
        """The claims jwt-auth verified for this request (a dict), or None."""
        text = self._view_or_none(lib.portico_request_claims)
        return None if text is None else json.loads(text)

    @property
    def consumer(self):
        """The consumer an authentication policy resolved, or None."""
        value = self._view_or_none(lib.portico_request_consumer)
        return None if value is None else to_str(value)

    @property
    def plugin_config(self):
        """The "config" object of this filter's plugin entry (a dict)."""
        return json.loads(self._view(lib.portico_request_plugin_config))

    @property
    def body(self):
        """The request body, bytes (handlers only)."""
        return self._view(lib.portico_request_body)

    # --- editing what goes upstream (request phase)

    def set_header(self, name, value):
        name, value = to_bytes(name, "name"), to_bytes(value, "value")
        errors.check(lib.portico_request_set_header(self._handle(), name, len(name), value, len(value)))

    def remove_header(self, name):
        name = to_bytes(name, "name")
        errors.check(lib.portico_request_remove_header(self._handle(), name, len(name)))

    def set_path(self, path_and_query):
        """Replaces the path and query sent upstream ("/v2/items?id=3")."""
        text = to_bytes(path_and_query, "path")
        errors.check(lib.portico_request_set_path(self._handle(), text, len(text)))

    # --- the response (response phase)

    @property
    def response_status(self):
        """The status the client will get; may be replaced (200..599)."""
        status = ctypes.c_int32()
        errors.check(lib.portico_request_response_status(self._handle(), ctypes.byref(status)))
        return status.value

    @response_status.setter
    def response_status(self, status):
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"response_status must be an int, not {type(status).__name__}")
        if not -2**31 <= status < 2**31:
            raise ValueError(f"response_status {status} is outside 200..599")
        errors.check(lib.portico_request_set_response_status(self._handle(), status))

    def response_header(self, name, default=None):
        return self._lookup(lib.portico_request_response_header, name, default)

    def set_response_header(self, name, value):
        name, value = to_bytes(name, "name"), to_bytes(value, "value")
        errors.check(lib.portico_request_set_response_header(self._handle(), name, len(name), value,
                                                             len(value)))

    def remove_response_header(self, name):
        name = to_bytes(name, "name")
        errors.check(lib.portico_request_remove_response_header(self._handle(), name, len(name)))

    # --- answering (a filter's request phase, a handler)

    def respond(self, status, body=b"", headers=None):
        """Answers the request here: from a filter, nothing further runs
        and the upstream is not called. Once per callback."""
        pairs = _header_pairs(headers)
        array = (_native.Header * max(len(pairs), 1))()
        for slot, (name, value) in zip(array, pairs):
            slot.name, slot.name_len, slot.value, slot.value_len = name, len(name), value, len(value)
        body = to_bytes(body, "body")
        errors.check(lib.portico_request_respond(self._handle(), int(status), array, len(pairs), body,
                                                 len(body)))
        self._responded = True

    # --- the outcome of a callback

    def _filter_outcome(self, outcome):
        if isinstance(outcome, Response):
            self.respond(outcome.status, outcome.body, outcome.headers)
            return _native.FILTER_RESPOND
        if outcome is None:
            return _native.FILTER_RESPOND if self._responded else _native.FILTER_CONTINUE
        raise TypeError(f"returned {outcome!r}: a filter returns None (go on) or a portico.Response")

    def _handler_outcome(self, outcome):
        if isinstance(outcome, Response):
            self.respond(outcome.status, outcome.body, outcome.headers)
        elif isinstance(outcome, str):
            self.respond(200, outcome, {"Content-Type": "text/plain; charset=utf-8"})
        elif isinstance(outcome, (bytes, bytearray, memoryview)):
            self.respond(200, outcome)
        elif outcome is not None:
            raise TypeError(f"returned {outcome!r}: a handler returns a portico.Response, str or "
                            "bytes, or calls request.respond() and returns None")
        elif not self._responded:
            raise TypeError("returned None without calling request.respond()")
        return _native.OK

    def _fail(self, report, message, answered_code, response_phase=False):
        """After a callback raised: reports it, then answers 500 (a filter's
        request phase, a handler) or sets the status to 500 (a filter's
        response phase) and returns `answered_code`, so that the gateway
        has nothing to report again. Only when that fails too does it
        return a code outside the contract, on which the gateway answers
        500 itself (and reports the callback a second time)."""
        report(message, with_traceback=True)
        try:
            if response_phase:
                self.response_status = 500
                return answered_code
            if not self._responded:
                self.respond(500, b"internal error\n", {"Content-Type": "text/plain"})
                return answered_code
        except Exception:
            pass
        return _native.CALLBACK_FAILED


def _header_pairs(headers):
    if not headers:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    return [(to_bytes(name, "header name"), to_bytes(str(value) if isinstance(value, int) else value,
                                                      "header value"))
            for name, value in items]


class Filter:
    """A policy written in Python, usable in any "plugins" list of the
    configuration by its name: {"name": "tenant", "config": {...}}.

    `priority` orders it among the built-in policies (which use 300..1000;
    higher runs earlier in the request phase). The default 0 runs it after
    them all, so authentication has already run (request.claims)."""

    def __init__(self, name, on_request=None, on_response=None, priority=0):
        self.name = name
        self.priority = priority
        self.request_phase = on_request
        self.response_phase = on_response

    def on_request(self, fn):
        """Decorator: `fn(request)` runs in the request phase. It returns
        None to go on, or a Response (or calls request.respond()) to answer
        at once."""
        self.request_phase = fn
        return fn

    def on_response(self, fn):
        """Decorator: `fn(request)` runs in the response phase, where it
        may read request.response_status and edit the response headers."""
        self.response_phase = fn
        return fn

    def __call__(self, request):
        return self.request_phase(request)

    def __repr__(self):
        return f"<portico.Filter {self.name!r}>"


class Handler:
    """An in-process upstream: a service {"name": "svc", "handler": name}
    is served by `fn(request)`, which returns a Response, str or bytes (or
    calls request.respond())."""

    def __init__(self, name, fn):
        self.name = name
        self.fn = fn

    def __call__(self, request):
        return self.fn(request)

    def __repr__(self):
        return f"<portico.Handler {self.name!r}>"


class NativeFilter:
    """A filter written in C (a portico_filter_fn loaded with ctypes, e.g.
    ctypes.CDLL(path).my_filter), registered like a Python one. `user` is
    passed back as the callback's void*; `library` is kept alive with the
    gateway."""

    def __init__(self, name, on_request=None, on_response=None, priority=0, user=None, library=None):
        self.name = name
        self.priority = priority
        self.request_phase = on_request
        self.response_phase = on_response
        self.user = user
        self.keep_loaded = library


class NativeHandler:
    """A handler written in C (a portico_handler_fn), as NativeFilter."""

    def __init__(self, name, fn, user=None, library=None):
        self.name = name
        self.fn = fn
        self.user = user
        self.keep_loaded = library


def filter(name, priority=0, phase="request"):  # noqa: A001 - the decorator is the API
    """Decorator: makes a Filter of a function of one Request, for its
    request phase (or its response phase with phase="response").

        @portico.filter("tenant")
        def tenant(request):
            if request.header("X-Api-Key") is None:
                return portico.Response(401, "no key")
            request.set_header("X-Tenant", "acme")
    """
    if phase not in ("request", "response"):
        raise ValueError(f"phase must be 'request' or 'response', not {phase!r}")

    def make(fn):
        return Filter(name, fn if phase == "request" else None, fn if phase == "response" else None,
                      priority)
    return make


def handler(name):
    """Decorator: makes a Handler of a function of one Request."""
    def make(fn):
        return Handler(name, fn)
    return make


class _Reporter:
    """Where callback failures go: on_error(message), or the "portico"
    logger. Never raises: it runs on the gateway's threads."""

    def __init__(self, on_error):
        self.on_error = on_error

    def __call__(self, message, with_traceback=False):
        try:
            if self.on_error is not None:
                self.on_error(message)
            else:
                logger.error("%s", message, exc_info=with_traceback)
        except BaseException:
            try:
                logger.error("on_error raised while reporting %r:\n%s", message,
                             traceback.format_exc())
            except BaseException:
                pass


# Set while a callback runs on this thread (see Gateway.ptr).
_callback = threading.local()

_ensure_gil_state = ctypes.pythonapi.PyGILState_Ensure
_ensure_gil_state.restype = ctypes.c_int


def _keep_thread_state():
    """Keeps this worker thread's Python thread state for its lifetime.

    ctypes wraps each callback in PyGILState_Ensure/Release; on a thread
    Python did not start, the Release that balances the first Ensure
    destroys the thread state, so every call would build a new one (and
    empty every threading.local). One Ensure that is never released keeps
    it: the cost is one thread state per worker thread, freed with the
    interpreter."""
    _ensure_gil_state()
    _callback.kept = True


def _filter_thunk(fn, name, phase, report):
    # What the phase returns once the failure is reported and 500 set.
    answered = _native.FILTER_RESPOND if phase == "request" else _native.FILTER_CONTINUE

    def call(request_pointer, _user):
        if not getattr(_callback, "kept", False):
            _keep_thread_state()
        request = Request(request_pointer)
        _callback.active = True
        try:
            return request._filter_outcome(fn(request))
        except BaseException as e:
            return request._fail(report, f"filter {name!r} ({phase} phase) raised "
                                 f"{type(e).__name__}: {e}", answered, phase == "response")
        finally:
            request._ptr = None
            _callback.active = False
    return _native.FILTER_FN(call)


def _handler_thunk(fn, name, report):
    def call(request_pointer, _user):
        if not getattr(_callback, "kept", False):
            _keep_thread_state()
        request = Request(request_pointer)
        _callback.active = True
        try:
            return request._handler_outcome(fn(request))
        except BaseException as e:
            return request._fail(report, f"handler {name!r} raised {type(e).__name__}: {e}",
                                 _native.OK)
        finally:
            request._ptr = None
            _callback.active = False
    return _native.HANDLER_FN(call)


def _error_thunk(report):
    def call(message, length, _user):
        report(to_str(ctypes.string_at(message, length)) if length else "")
    return _native.ERROR_FN(call)


def _document(config):
    if isinstance(config, (dict, list)):
        return json.dumps(config).encode()
    return to_bytes(config, "config")


class _Options:
    """portico_gateway_options built from Python filters and handlers; the
    callback objects it made are in `keepalive`, which the gateway must
    hold for as long as the C gateway lives."""

    def __init__(self, filters=(), handlers=(), port=None, ports=None, admin_port=None,
                 on_error=None):
        self.keepalive = []
        self.report = _Reporter(on_error)
        self.ptr = new_handle(lib.portico_gateway_options_new)
        try:
            for f in filters:
                self._add_filter(f)
            for h in handlers:
                self._add_handler(h)
            all_ports = dict(ports or {})
            if port is not None:
                all_ports[0] = port
            for index, value in all_ports.items():
                errors.check(lib.portico_gateway_options_set_port(self.ptr, index, value))
            if admin_port is not None:
                errors.check(lib.portico_gateway_options_set_admin_port(self.ptr, admin_port))
            on_error_fn = _error_thunk(self.report)
            self.keepalive.append(on_error_fn)
            errors.check(lib.portico_gateway_options_set_error_callback(self.ptr, on_error_fn, None))
        except BaseException:
            self.free()
            raise

    def _add_filter(self, f):
        if isinstance(f, NativeFilter):
            on_request = _native.FILTER_FN() if f.request_phase is None else \
                ctypes.cast(f.request_phase, _native.FILTER_FN)
            on_response = _native.FILTER_FN() if f.response_phase is None else \
                ctypes.cast(f.response_phase, _native.FILTER_FN)
            user = f.user
        elif isinstance(f, Filter):
            on_request = _native.FILTER_FN() if f.request_phase is None else \
                _filter_thunk(f.request_phase, f.name, "request", self.report)
            on_response = _native.FILTER_FN() if f.response_phase is None else \
                _filter_thunk(f.response_phase, f.name, "response", self.report)
            user = None
        else:
            raise TypeError(f"not a portico.Filter: {f!r} (decorate it with @portico.filter(name))")
        self.keepalive += [f, on_request, on_response]
        name = to_bytes(f.name, "filter name")
        errors.check(lib.portico_gateway_options_add_filter(self.ptr, name, len(name), f.priority,
                                                            on_request, on_response, user))

    def _add_handler(self, h):
        if isinstance(h, NativeHandler):
            fn, user = ctypes.cast(h.fn, _native.HANDLER_FN), h.user
        elif isinstance(h, Handler):
            fn, user = _handler_thunk(h.fn, h.name, self.report), None
        else:
            raise TypeError(f"not a portico.Handler: {h!r} (decorate it with @portico.handler(name))")
        self.keepalive += [h, fn]
        name = to_bytes(h.name, "handler name")
        errors.check(lib.portico_gateway_options_add_handler(self.ptr, name, len(name), fn, user))

    def free(self):
        pointer, self.ptr = self.ptr, None
        if pointer is not None:
            lib.portico_gateway_options_free(pointer)


def check_config(config, filters=(), handlers=()):
    """Validates a configuration (a dict, or JSON text) that may name these
    filters and handlers, without binding anything. Raises InvalidJsonError
    or InvalidConfigError listing every problem (`.problems`)."""
    text = _document(config)
    options = _Options(filters, handlers)
    try:
        errors.check(lib.portico_gateway_check(text, len(text), options.ptr))
    finally:
        options.free()


# Gateways still open at interpreter exit are closed before Python goes
# away, so no worker thread calls into a finalising interpreter.
_open_gateways = weakref.WeakSet()


@atexit.register
def _close_open_gateways():
    for gateway in list(_open_gateways):
        try:
            gateway.close()
        except Exception:
            pass


class Gateway(Handle):
    """A gateway from a configuration document (docs/config.md): a dict or
    its JSON text. Python filters and handlers are named from it like the
    built-in ones.

        with portico.Gateway(config, filters=[tenant], port=0) as gw:
            print(gw.port())

    `port` replaces listener 0's port (0: ephemeral), `ports` others by
    index ({1: 0}), `admin_port` the admin listener's. `on_error(message)`
    receives callback failures (default: the "portico" logger).

    Methods may be called from any thread, but not from its own filters and
    handlers (they raise StateError), except request_stop()."""

    _free = lib.portico_gateway_free
    _what = "Gateway"

    def __init__(self, config, *, filters=(), handlers=(), port=None, ports=None, admin_port=None,
                 on_error=None, _from_file=False):
        super().__init__(None)
        options = _Options(filters, handlers, port, ports, admin_port, on_error)
        try:
            if _from_file:
                path = to_bytes(os.fsdecode(config), "path")
                self._ptr = new_handle(lib.portico_gateway_new_from_file, path, len(path), options.ptr)
            else:
                text = _document(config)
                self._ptr = new_handle(lib.portico_gateway_new, text, len(text), options.ptr)
        finally:
            options.free()  # copied by the gateway; not the callbacks
        self._keepalive = options.keepalive
        self._runner = None
        _open_gateways.add(self)

    @property
    def ptr(self):
        # The C gateway joins its worker threads when it stops: a callback
        # that stopped or freed its own gateway would wait for itself.
        if getattr(_callback, "active", False):
            raise errors.StateError("a filter or handler may not call its gateway (except "
                                    "request_stop())", _native.ERR_STATE)
        return super().ptr

    @classmethod
    def from_file(cls, path, **kwargs):
        """From a configuration file, which reload_file() reads again."""
        return cls(path, _from_file=True, **kwargs)

    def start(self):
        """Binds the listeners and serves on the gateway's own threads;
        returns once it is serving. IOFailure when a port is taken."""
        errors.check(lib.portico_gateway_start(self.ptr))
        return self

    def run(self):
        """Starts (unless started) and blocks until stop() or
        request_stop() from elsewhere, or Ctrl-C (which stops it)."""
        pointer = self.ptr
        outcome = []

        def serve():
            status = lib.portico_gateway_run(pointer)
            # The message is per thread: read it on the thread that failed.
            outcome.append((status, lib.portico_last_error().decode("utf-8", "replace")))

        runner = threading.Thread(target=serve, name="portico-run", daemon=True)
        runner.start()
        try:
            while runner.is_alive():
                runner.join(0.2)  # short waits, so that Ctrl-C is seen
        except KeyboardInterrupt:
            lib.portico_gateway_request_stop(pointer)
            runner.join()
            raise
        status, message = outcome[0]
        if status != _native.OK:
            raise errors.error_for(status, message)

    def reload(self, config):
        """Swaps in a new document; an invalid one raises and leaves the
        running one in place."""
        text = _document(config)
        errors.check(lib.portico_gateway_reload(self.ptr, text, len(text)))

    def reload_file(self):
        errors.check(lib.portico_gateway_reload_file(self.ptr))

    def stop(self, drain=5.0):
        """Stops accepting, lets requests in flight finish for up to `drain`
        seconds, and joins the threads. Idempotent."""
        errors.check(lib.portico_gateway_stop(self.ptr, round(drain * 1e9)))

    def request_stop(self):
        """Asks for a stop and returns at once (from anywhere, callbacks
        included)."""
        pointer = self._ptr
        if pointer is None:
            raise errors.closed(self._what)
        errors.check(lib.portico_gateway_request_stop(pointer))

    def metrics(self):
        """The Prometheus text of GET /metrics."""
        out, length = ctypes.c_void_p(), ctypes.c_size_t()
        errors.check(lib.portico_gateway_metrics(self.ptr, ctypes.byref(out), ctypes.byref(length)))
        try:
            return to_str(view(out, length))
        finally:
            lib.portico_string_free(out)

    def port(self, index=0):
        """The bound port of listener `index` (after start)."""
        out = ctypes.c_uint16()
        errors.check(lib.portico_gateway_port(self.ptr, index, ctypes.byref(out)))
        return out.value

    @property
    def admin_port(self):
        """The admin listener's port; 0 when it is disabled."""
        out = ctypes.c_uint16()
        errors.check(lib.portico_gateway_admin_port(self.ptr, ctypes.byref(out)))
        return out.value

    @property
    def generation(self):
        """The configuration generation serving (0, then +1 per reload)."""
        out = ctypes.c_uint64()
        errors.check(lib.portico_gateway_generation(self.ptr, ctypes.byref(out)))
        return out.value

    def __enter__(self):
        """Starts the gateway unless it was started already."""
        status = lib.portico_gateway_start(self.ptr)
        if status != _native.ERR_STATE:
            errors.check(status)
        return self

    def close(self):
        """Stops without drain and frees the gateway; then, and only then,
        its callbacks are released."""
        if self._ptr is not None and getattr(_callback, "active", False):
            raise errors.StateError("a filter or handler may not close its gateway",
                                    _native.ERR_STATE)
        _open_gateways.discard(self)
        super().close()
        self._keepalive = []

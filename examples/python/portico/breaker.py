"""The circuit breaker on its own (docs/breaker.md)."""
import ctypes
import json

from . import errors
from ._handle import Handle, new_handle
from ._native import NOW, BreakerPermit, lib

_ADMISSIONS = {0: "admitted", 1: "rejected_open", 2: "rejected_half_open_full",
               3: "rejected_max_in_flight", 4: "rejected_max_pending"}


class BreakerRejected(Exception):
    """Raised by `with breaker.acquire():` when the breaker refuses the
    request; `admission` says why ("rejected_open"...)."""

    def __init__(self, admission, retry_after):
        self.admission = admission
        self.retry_after = retry_after
        super().__init__(f"circuit breaker: {admission}"
                         + (f", retry after {retry_after:.3f} s" if retry_after else ""))


class Permit:
    """A request's ticket: hand it back exactly once with success(),
    failure() or cancel(); or use it as a context manager, which reports
    success on a normal exit and failure when the block raises (and raises
    BreakerRejected on entry when the request was not admitted)."""

    __slots__ = ("_breaker", "_permit", "admission", "_done")

    def __init__(self, breaker, permit):
        self._breaker = breaker
        self._permit = permit
        self.admission = _ADMISSIONS.get(permit.admission, str(permit.admission))
        self._done = permit.admission != 0

    @property
    def admitted(self):
        return self.admission == "admitted"

    def __bool__(self):
        return self.admitted

    def _finish(self, fn, *now):
        if self._done:
            raise errors.StateError("this permit was already handed back or not admitted",
                                    errors.StateError.status)
        errors.check(fn(self._breaker.ptr, ctypes.byref(self._permit), *now))
        self._done = True

    def success(self, now_ns=None):
        self._finish(lib.portico_breaker_success, NOW if now_ns is None else now_ns)

    def failure(self, now_ns=None):
        self._finish(lib.portico_breaker_failure, NOW if now_ns is None else now_ns)

    def cancel(self):
        self._finish(lib.portico_breaker_cancel)

    def __enter__(self):
        if not self.admitted:
            raise BreakerRejected(self.admission, self._breaker.retry_after())
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self._done:
            self.success() if exc_type is None else self.failure()


class Breaker(Handle):
    """Stops sending requests to a failing upstream, then probes it. One
    thread at a time. `config`: a dict (or JSON text) with the fields of a
    service's "breaker" object (docs/config.md), e.g.
    {"consecutive_failures": 3, "open_duration": "1s"}."""

    _free = lib.portico_breaker_free
    _what = "Breaker"

    def __init__(self, config=None):
        if config is None:
            text = b""
        elif isinstance(config, (str, bytes)):
            text = config.encode() if isinstance(config, str) else config
        else:
            text = json.dumps(config).encode()
        super().__init__(new_handle(lib.portico_breaker_new, text, len(text)))

    def acquire(self, now_ns=None):
        """Asks to send one request: a Permit (check .admitted)."""
        permit = BreakerPermit()
        errors.check(lib.portico_breaker_acquire(self.ptr, NOW if now_ns is None else now_ns,
                                                 ctypes.byref(permit)))
        return Permit(self, permit)

    def state(self, now_ns=None):
        """"closed", "open" or "half_open"."""
        out = ctypes.c_int32()
        errors.check(lib.portico_breaker_state(self.ptr, NOW if now_ns is None else now_ns,
                                               ctypes.byref(out)))
        return lib.portico_breaker_state_name(out.value).decode()

    def retry_after(self, now_ns=None):
        """Seconds left in the open period; 0 unless open."""
        out = ctypes.c_int64()
        errors.check(lib.portico_breaker_retry_after(self.ptr, NOW if now_ns is None else now_ns,
                                                     ctypes.byref(out)))
        return out.value / 1e9

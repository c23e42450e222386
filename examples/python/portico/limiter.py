"""The rate limiter on its own (docs/limiter.md)."""
import ctypes
from dataclasses import dataclass

from . import errors
from ._handle import Handle, new_handle
from ._native import NOW, LimitDecision, lib, to_bytes

NS = 1_000_000_000


@dataclass(frozen=True)
class Decision:
    """One check's answer. `allowed` requests were counted; `retry_after`
    and `reset_after` are seconds (also given exactly in nanoseconds)."""

    allowed: bool
    cost_out_of_range: bool
    limit: int
    remaining: int
    retry_after_ns: int
    reset_after_ns: int

    @property
    def retry_after(self):
        return self.retry_after_ns / NS

    @property
    def reset_after(self):
        return self.reset_after_ns / NS

    def __bool__(self):
        return self.allowed


class Limiter(Handle):
    """GCRA per key: `rate` requests per `period` seconds plus `burst`
    beyond it, for up to `max_keys` keys at once. Thread-safe."""

    _free = lib.portico_limiter_free
    _what = "Limiter"

    def __init__(self, rate, period=1.0, burst=0, max_keys=65536):
        super().__init__(new_handle(lib.portico_limiter_new, int(rate), round(period * NS),
                                    int(burst), int(max_keys)))

    def check(self, key, cost=1, now_ns=None):
        """Decides and counts a request of `cost` for `key` (str or bytes).
        `now_ns`: a reading of portico.now_ns() for simulated time; None
        reads the clock."""
        limiter = self.ptr
        key = to_bytes(key, "key")
        out = LimitDecision()
        errors.check(lib.portico_limiter_check(limiter, key, len(key), cost,
                                               NOW if now_ns is None else now_ns, ctypes.byref(out)))
        return Decision(bool(out.allowed), bool(out.cost_out_of_range), out.limit, out.remaining,
                        out.retry_after_ns, out.reset_after_ns)


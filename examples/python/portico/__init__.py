"""Portico from Python: the gateway with filters and handlers written in
Python, and the primitives (router, JWT verifier, rate limiter, circuit
breaker, balancer) on their own, over the C ABI (capi/portico.h) with
ctypes. No compiled extension: set PORTICO_LIBRARY to libportico's shared
object when the loader does not find it.

Every object that owns a C handle is a context manager and has close();
using it after close() raises InvalidHandleError. Every failure of the
library raises a subclass of portico.Error carrying the status and the
library's message.
"""
from ._native import lib as _lib
from .balancer import Balancer, Endpoint, hash_key
from .breaker import Breaker, BreakerRejected, Permit
from .errors import (CapacityError, ConflictError, Error, InternalError, InvalidArgumentError,
                     InvalidConfigError, InvalidHandleError, InvalidJsonError, InvalidUtf8Error,
                     IOFailure, MalformedError, NoMemoryError, NotFoundError, StateError)
from .gateway import (Filter, Gateway, Handler, NativeFilter, NativeHandler, Request, Response,
                      check_config, filter, handler)
from .jwt import JwtCache, JwtResult, JwtVerifier
from .limiter import Decision, Limiter
from .router import Match, Router

__version__ = "0.1.0"
# The library actually loaded ("0.1.0").
libportico_version = _lib.portico_version_string().decode()


def now_ns():
    """The monotonic clock the primitives use, in nanoseconds: the
    timeline of every `now_ns=` argument."""
    return _lib.portico_now_ns()


__all__ = [
    "Balancer", "Breaker", "BreakerRejected", "CapacityError", "ConflictError", "Decision",
    "Endpoint", "Error", "Filter", "Gateway", "Handler", "IOFailure", "InternalError",
    "InvalidArgumentError", "InvalidConfigError", "InvalidHandleError", "InvalidJsonError",
    "InvalidUtf8Error", "JwtCache", "JwtResult", "JwtVerifier", "Limiter", "MalformedError", "Match",
    "NativeFilter", "NativeHandler", "NoMemoryError", "NotFoundError", "Permit", "Request",
    "Response", "Router", "StateError", "check_config", "filter", "handler", "hash_key",
    "libportico_version", "now_ns",
]

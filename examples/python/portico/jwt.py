"""The JWT verifier on its own (docs/jwt.md)."""
import ctypes
import json
import threading
from dataclasses import dataclass

from . import errors
from ._handle import Handle, new_handle
from ._native import lib, to_bytes, to_str, view

_KEY_KINDS = {"pem": 0, "hmac": 1, "jwk": 2}
_OPTION_NAMES = ("algorithms", "issuers", "audiences", "required_claims", "leeway",
                 "max_token_bytes")


@dataclass(frozen=True)
class JwtResult:
    """The outcome of one verification. `valid` is True when the token was
    accepted; otherwise `reason` ("expired", "bad_signature"...) and
    `message` (safe to log, never the token) say why. `claims` is the
    verified payload (a dict) or None; `from_cache` is True when a cache
    answered without checking the signature again."""

    valid: bool
    reason: str
    reason_code: int
    message: str
    claims: dict
    from_cache: bool

    def __bool__(self):
        return self.valid

    def claim(self, path, default=None):
        """A claim by dotted path ("realm_access.role"), or `default`."""
        value = self.claims
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value


def _options_json(options):
    unknown = set(options) - set(_OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown verifier option(s): {', '.join(sorted(unknown))}")
    return json.dumps({k: v for k, v in options.items() if v is not None}).encode()


class _Results(threading.local):
    """One reusable C result per thread (verify() copies its answer out)."""
    handle = None


class _Verifying(Handle):
    def __init__(self, pointer):
        super().__init__(pointer)
        self._results = _Results()
        self._all_results = []
        self._lock = threading.Lock()

    def _result_handle(self):
        handle = self._results.handle
        if handle is None:
            handle = new_handle(lib.portico_jwt_result_new)
            self._results.handle = handle
            with self._lock:
                self._all_results.append(handle)
        return handle

    def _verify(self, verify_fn, token, now):
        target = self.ptr
        token = to_bytes(token, "token")
        result = self._result_handle()
        errors.check(verify_fn(target, token, len(token), int(now or 0), result))
        return _read_result(result)

    def close(self):
        if getattr(self, "_all_results", None):
            with self._lock:
                results, self._all_results = self._all_results, []
            for handle in results:
                lib.portico_jwt_result_free(handle)
            self._results = _Results()
        super().close()


def _read_result(result):
    reason = ctypes.c_int32()
    errors.check(lib.portico_jwt_result_reason(result, ctypes.byref(reason)))
    text, length = ctypes.c_void_p(), ctypes.c_size_t()
    errors.check(lib.portico_jwt_result_message(result, ctypes.byref(text), ctypes.byref(length)))
    message = to_str(view(text, length))
    claims = None
    if reason.value == 0:
        errors.check(lib.portico_jwt_result_claims(result, ctypes.byref(text), ctypes.byref(length)))
        claims = json.loads(view(text, length))
    cached = ctypes.c_int32()
    errors.check(lib.portico_jwt_result_from_cache(result, ctypes.byref(cached)))
    return JwtResult(reason.value == 0, lib.portico_jwt_reason_name(reason.value).decode(),
                     reason.value, message, claims, bool(cached.value))


class JwtVerifier(_Verifying):
    """Verifies compact JWS tokens against a key set and a policy; safe to
    use from several threads at once.

    Options (keywords of the constructors): algorithms, issuers, audiences,
    required_claims (lists of str), leeway (seconds, default 30),
    max_token_bytes (default 8192)."""

    _free = lib.portico_jwt_verifier_free
    _what = "JwtVerifier"

    @classmethod
    def from_jwks(cls, jwks, **options):
        """From a JWKS document (a dict or its JSON text); keys that cannot
        be used are left out, InvalidArgumentError when none is left."""
        if isinstance(jwks, dict):
            jwks = json.dumps(jwks)
        doc, opts = to_bytes(jwks, "jwks"), _options_json(options)
        return cls(new_handle(lib.portico_jwt_verifier_new_jwks, doc, len(doc), opts, len(opts)))

    @classmethod
    def from_key(cls, key, kind="pem", kid="", **options):
        """From one key: kind "pem" (RSA or EC public key), "hmac" (a secret
        of at least 32 bytes) or "jwk" (one JWK, a dict or its JSON text)."""
        if kind not in _KEY_KINDS:
            raise ValueError(f"key kind must be one of {', '.join(_KEY_KINDS)}, not {kind!r}")
        if isinstance(key, dict):
            key = json.dumps(key)
        key, kid, opts = to_bytes(key, "key"), to_bytes(kid, "kid"), _options_json(options)
        return cls(new_handle(lib.portico_jwt_verifier_new_key, _KEY_KINDS[kind], key, len(key),
                              kid, len(kid), opts, len(opts)))

    def verify(self, token, now=None):
        """Verifies `token` at `now` (Unix seconds; None reads the clock).
        A refused token is not an exception: read the result."""
        return self._verify(lib.portico_jwt_verify, token, now)

    def cache(self, capacity=0):
        """A cache of verified tokens in front of this verifier (0: 4096
        entries). It keeps the verifier alive: close them in any order."""
        return JwtCache(new_handle(lib.portico_jwt_cache_new, self.ptr, capacity))


class JwtCache(_Verifying):
    """A repeated token skips the signature check. One thread at a time."""

    _free = lib.portico_jwt_cache_free
    _what = "JwtCache"

    def verify(self, token, now=None):
        return self._verify(lib.portico_jwt_cache_verify, token, now)

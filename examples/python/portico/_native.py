"""The C ABI (capi/portico.h) as ctypes declarations, and the conversions
between Python values and its pointer + length strings.

Nothing here is public: the rest of the package wraps it. The library is
found through PORTICO_LIBRARY (a path to libportico's shared object), then
the dynamic loader's search path.
"""
import ctypes
import ctypes.util
import os

# The ABI this binding is written against (capi/portico.h's version macros):
# a library of the same major version and at least this minor version fits.
ABI_MAJOR = 0
ABI_MINOR = 1

# portico_status values (stable across releases).
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_INVALID_HANDLE = 2
ERR_INVALID_UTF8 = 3
ERR_NOT_FOUND = 9
ERR_STATE = 11

FILTER_CONTINUE = 0
FILTER_RESPOND = 1
# Returned by a callback that failed and could not even answer 500 (or set
# it) by itself: outside the contract on purpose, so that the gateway
# answers 500 and reports it.
CALLBACK_FAILED = -1

NOW = -(2**63)  # PORTICO_NOW: the library reads the monotonic clock

status_t = ctypes.c_int32
handle_t = ctypes.c_void_p
size_t = ctypes.c_size_t
text_t = ctypes.c_char_p  # in: pointer + length, never relied on for a NUL
out_handle = ctypes.POINTER(ctypes.c_void_p)
out_view = ctypes.POINTER(ctypes.c_void_p)
out_size = ctypes.POINTER(ctypes.c_size_t)
i32, u32, i64, u64, u16 = ctypes.c_int32, ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint16
p_i32 = ctypes.POINTER(ctypes.c_int32)
p_u32 = ctypes.POINTER(ctypes.c_uint32)
p_i64 = ctypes.POINTER(ctypes.c_int64)
p_u64 = ctypes.POINTER(ctypes.c_uint64)
p_u16 = ctypes.POINTER(ctypes.c_uint16)


class LimitDecision(ctypes.Structure):
    _fields_ = [("allowed", ctypes.c_int32), ("cost_out_of_range", ctypes.c_int32),
                ("limit", ctypes.c_int64), ("remaining", ctypes.c_int64),
                ("retry_after_ns", ctypes.c_int64), ("reset_after_ns", ctypes.c_int64)]


class BreakerPermit(ctypes.Structure):
    _fields_ = [("opaque", ctypes.c_uint64 * 2), ("admission", ctypes.c_int32),
                ("reserved", ctypes.c_int32)]


class Endpoint(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("generation", ctypes.c_uint32)]


class Header(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("name_len", ctypes.c_size_t),
                ("value", ctypes.c_char_p), ("value_len", ctypes.c_size_t)]


FILTER_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)
HANDLER_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)
ERROR_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)

S = status_t
# name: (restype, argtypes). Every entry point of the header a wrapper uses.
_SIGNATURES = {
    "portico_version": (u32, []),
    "portico_version_string": (ctypes.c_char_p, []),
    "portico_status_name": (ctypes.c_char_p, [status_t]),
    "portico_last_error": (ctypes.c_char_p, []),
    "portico_string_free": (None, [ctypes.c_void_p]),
    "portico_now_ns": (i64, []),
    # router
    "portico_router_new": (S, [out_handle]),
    "portico_router_free": (None, [handle_t]),
    "portico_router_add": (S, [handle_t, text_t, size_t, text_t, size_t, text_t, size_t,
                               text_t, size_t, p_u32]),
    "portico_router_size": (S, [handle_t, out_size]),
    "portico_match_new": (S, [out_handle]),
    "portico_match_free": (None, [handle_t]),
    "portico_router_match": (S, [handle_t, handle_t, text_t, size_t, text_t, size_t, text_t, size_t]),
    "portico_match_result": (S, [handle_t, p_i32]),
    "portico_match_route": (S, [handle_t, p_u32]),
    "portico_match_param_count": (S, [handle_t, out_size]),
    "portico_match_param": (S, [handle_t, size_t, out_view, out_size, out_view, out_size]),
    "portico_match_param_by_name": (S, [handle_t, text_t, size_t, out_view, out_size]),
    # JWT
    "portico_jwt_reason_name": (ctypes.c_char_p, [i32]),
    "portico_jwt_verifier_new_jwks": (S, [out_handle, text_t, size_t, text_t, size_t]),
    "portico_jwt_verifier_new_key": (S, [out_handle, i32, text_t, size_t, text_t, size_t,
                                         text_t, size_t]),
    "portico_jwt_verifier_free": (None, [handle_t]),
    "portico_jwt_cache_new": (S, [out_handle, handle_t, size_t]),
    "portico_jwt_cache_free": (None, [handle_t]),
    "portico_jwt_result_new": (S, [out_handle]),
    "portico_jwt_result_free": (None, [handle_t]),
    "portico_jwt_verify": (S, [handle_t, text_t, size_t, i64, handle_t]),
    "portico_jwt_cache_verify": (S, [handle_t, text_t, size_t, i64, handle_t]),
    "portico_jwt_result_reason": (S, [handle_t, p_i32]),
    "portico_jwt_result_message": (S, [handle_t, out_view, out_size]),
    "portico_jwt_result_claims": (S, [handle_t, out_view, out_size]),
    "portico_jwt_result_claim_string": (S, [handle_t, text_t, size_t, out_view, out_size]),
    "portico_jwt_result_from_cache": (S, [handle_t, p_i32]),
    # limiter
    "portico_limiter_new": (S, [out_handle, i64, i64, i64, i64]),
    "portico_limiter_free": (None, [handle_t]),
    "portico_limiter_check": (S, [handle_t, text_t, size_t, u32, i64, ctypes.POINTER(LimitDecision)]),
    # breaker
    "portico_breaker_new": (S, [out_handle, text_t, size_t]),
    "portico_breaker_free": (None, [handle_t]),
    "portico_breaker_acquire": (S, [handle_t, i64, ctypes.POINTER(BreakerPermit)]),
    "portico_breaker_success": (S, [handle_t, ctypes.POINTER(BreakerPermit), i64]),
    "portico_breaker_failure": (S, [handle_t, ctypes.POINTER(BreakerPermit), i64]),
    "portico_breaker_cancel": (S, [handle_t, ctypes.POINTER(BreakerPermit)]),
    "portico_breaker_state": (S, [handle_t, i64, p_i32]),
    "portico_breaker_retry_after": (S, [handle_t, i64, p_i64]),
    "portico_breaker_state_name": (ctypes.c_char_p, [i32]),
    # balancer
    "portico_balancer_new": (S, [out_handle, text_t, size_t]),
    "portico_balancer_free": (None, [handle_t]),
    "portico_balancer_pick": (S, [handle_t, u64, i64, ctypes.POINTER(Endpoint)]),
    "portico_balancer_endpoint_id": (S, [handle_t, Endpoint, out_view, out_size]),
    "portico_balancer_find": (S, [handle_t, text_t, size_t, ctypes.POINTER(Endpoint)]),
    "portico_balancer_start": (S, [handle_t, Endpoint]),
    "portico_balancer_end": (S, [handle_t, Endpoint, i64, i32, i64]),
    "portico_balancer_set_healthy": (S, [handle_t, Endpoint, i32]),
    "portico_balancer_add": (S, [handle_t, text_t, size_t, u32, ctypes.POINTER(Endpoint)]),
    "portico_balancer_remove": (S, [handle_t, text_t, size_t]),
    "portico_hash_key": (u64, [text_t, size_t]),
    # requests, from filter and handler callbacks
    "portico_request_method": (S, [handle_t, out_view, out_size]),
    "portico_request_path": (S, [handle_t, out_view, out_size]),
    "portico_request_query": (S, [handle_t, out_view, out_size]),
    "portico_request_header": (S, [handle_t, text_t, size_t, out_view, out_size]),
    "portico_request_header_count": (S, [handle_t, out_size]),
    "portico_request_header_at": (S, [handle_t, size_t, out_view, out_size, out_view, out_size]),
    "portico_request_client_address": (S, [handle_t, out_view, out_size]),
    "portico_request_param": (S, [handle_t, text_t, size_t, out_view, out_size]),
    "portico_request_claims": (S, [handle_t, out_view, out_size]),
    "portico_request_consumer": (S, [handle_t, out_view, out_size]),
    "portico_request_plugin_config": (S, [handle_t, out_view, out_size]),
    "portico_request_body": (S, [handle_t, out_view, out_size]),
    "portico_request_set_header": (S, [handle_t, text_t, size_t, text_t, size_t]),
    "portico_request_remove_header": (S, [handle_t, text_t, size_t]),
    "portico_request_set_path": (S, [handle_t, text_t, size_t]),
    "portico_request_response_status": (S, [handle_t, p_i32]),
    "portico_request_set_response_status": (S, [handle_t, i32]),
    "portico_request_response_header": (S, [handle_t, text_t, size_t, out_view, out_size]),
    "portico_request_set_response_header": (S, [handle_t, text_t, size_t, text_t, size_t]),
    "portico_request_remove_response_header": (S, [handle_t, text_t, size_t]),
    "portico_request_respond": (S, [handle_t, i32, ctypes.POINTER(Header), size_t, text_t, size_t]),
    # gateway
    "portico_gateway_options_new": (S, [out_handle]),
    "portico_gateway_options_free": (None, [handle_t]),
    "portico_gateway_options_add_filter": (S, [handle_t, text_t, size_t, i32, FILTER_FN, FILTER_FN,
                                               ctypes.c_void_p]),
    "portico_gateway_options_add_handler": (S, [handle_t, text_t, size_t, HANDLER_FN, ctypes.c_void_p]),
    "portico_gateway_options_set_port": (S, [handle_t, size_t, u16]),
    "portico_gateway_options_set_admin_port": (S, [handle_t, u16]),
    "portico_gateway_options_set_error_callback": (S, [handle_t, ERROR_FN, ctypes.c_void_p]),
    "portico_gateway_check": (S, [text_t, size_t, handle_t]),
    "portico_gateway_new": (S, [out_handle, text_t, size_t, handle_t]),
    "portico_gateway_new_from_file": (S, [out_handle, text_t, size_t, handle_t]),
    "portico_gateway_free": (None, [handle_t]),
    "portico_gateway_start": (S, [handle_t]),
    "portico_gateway_run": (S, [handle_t]),
    "portico_gateway_reload": (S, [handle_t, text_t, size_t]),
    "portico_gateway_reload_file": (S, [handle_t]),
    "portico_gateway_stop": (S, [handle_t, i64]),
    "portico_gateway_request_stop": (S, [handle_t]),
    "portico_gateway_metrics": (S, [handle_t, ctypes.POINTER(ctypes.c_void_p), out_size]),
    "portico_gateway_port": (S, [handle_t, size_t, p_u16]),
    "portico_gateway_admin_port": (S, [handle_t, p_u16]),
    "portico_gateway_generation": (S, [handle_t, p_u64]),
}


def _candidates():
    explicit = os.environ.get("PORTICO_LIBRARY")
    if explicit:
        return [explicit]
    found = ctypes.util.find_library("portico")
    return [name for name in (found, "libportico.so.0", "libportico.so") if name]


def _load():
    problems = []
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            problems.append(str(e))
            continue
        missing = [fn for fn in _SIGNATURES if not hasattr(lib, fn)]
        if missing:
            problems.append(f"{name} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
            continue
        for fn, (restype, argtypes) in _SIGNATURES.items():
            f = getattr(lib, fn)
            f.restype = restype
            f.argtypes = argtypes
        return lib
    raise ImportError("cannot load the Portico C library (" + "; ".join(problems) +
                      "): set PORTICO_LIBRARY to the path of libportico.so")


lib = _load()

_loaded = lib.portico_version()
if _loaded >> 16 != ABI_MAJOR or (_loaded >> 8) & 0xFF < ABI_MINOR:
    raise ImportError(f"libportico {lib.portico_version_string().decode()} does not fit this binding "
                      f"(needs {ABI_MAJOR}.{ABI_MINOR} or a later {ABI_MAJOR}.x)")


def to_bytes(value, what="value"):
    """A str, bytes or bytes-like as bytes for a pointer + length argument.

    str is UTF-8; a str that came from bytes() decoding with surrogateescape
    (see to_str) gets its original bytes back, and lone surrogates are passed
    through as the invalid UTF-8 they are, so that the library, not Python,
    decides what it refuses (PORTICO_ERR_INVALID_UTF8 for text)."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def to_str(data):
    """Bytes from the library as str; bytes that are not UTF-8 (header
    values may hold any) survive as surrogates and go back out unchanged."""
    return data.decode("utf-8", "surrogateescape")


def view(pointer, length):
    """The bytes of a borrowed (pointer, length) view, copied."""
    if length.value == 0:
        return b""
    return ctypes.string_at(pointer.value, length.value)

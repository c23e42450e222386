"""The balancer on its own (docs/balancer.md)."""
import ctypes
import json
from dataclasses import dataclass

from . import errors
from ._handle import Handle, new_handle
from ._native import NOW, lib, to_bytes, to_str, view
from ._native import Endpoint as _CEndpoint

_OUTCOMES = {"success": 0, "failure": 1, "cancelled": 2}


def hash_key(key):
    """The stable 64-bit hash of an affinity key, for maglev's pick()."""
    key = to_bytes(key, "key")
    return lib.portico_hash_key(key, len(key))


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of a balancer; stale once the endpoint is removed."""

    id: str
    slot: int
    generation: int

    def _c(self):
        return _CEndpoint(self.slot, self.generation)


class Balancer(Handle):
    """Chooses an endpoint of a pool per request. One thread at a time.

    `config`: {"policy": "round_robin" | "weighted_round_robin" |
    "least_request" | "power_of_two_choices" | "peak_ewma" | "maglev",
    "endpoints": [{"id": "10.0.0.1:80", "weight": 1}, ...], "seed": 0,
    "panic_threshold": 0.5} (a dict or its JSON text); only "endpoints" is
    required."""

    _free = lib.portico_balancer_free
    _what = "Balancer"

    def __init__(self, config):
        text = to_bytes(config if isinstance(config, (str, bytes)) else json.dumps(config), "config")
        super().__init__(new_handle(lib.portico_balancer_new, text, len(text)))

    def pick(self, key=None, now_ns=None):
        """Chooses an endpoint; `key` (str, bytes or a hash_key() int) is
        maglev's affinity key. NotFoundError when none is available."""
        if key is None:
            key_hash = 0
        elif isinstance(key, int):
            key_hash = key
        else:
            key_hash = hash_key(key)
        out = _CEndpoint()
        errors.check(lib.portico_balancer_pick(self.ptr, key_hash, NOW if now_ns is None else now_ns,
                                               ctypes.byref(out)))
        return self._endpoint(out)

    def find(self, endpoint_id):
        """The endpoint of that id; NotFoundError when there is none."""
        text = to_bytes(endpoint_id, "id")
        out = _CEndpoint()
        errors.check(lib.portico_balancer_find(self.ptr, text, len(text), ctypes.byref(out)))
        return self._endpoint(out)

    def add(self, endpoint_id, weight=1):
        text = to_bytes(endpoint_id, "id")
        out = _CEndpoint()
        errors.check(lib.portico_balancer_add(self.ptr, text, len(text), weight, ctypes.byref(out)))
        return self._endpoint(out)

    def remove(self, endpoint_id):
        text = to_bytes(endpoint_id, "id")
        errors.check(lib.portico_balancer_remove(self.ptr, text, len(text)))

    def start(self, endpoint):
        """A request was sent to `endpoint` (least_request and the EWMA
        policies count these); end() it once."""
        errors.check(lib.portico_balancer_start(self.ptr, endpoint._c()))

    def end(self, endpoint, latency=0.0, outcome="success", now_ns=None):
        """The request ended after `latency` seconds: outcome "success",
        "failure" or "cancelled"."""
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(_OUTCOMES)}, not {outcome!r}")
        errors.check(lib.portico_balancer_end(self.ptr, endpoint._c(), round(latency * 1e9),
                                              _OUTCOMES[outcome], NOW if now_ns is None else now_ns))

    def set_healthy(self, endpoint, healthy):
        errors.check(lib.portico_balancer_set_healthy(self.ptr, endpoint._c(), 1 if healthy else 0))

    def _endpoint(self, c_endpoint):
        text, length = ctypes.c_void_p(), ctypes.c_size_t()
        errors.check(lib.portico_balancer_endpoint_id(self.ptr, c_endpoint, ctypes.byref(text),
                                                      ctypes.byref(length)))
        return Endpoint(to_str(view(text, length)), c_endpoint.slot, c_endpoint.generation)

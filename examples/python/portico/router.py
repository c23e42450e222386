"""The route table on its own (docs/router.md)."""
import ctypes
import threading
from dataclasses import dataclass, field

from . import errors
from ._handle import Handle, new_handle
from ._native import lib, to_bytes, to_str, view

_RESULTS = {0: "found", 1: "not_found", 2: "method_not_allowed"}


@dataclass(frozen=True)
class Match:
    """What a lookup found: `result` is "found", "not_found" or
    "method_not_allowed"; `route` is the route id when found (else None);
    `params` the captured parameters by name (the unnamed catch-all is
    "*")."""

    result: str
    route: int = None
    params: dict = field(default_factory=dict)

    def __bool__(self):
        return self.result == "found"


class Router(Handle):
    """Method, host and path pattern ("/users/{id}", "/static/{*rest}") to a
    route id and captured parameters.

    add() while no other thread uses the router; match() may then run from
    any number of threads (each lookup copies its answer out)."""

    _free = lib.portico_router_free
    _what = "Router"

    def __init__(self):
        super().__init__(new_handle(lib.portico_router_new))
        # One reusable C match per thread: lookups allocate nothing in C.
        self._matches = threading.local()
        self._all_matches = []
        self._lock = threading.Lock()

    def add(self, path, methods=None, host="", name=""):
        """Adds a route and returns its id (0, 1, ... in insertion order).
        `methods`: None (any), "GET,POST" or ["GET", "POST"].

        Raises MalformedError (pattern), InvalidArgumentError (method),
        ConflictError (the same place as another route)."""
        if methods is None:
            methods = ""
        elif not isinstance(methods, (str, bytes)):
            methods = ",".join(methods)
        args = [to_bytes(v, what) for v, what in
                ((name, "name"), (methods, "methods"), (host, "host"), (path, "path"))]
        route = ctypes.c_uint32()
        errors.check(lib.portico_router_add(self.ptr, args[0], len(args[0]), args[1], len(args[1]),
                                            args[2], len(args[2]), args[3], len(args[3]),
                                            ctypes.byref(route)))
        return route.value

    def __len__(self):
        n = ctypes.c_size_t()
        errors.check(lib.portico_router_size(self.ptr, ctypes.byref(n)))
        return n.value

    def match(self, method, path, host=""):
        """Looks a request up; a path that fits nothing is not an error
        (Match.result "not_found", falsy)."""
        router = self.ptr
        match = self._match()
        m, h, p = to_bytes(method, "method"), to_bytes(host, "host"), to_bytes(path, "path")
        errors.check(lib.portico_router_match(router, match, m, len(m), h, len(h), p, len(p)))
        result = ctypes.c_int32()
        errors.check(lib.portico_match_result(match, ctypes.byref(result)))
        if result.value != 0:
            return Match(_RESULTS.get(result.value, str(result.value)))
        route = ctypes.c_uint32()
        errors.check(lib.portico_match_route(match, ctypes.byref(route)))
        count = ctypes.c_size_t()
        errors.check(lib.portico_match_param_count(match, ctypes.byref(count)))
        params = {}
        name, name_len, value, value_len = (ctypes.c_void_p(), ctypes.c_size_t(),
                                            ctypes.c_void_p(), ctypes.c_size_t())
        for i in range(count.value):
            errors.check(lib.portico_match_param(match, i, ctypes.byref(name), ctypes.byref(name_len),
                                                 ctypes.byref(value), ctypes.byref(value_len)))
            params[to_str(view(name, name_len))] = to_str(view(value, value_len))
        return Match("found", route.value, params)

    def _match(self):
        match = getattr(self._matches, "handle", None)
        if match is None:
            match = new_handle(lib.portico_match_new)
            self._matches.handle = match
            with self._lock:
                self._all_matches.append(match)
        return match

    def close(self):
        # The matches refer to the router: free them first.
        if getattr(self, "_all_matches", None):
            with self._lock:
                matches, self._all_matches = self._all_matches, []
            for match in matches:
                lib.portico_match_free(match)
            self._matches = threading.local()
        super().close()

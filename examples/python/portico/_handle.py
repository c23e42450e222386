"""The base of every wrapper that owns a C handle."""
import ctypes

from . import errors


class Handle:
    """Owns one handle and frees it once: close(), the end of a `with`
    block, or garbage collection, whichever comes first. Calls after close()
    raise InvalidHandleError instead of reaching the library with a freed
    pointer."""

    _free = None  # the portico_<object>_free function
    _what = "object"

    def __init__(self, pointer):
        self._ptr = pointer

    @property
    def ptr(self):
        if self._ptr is None:
            raise errors.closed(self._what)
        return self._ptr

    @property
    def closed(self):
        return self._ptr is None

    def close(self):
        pointer, self._ptr = self._ptr, None
        if pointer is not None:
            type(self)._free(pointer)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass


def new_handle(constructor, *args):
    """Calls portico_<object>_new(&out, *args); the new handle, or raises."""
    out = ctypes.c_void_p()
    errors.check(constructor(ctypes.byref(out), *args))
    return out.value

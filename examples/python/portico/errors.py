"""Exceptions: one class per portico_status, all under portico.Error.

Every failing call of the C library raises the subclass of its status with
the library's message for that call (portico_last_error), so that callers
can catch broadly (portico.Error), by kind (portico.InvalidConfigError) or
by Python category (ValueError, LookupError).
"""
from . import _native

_BY_STATUS = {}


class Error(Exception):
    """A call into Portico failed.

    Attributes: `status` (the portico_status number), `status_name`
    ("PORTICO_ERR_INVALID_CONFIG") and `message` (the library's text, one
    problem per line for configurations)."""

    status = None

    def __init__(self, message, status=None):
        if status is not None:
            self.status = status
        self.message = message
        super().__init__(message)

    @property
    def status_name(self):
        return _native.lib.portico_status_name(self.status).decode()

    @property
    def problems(self):
        """The message as a list: a configuration's problems, one each."""
        return [line for line in self.message.splitlines() if line]

    def __str__(self):
        return f"{self.status_name}: {self.message}" if self.message else self.status_name

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.status is not None:
            _BY_STATUS.setdefault(cls.status, cls)


class InvalidArgumentError(Error, ValueError):
    status = 1


class InvalidHandleError(Error):
    """The object was closed (or is a request outside its callback)."""
    status = 2


class InvalidUtf8Error(Error, ValueError):
    status = 3


class InvalidJsonError(Error, ValueError):
    status = 4


class InvalidConfigError(Error, ValueError):
    status = 5


class MalformedError(Error, ValueError):
    status = 6


class ConflictError(Error):
    status = 7


class CapacityError(Error):
    status = 8


class NotFoundError(Error, LookupError):
    status = 9


class IOFailure(Error, OSError):
    """A file or socket operation failed (a port already in use...)."""
    status = 10


class StateError(Error):
    """Not allowed now: already started, stopped, or from a callback."""
    status = 11


class NoMemoryError(Error, MemoryError):
    status = 12


class InternalError(Error):
    status = 13


def error_for(status, message):
    """The exception for `status` (Error itself for a status this binding
    does not know)."""
    cls = _BY_STATUS.get(status, Error)
    return cls(message, status)


def check(status):
    """Raises the exception of a failed call; returns None on PORTICO_OK.
    Must run on the thread that made the call (the message is per thread)."""
    if status != _native.OK:
        raise error_for(status, _native.lib.portico_last_error().decode("utf-8", "replace"))


def closed(what):
    return InvalidHandleError(f"the {what} is closed", _native.ERR_INVALID_HANDLE)

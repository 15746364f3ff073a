"""The one exception tree of stratacache.

Every error a user can see from stratacache is a :class:`CacheError`. Driver errors
(redis, pymemcache, ``OSError``, ``sqlite3``) are translated at the backend boundary
and chained with ``raise ... from exc``, so the original stays on ``__cause__``::

    CacheError
    ├── BackendUnavailable      a backend cannot be reached (connect / I/O failure)
    ├── CacheTimeout            a backend did not answer in time
    ├── SerializationError      a value cannot be encoded, or stored bytes cannot be decoded
    ├── UnsupportedOperation    a backend cannot do an operation (names both)
    ├── ConfigurationError      (also ValueError) bad URL, parameter, option or missing extra
    ├── CacheClosed             the cache was closed
    ├── ProtocolError           malformed data on a wire protocol
    ├── SnapshotError           a snapshot file is truncated/corrupt (names file and offset)
    ├── RateLimitExceeded       a rate limiter refused a call (names the key and retry_after)
    ├── SourceError             a data source failed to load/store/delete a key (names both)
    ├── WriteQueueFull          a write-behind queue is full (backpressure: raise mode / timeout)
    ├── InvalidArgument         (also ValueError) a bad argument to an operation
    │   ├── InvalidKey          a key that is not a str, or that a backend cannot hold
    │   ├── InvalidTTL          a ttl that is not a positive finite number / timedelta / None
    │   └── ValueTooLarge       a value over a size limit (names the limit)
    └── WrongType               (also TypeError) an operation against a value of another kind:
                                incr on a non-integer, lpush on a plain value, ...

``InvalidArgument`` and ``WrongType`` are not in DESIGN.md's first list: a bad key or
ttl is neither a configuration error nor a backend failure, and users expect to be able
to catch it as the builtin ``ValueError``/``TypeError`` as well, so those two classes
inherit from both. No class shadows a builtin name.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "BackendUnavailable",
    "CacheClosed",
    "CacheError",
    "CacheTimeout",
    "ConfigurationError",
    "InvalidArgument",
    "InvalidKey",
    "InvalidTTL",
    "ProtocolError",
    "RateLimitExceeded",
    "SerializationError",
    "SnapshotError",
    "SourceError",
    "UnsupportedOperation",
    "ValueTooLarge",
    "WrongType",
    "WriteQueueFull",
]


class CacheError(Exception):
    """Base class of every error raised by stratacache."""


class BackendUnavailable(CacheError):
    """A backend could not be reached: connection refused, reset, or an I/O error."""


class AccessDenied(BackendUnavailable):
    """A backend refused our credentials or permissions (wrong password, an ACL rule).

    A subclass of :class:`BackendUnavailable` (the backend cannot be used), kept apart so
    that a configuration mistake is not mistaken for an outage and retried.
    """


class CacheTimeout(CacheError):
    """A backend did not answer within the configured timeout."""


class SerializationError(CacheError):
    """A value could not be serialized, or stored bytes could not be deserialized.

    Also raised for a pickled value whose signature is missing or does not match:
    such bytes are never unpickled.
    """


class UnsupportedOperation(CacheError):
    """A backend cannot perform an operation; the message names the backend and operation."""

    def __init__(self, backend: str, operation: str, reason: str = "") -> None:
        self.backend = backend
        self.operation = operation
        self.reason = reason
        message = f"backend {backend!r} does not support {operation}()"
        if reason:
            message += f": {reason}"
        super().__init__(message)


class ConfigurationError(CacheError, ValueError):
    """Bad configuration: an unknown or malformed URL parameter, option, or a missing extra."""


class CacheClosed(CacheError):
    """An operation was attempted on a cache (or backend) that has been closed."""


class ProtocolError(CacheError):
    """Malformed or unexpected data on a wire protocol."""


class SnapshotError(CacheError):
    """A snapshot file cannot be read (truncated, corrupt, not a snapshot) or written.

    ``path`` names the file and ``offset`` the byte at which reading stopped (None when
    the error is not about a position, e.g. a write failure); both are in the message.
    """

    def __init__(self, message: str, *, path: str = "<snapshot>", offset: int | None = None) -> None:
        self.path = path
        self.offset = offset
        where = path if offset is None else f"{path} at offset {offset}"
        super().__init__(f"{where}: {message}")


class RateLimitExceeded(CacheError):
    """A rate limiter refused a call: ``key`` is over its limit for ``retry_after`` seconds.

    ``decision`` is the limiter's full :class:`~stratacache.RateLimitDecision` (remaining,
    reset_after), when the limiter gave one.
    """

    def __init__(self, key: str, retry_after: float, decision: object = None) -> None:
        self.key = key
        self.retry_after = retry_after
        self.decision = decision
        super().__init__(f"rate limit exceeded for key {key!r}: retry after {retry_after:g} s")


class InvalidArgument(CacheError, ValueError):
    """An argument to a cache operation is not acceptable; the message names it."""


class InvalidKey(InvalidArgument):
    """A key is not a ``str``, or is one that the backend cannot hold."""


class InvalidTTL(InvalidArgument):
    """A ttl is not ``None``, a positive finite number of seconds, or a positive timedelta."""


class ValueTooLarge(InvalidArgument):
    """A value is larger than a limit (a cache's byte budget, a server's item size)."""


class WrongType(CacheError, TypeError):
    """An operation was applied to a key holding a value of another kind.

    For example ``incr`` on a key that holds a string, or ``lpush`` on a key that holds a
    plain value. The stored value is left unchanged.
    """


# ---- sources: errors of the data-source strategies (read/write-through, write-behind)


class SourceError(CacheError):
    """A data source failed to ``load``/``store``/``delete`` a key.

    ``key``, ``source`` (a description of the data source) and ``operation`` are
    attributes and in the message; the source's own exception is chained as ``__cause__``.
    """

    def __init__(self, operation: str, key: object, source: str) -> None:
        self.operation = operation
        self.key = key
        self.source = source
        what = "keys" if isinstance(key, list) else "key"  # a batch call names all its keys
        super().__init__(f"data source {source} failed to {operation} {what} {key!r}")


class WriteQueueFull(CacheError):
    """A write-behind queue has no room: raised at once (``on_full="raise"``) or after waiting.

    The write was not acknowledged: neither the cache nor the queue holds it.
    """

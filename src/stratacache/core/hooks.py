"""Hooks: user callbacks that observe cache operations and can never break them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["HOOK_NAMES", "OPERATIONS", "Hook", "HookEvent", "Hooks"]

logger = logging.getLogger("stratacache")

OPERATIONS: tuple[str, ...] = (
    "get", "get_many", "set", "set_many", "add", "delete", "delete_many", "exists", "incr", "decr",
    "expire", "touch", "ttl", "delete_pattern", "clear",
    "lpush", "rpush", "lpop", "rpop", "llen", "lrange",
    "sadd", "srem", "smembers", "sismember", "scard",
    "hset", "hget", "hgetall", "hdel", "hexists", "hlen", "hincrby",
    "get_item", "pull", "replace", "invalidate_tags",
)  # fmt: skip
"""Every cache operation that fires ``before_<op>``/``after_<op>`` hooks."""
HOOK_NAMES: frozenset[str] = frozenset(
    [f"before_{op}" for op in OPERATIONS] + [f"after_{op}" for op in OPERATIONS] + ["on_error"]
)
"""Every hook name a cache accepts."""


@dataclass(frozen=True, slots=True)
class HookEvent:
    """What a hook is told: the operation, the user's key(s), and for ``after_*`` the outcome.

    ``result`` is the operation's return value (for ``after_get``, what the caller gets:
    the value, or the default on a miss); ``error`` is set for ``on_error``.
    ``duration`` is the seconds the backend call took (set on ``after_*`` and ``on_error``
    events of operations that reached the backend; None otherwise): the facade reads the
    clock for it only while some hook is registered, so observers cost nothing when absent.
    ``hit`` is set on ``after_get`` only: True when the key held a value (a stored value
    equal to the default is still a hit).
    """

    operation: str
    key: Any = None
    value: Any = None
    result: Any = None
    error: BaseException | None = None
    duration: float | None = None
    hit: bool | None = None


Hook = Callable[[HookEvent], object]


class Hooks:
    """Named lists of callbacks. Exceptions inside a callback are logged and swallowed."""

    __slots__ = ("_hooks", "active", "wants_before")

    def __init__(self) -> None:
        self._hooks: dict[str, list[Hook]] = {}
        # A plain attribute, not __bool__: the facade tests it on every operation, and a
        # Python-level __bool__ call costs more than the rest of a cache hit's bookkeeping.
        self.active = False
        # Whether any before_* hook is registered: observers (metrics, tracing, logging) use
        # only after_*/on_error, and building a frozen HookEvent nobody reads costs ~0.5 us.
        self.wants_before = False

    def __bool__(self) -> bool:
        return self.active

    def add(self, name: str, hook: Hook) -> None:
        """Register ``hook`` under ``name`` (one of :data:`HOOK_NAMES`)."""
        if name not in HOOK_NAMES:
            raise ConfigurationError(f"unknown hook {name!r}; valid hooks: {', '.join(sorted(HOOK_NAMES))}")
        if not callable(hook):
            raise ConfigurationError(f"hook {name!r} must be callable, got {type(hook).__name__}")
        self._hooks.setdefault(name, []).append(hook)
        self.active = True
        self.wants_before = self.wants_before or name.startswith("before_")

    def remove(self, name: str, hook: Hook) -> None:
        """Unregister ``hook``; a hook that was never added is ignored."""
        hooks = self._hooks.get(name)
        if hooks and hook in hooks:
            hooks.remove(hook)
            if not hooks:
                del self._hooks[name]
            self.active = bool(self._hooks)
            self.wants_before = any(n.startswith("before_") for n in self._hooks)

    def fire(self, name: str, event: HookEvent) -> None:
        """Call every hook for ``name``; a failing hook is logged, never raised."""
        for hook in self._hooks.get(name, ()):
            try:
                hook(event)
            except Exception:
                # A hook is an observer: its bug must not fail or alter the cache operation.
                logger.exception("stratacache hook %s failed for %s", name, event.operation)

"""Hooks: user callbacks that observe cache operations and can never break them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["HOOK_NAMES", "OPERATIONS", "SAMPLED_OPERATIONS", "Hook", "HookEvent", "Hooks", "Sampler"]

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
SAMPLED_OPERATIONS: tuple[str, ...] = ("get", "set")
"""The operations whose latency samples :meth:`Hooks.add_sampler` callbacks receive."""


@dataclass(frozen=True, slots=True)
class HookEvent:
    """What a hook is told: the operation, the user's key(s), and for ``after_*`` the outcome.

    ``result`` is the operation's return value (for ``after_get``, what the caller gets:
    the value, or the default on a miss); ``error`` is set for ``on_error``.
    ``duration`` is the seconds the backend call took (set on ``after_*`` and ``on_error``
    events of operations that reached the backend and were timed; None otherwise): the facade
    reads the clock for it only while a hook wants it, so observers cost nothing when absent.
    (The fused fast path of an in-process cache reports a failed ``set`` with None.)
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
Sampler = Callable[[str, float, int], object]
"""``sampler(operation, seconds, weight)``: one timed call standing for ``weight`` calls."""


class Hooks:
    """Named lists of callbacks, and latency samplers. A failing callback is logged, never raised.

    Two kinds of observer:

    * hooks (:meth:`add`), called on every call of their operation with a :class:`HookEvent`.
      A ``before_get``/``after_get`` (``before_set``/``after_set``) hook turns off the fused
      fast path of ``get`` (``set``): every call then takes the full path and builds an event.
    * samplers (:meth:`add_sampler`), called only for the calls the cache times anyway for
      ``stats()`` latencies: one ``get``/``set`` in ``latency_sample`` (64 by default), each
      reported with the number of calls it stands for (``weight``). They keep the fast paths
      on, so they cost a hot cache nearly nothing; metrics that need every call's count read
      the cache's counters (``stats()``) instead.
    """

    __slots__ = ("_hooks", "active", "names", "on_error", "on_get", "on_set", "samplers", "wants_before")

    def __init__(self) -> None:
        self._hooks: dict[str, list[Hook]] = {}
        # Plain attributes, not __bool__ or methods: the facade tests them on every operation,
        # and a Python-level call costs more than the rest of a cache hit's bookkeeping.
        self.active = False
        # Whether any before_* hook is registered: observers (metrics, tracing, logging) use
        # only after_*/on_error, and building a frozen HookEvent nobody reads costs ~0.5 us.
        self.wants_before = False
        # Whether a get (set) hook is registered: only these turn the fused get (set) off.
        self.on_get = False
        self.on_set = False
        self.on_error = False
        # The registered hook names, so an event is built only when someone will read it.
        self.names: frozenset[str] = frozenset()
        self.samplers: tuple[Sampler, ...] = ()

    def __bool__(self) -> bool:
        return self.active

    def _refresh(self) -> None:
        names = frozenset(self._hooks)
        self.names = names
        self.active = bool(names)
        self.wants_before = any(n.startswith("before_") for n in names)
        self.on_get = "before_get" in names or "after_get" in names
        self.on_set = "before_set" in names or "after_set" in names
        self.on_error = "on_error" in names

    def add(self, name: str, hook: Hook) -> None:
        """Register ``hook`` under ``name`` (one of :data:`HOOK_NAMES`)."""
        if name not in HOOK_NAMES:
            raise ConfigurationError(f"unknown hook {name!r}; valid hooks: {', '.join(sorted(HOOK_NAMES))}")
        if not callable(hook):
            raise ConfigurationError(f"hook {name!r} must be callable, got {type(hook).__name__}")
        self._hooks.setdefault(name, []).append(hook)
        self._refresh()

    def remove(self, name: str, hook: Hook) -> None:
        """Unregister ``hook``; a hook that was never added is ignored."""
        hooks = self._hooks.get(name)
        if hooks and hook in hooks:
            hooks.remove(hook)
            if not hooks:
                del self._hooks[name]
            self._refresh()

    def fire(self, name: str, event: HookEvent) -> None:
        """Call every hook for ``name``; a failing hook is logged, never raised."""
        for hook in self._hooks.get(name, ()):
            try:
                hook(event)
            except Exception:
                # A hook is an observer: its bug must not fail or alter the cache operation.
                logger.exception("stratacache hook %s failed for %s", name, event.operation)

    def add_sampler(self, sampler: Sampler) -> None:
        """Register ``sampler(operation, seconds, weight)`` for the timed calls of :data:`SAMPLED_OPERATIONS`.

        ``seconds`` is one call's duration; ``weight`` the number of calls that sample
        stands for (``latency_sample``, or 1 while a hook of that operation times every call).
        Failed calls are not sampled: they reach ``on_error`` hooks.
        """
        if not callable(sampler):
            raise ConfigurationError(f"sampler must be callable, got {type(sampler).__name__}")
        self.samplers = (*self.samplers, sampler)

    def remove_sampler(self, sampler: Sampler) -> None:
        """Unregister ``sampler``; one that was never added is ignored."""
        samplers = list(self.samplers)
        if sampler in samplers:
            samplers.remove(sampler)
            self.samplers = tuple(samplers)

    def sample(self, operation: str, seconds: float, weight: int) -> None:
        """Tell every sampler about one timed call; a failing sampler is logged, never raised."""
        for sampler in self.samplers:
            try:
                sampler(operation, seconds, weight)
            except Exception:
                logger.exception("stratacache latency sampler failed for %s", operation)

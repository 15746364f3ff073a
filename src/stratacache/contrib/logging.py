"""Structured logging of cache operations: one record per call, fields in ``extra=``.

Off unless a cache is given to :meth:`LoggingInstrumentation.instrument`, and then quiet
unless its logger is enabled for the level used (DEBUG by default). While the logger is not
enabled for that level the per-call hooks are not even registered, so the cache keeps its
fused fast paths and pays nothing: the instrumentation watches the logger's own
``isEnabledFor`` cache, which :mod:`logging` clears on every level change (``setLevel``,
``logging.disable``, ``dictConfig``), and registers or removes its hooks then. Errors are
always hooked (``on_error``, checked against ``error_level`` per failure). Each record
carries, as attributes a JSON formatter or a log shipper can pick up:

``cache`` (the name), ``namespace``, ``backend`` (the backend's name), ``operation``,
``key`` (the key, or for a ``*_many`` call the number of keys as ``keys``), ``duration``
(seconds, or None where the call was not timed), ``outcome`` (``"hit"``, ``"miss"``,
``"ok"`` or ``"error"``) and on errors ``error`` (the exception's class name).

Values are never logged, nor are error messages (a backend's message may quote a
configuration); keys are, since they are what one debugs by — pass ``log_keys=False``
when your keys hold personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .._exceptions import InvalidArgument
from ..core.hooks import HookEvent
from ._observe import CacheLabels, CacheT, Instrumentation

__all__ = ["LoggingInstrumentation"]


class _LevelWatch(dict[int, bool]):
    """A logger's ``isEnabledFor`` cache that also tells listeners when :mod:`logging` clears it.

    ``Logger.isEnabledFor`` memoizes its answer per level in ``logger._cache``, and logging
    clears every logger's cache whenever a level can have changed (``Manager._clear_cache``,
    called by ``setLevel`` and ``logging.disable``). The same invalidation as the standard
    library's own check, so a listener sees every change ``isEnabledFor`` would.
    """

    __slots__ = ("listeners",)

    def __init__(self, cached: dict[int, bool]) -> None:
        super().__init__(cached)
        self.listeners: list[Callable[[], None]] = []

    def clear(self) -> None:
        super().clear()
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # a listener runs inside someone's setLevel: never fail it
                logging.getLogger("stratacache").exception("stratacache logging level watch failed")


def _watch(logger: logging.Logger) -> _LevelWatch | None:
    """The level watch of ``logger``, installed on first use; None where it cannot be."""
    cached = getattr(logger, "_cache", None)
    if isinstance(cached, _LevelWatch):
        return cached
    if type(cached) is not dict:  # not the standard library's Logger, or replaced by someone
        return None
    watch = _LevelWatch(cached)
    logger._cache = watch  # type: ignore[attr-defined]
    return watch


_LEVELS = frozenset({logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL})


class LoggingInstrumentation(Instrumentation):
    """Logs every operation of the caches given to :meth:`instrument` (see the module doc).

    ``logger``: a ``logging.Logger`` or a name; default ``"stratacache.ops.<cache name>"``,
    one logger per cache so each can be tuned alone. ``level``: the level of successful
    operations (default DEBUG); failed ones log at ``error_level`` (default WARNING).
    """

    def __init__(
        self,
        *,
        logger: logging.Logger | str | None = None,
        level: int = logging.DEBUG,
        error_level: int = logging.WARNING,
        log_keys: bool = True,
    ) -> None:
        super().__init__()
        if logger is not None and not isinstance(logger, logging.Logger | str):
            raise InvalidArgument(f"logger must be a logging.Logger or a logger name, got {logger!r}")
        if isinstance(logger, str) and not logger:
            raise InvalidArgument("logger name must not be empty")
        for name, value in (("level", level), ("error_level", error_level)):
            if value not in _LEVELS or isinstance(value, bool):
                raise InvalidArgument(f"{name} must be a logging level (logging.DEBUG ...), got {value!r}")
        if not isinstance(log_keys, bool):
            raise InvalidArgument(f"log_keys must be a bool, got {log_keys!r}")
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level
        self.error_level = error_level
        self.log_keys = log_keys
        self._loggers: dict[str, logging.Logger] = {}
        # Cache name -> (its logger's watch, our listener on it), for uninstrument.
        self._listeners: dict[str, tuple[_LevelWatch, Callable[[], None]]] = {}

    def instrument(self, cache: CacheT, *, name: str | None = None) -> CacheT:
        """Log ``cache``'s operations under ``name`` (default: its namespace or ``"default"``)."""
        return super().instrument(cache, name=name)

    def logger_for(self, name: str) -> logging.Logger:
        """The logger records of the cache named ``name`` go to."""
        return self._loggers.get(name) or self._logger or logging.getLogger(f"stratacache.ops.{name}")

    def _prepare(self, labels: CacheLabels) -> None:
        logger = self._logger or logging.getLogger(f"stratacache.ops.{labels.name}")
        self._loggers[labels.name] = logger
        watch = _watch(logger)
        if watch is None:
            return  # hooks stay registered; each call checks isEnabledFor itself

        def level_changed() -> None:
            for observed in list(self._caches.values()):
                if observed.labels.name == labels.name:
                    self._attach(observed, logger.isEnabledFor(self.level))

        watch.listeners.append(level_changed)
        self._listeners[labels.name] = (watch, level_changed)

    def _forget(self, labels: CacheLabels) -> None:
        self._loggers.pop(labels.name, None)
        watch, listener = self._listeners.pop(labels.name, (None, None))
        if watch is not None and listener in watch.listeners:
            watch.listeners.remove(listener)

    def _wants_after(self, labels: CacheLabels) -> bool:
        # Without a watch the hooks must stay: nothing would tell us when to add them.
        return labels.name not in self._listeners or self._loggers[labels.name].isEnabledFor(self.level)

    def _fields(self, labels: CacheLabels, event: HookEvent, outcome: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "cache": labels.name,
            "namespace": labels.namespace,
            "backend": labels.backend,
            "operation": event.operation,
            "duration": event.duration,
            "outcome": outcome,
        }
        key = event.key
        if isinstance(key, list | tuple):
            fields["keys"] = len(key)
        elif self.log_keys and isinstance(key, str):
            fields["key"] = key
        return fields

    def _after(self, labels: CacheLabels, event: HookEvent) -> None:
        logger = self._loggers[labels.name]
        if not logger.isEnabledFor(self.level):
            return
        outcome = "ok" if event.hit is None else ("hit" if event.hit else "miss")
        fields = self._fields(labels, event, outcome)
        logger.log(self.level, "cache %s %s %s", labels.name, event.operation, outcome, extra=fields)

    def _error(self, labels: CacheLabels, event: HookEvent) -> None:
        logger = self._loggers[labels.name]
        if not logger.isEnabledFor(self.error_level):
            return
        fields = self._fields(labels, event, "error")
        fields["error"] = type(event.error).__name__
        logger.log(
            self.error_level,
            "cache %s %s failed: %s",
            labels.name,
            event.operation,
            fields["error"],
            extra=fields,
        )

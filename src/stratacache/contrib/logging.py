"""Structured logging of cache operations: one record per call, fields in ``extra=``.

Off unless a cache is given to :meth:`LoggingInstrumentation.instrument`, and then quiet
unless its logger is enabled for the level used (DEBUG by default): a disabled logger
costs one ``isEnabledFor`` check per call. Each record carries, as attributes a JSON
formatter or a log shipper can pick up:

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
from typing import Any

from .._exceptions import InvalidArgument
from ..core.hooks import HookEvent
from ._observe import CacheLabels, CacheT, Instrumentation

__all__ = ["LoggingInstrumentation"]

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

    def instrument(self, cache: CacheT, *, name: str | None = None) -> CacheT:
        """Log ``cache``'s operations under ``name`` (default: its namespace or ``"default"``)."""
        return super().instrument(cache, name=name)

    def logger_for(self, name: str) -> logging.Logger:
        """The logger records of the cache named ``name`` go to."""
        return self._loggers.get(name) or self._logger or logging.getLogger(f"stratacache.ops.{name}")

    def _prepare(self, labels: CacheLabels) -> None:
        self._loggers[labels.name] = self._logger or logging.getLogger(f"stratacache.ops.{labels.name}")

    def _forget(self, labels: CacheLabels) -> None:
        self._loggers.pop(labels.name, None)

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

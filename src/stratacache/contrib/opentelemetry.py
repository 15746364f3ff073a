"""OpenTelemetry spans and metrics for stratacache caches (``pip install 'stratacache[opentelemetry]'``).

Opt-in: nothing is traced until a cache is given to :meth:`OpenTelemetryInstrumentation.instrument`.
Only ``opentelemetry-api`` is needed here; with no SDK configured the API's no-op tracer and
meter make the instrumentation nearly free.

Names follow the OpenTelemetry semantic conventions for database client calls, using the
stable attribute names where one exists:

* span name ``"<operation> <namespace>"`` (``"get app"``; just ``"get"`` without a namespace),
  kind CLIENT, ended when the cache call returns. Spans are created when the call completes,
  from the duration the cache measured, so spans opened *inside* the call (a redis-py
  instrumentation's) are siblings of it, not children;
* ``db.system.name``: the backend's name (``redis``, ``memcached``; ``memory``, ``file``,
  ``layered``, ``sharded`` ... for stratacache's own backends, which have no registered value);
* ``db.operation.name``: the cache operation (``get``, ``set_many``, ...);
* ``db.namespace``: the cache's namespace, when it has one;
* ``db.operation.batch.size``: the number of keys of a ``*_many`` call;
* ``error.type``: the stratacache exception's class name, on a failed call (status ERROR);
* ``stratacache.cache.name`` and, on ``get``, ``stratacache.cache.hit`` (bool);
  ``stratacache.cache.key`` only with ``record_keys=True`` (keys may carry personal data).

Metrics: the histogram ``db.client.operation.duration`` (seconds; the stable conventional
name) with the attributes above but the key, and the counter ``stratacache.cache.lookups``
(attribute ``stratacache.cache.hit``), one per key read by ``get``/``get_many``.
Values are never recorded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._exceptions import InvalidArgument
from ..core.hooks import HookEvent
from ._observe import CacheLabels, CacheT, Instrumentation

__all__ = ["OpenTelemetryInstrumentation"]

_SCOPE = "stratacache"
# Seconds; the conventions advise these for db.client.operation.duration.
_BUCKETS: Sequence[float] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


class OpenTelemetryInstrumentation(Instrumentation):
    """Spans and metrics for every cache given to :meth:`instrument` (see the module doc).

    ``tracer_provider`` / ``meter_provider``: where to send them (default: the global ones
    set with ``trace.set_tracer_provider``/``metrics.set_meter_provider``). ``spans=False`` or
    ``metrics=False`` turns one half off. ``record_keys=True`` adds the key to spans.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        spans: bool = True,
        metrics: bool = True,
        record_keys: bool = False,
    ) -> None:
        super().__init__()
        if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
            raise InvalidArgument(
                f"tracer_provider must be an opentelemetry TracerProvider, got {tracer_provider!r}"
            )
        if meter_provider is not None and not _is_meter_provider(meter_provider):
            raise InvalidArgument(
                f"meter_provider must be an opentelemetry MeterProvider, got {meter_provider!r}"
            )
        for name, flag in (("spans", spans), ("metrics", metrics), ("record_keys", record_keys)):
            if not isinstance(flag, bool):
                raise InvalidArgument(f"{name} must be a bool, got {flag!r}")
        from .. import __version__

        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider) if spans else None
        self._record_keys = record_keys
        self._duration: Any = None
        self._lookups: Any = None
        if metrics:
            meter = _get_meter(meter_provider, __version__)
            self._duration = meter.create_histogram(
                "db.client.operation.duration",
                unit="s",
                description="Duration of stratacache operations.",
                explicit_bucket_boundaries_advisory=_BUCKETS,
            )
            self._lookups = meter.create_counter(
                "stratacache.cache.lookups", unit="{key}", description="Keys read, by hit or miss."
            )

    def instrument(self, cache: CacheT, *, name: str | None = None) -> CacheT:
        """Trace ``cache``, named ``name`` (default: its namespace or ``"default"``) in its attributes."""
        return super().instrument(cache, name=name)

    def _attributes(self, labels: CacheLabels, event: HookEvent) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "db.system.name": labels.backend,
            "db.operation.name": event.operation,
            "stratacache.cache.name": labels.name,
        }
        if labels.namespace:
            attributes["db.namespace"] = labels.namespace
        if isinstance(event.key, list | tuple):
            attributes["db.operation.batch.size"] = len(event.key)
        return attributes

    def _record(self, labels: CacheLabels, event: HookEvent, error: BaseException | None) -> None:
        attributes = self._attributes(labels, event)
        if error is not None:
            attributes["error.type"] = type(error).__name__
        if self._duration is not None and event.duration is not None:
            self._duration.record(event.duration, attributes)
        if self._lookups is not None and error is None:
            self._count_lookups(labels, event)
        tracer = self._tracer
        if tracer is None:
            return
        end = time.time_ns()
        start = end - int((event.duration or 0.0) * 1e9)
        span_attributes = dict(attributes)
        if event.hit is not None:
            span_attributes["stratacache.cache.hit"] = event.hit
        if self._record_keys and isinstance(event.key, str):
            span_attributes["stratacache.cache.key"] = event.key
        span_name = f"{event.operation} {labels.namespace}" if labels.namespace else event.operation
        span = tracer.start_span(
            span_name, kind=SpanKind.CLIENT, attributes=span_attributes, start_time=start
        )
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end(end_time=end)

    def _count_lookups(self, labels: CacheLabels, event: HookEvent) -> None:
        base = {"stratacache.cache.name": labels.name, "db.system.name": labels.backend}
        if event.operation == "get" and event.hit is not None:
            self._lookups.add(1, {**base, "stratacache.cache.hit": event.hit})
        elif event.operation == "get_many" and isinstance(event.result, dict):
            found = len(event.result)
            asked = len(event.key) if isinstance(event.key, list | tuple) else found
            if found:
                self._lookups.add(found, {**base, "stratacache.cache.hit": True})
            if asked > found:
                self._lookups.add(asked - found, {**base, "stratacache.cache.hit": False})

    def _after(self, labels: CacheLabels, event: HookEvent) -> None:
        self._record(labels, event, None)

    def _error(self, labels: CacheLabels, event: HookEvent) -> None:
        self._record(labels, event, event.error)


def _is_meter_provider(provider: object) -> bool:
    return isinstance(provider, metrics.MeterProvider)


def _get_meter(provider: metrics.MeterProvider | None, version: str) -> metrics.Meter:
    if provider is None:
        return metrics.get_meter(_SCOPE, version)
    return provider.get_meter(_SCOPE, version)

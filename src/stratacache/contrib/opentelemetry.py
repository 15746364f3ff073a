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
name) with the attributes above but the key, and the observable counter
``stratacache.cache.lookups`` (attribute ``stratacache.cache.hit``): the cache's own hit and
miss counters (those of ``stats()``: every key read by any read operation), read when the
SDK collects, so counting costs the cache nothing.

Cost: spans are per call, so with ``spans=True`` every operation takes the cache's full path
and one hook event, and the duration histogram records every call from that same event. With
``spans=False`` no per-call hook is registered for ``get`` and ``set``: their durations come
from the cache's latency samples (one call in ``latency_sample``, 64 by default), recorded
once each, so for them the histogram's count is the number of *sampled* calls (its
distribution is that of all calls; count calls with ``stratacache.cache.lookups`` or
``latency_sample=1``). Other operations and every failure are recorded per call.
Values are never recorded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._exceptions import InvalidArgument
from ..core.hooks import SAMPLED_OPERATIONS, HookEvent
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
        # (cache name, operation, hit) -> (metric attributes, span attributes, span name):
        # built once, not per call (the SDK copies what it keeps, so sharing them is safe).
        self._shapes: dict[tuple[str, str, bool | None], tuple[dict[str, Any], dict[str, Any], str]] = {}
        if metrics:
            meter = _get_meter(meter_provider, __version__)
            self._duration = meter.create_histogram(
                "db.client.operation.duration",
                unit="s",
                description="Duration of stratacache operations.",
                explicit_bucket_boundaries_advisory=_BUCKETS,
            )
            self._lookups = meter.create_observable_counter(
                "stratacache.cache.lookups",
                callbacks=[self._observe_lookups],
                unit="{key}",
                description="Keys read, by hit or miss.",
            )

    def instrument(self, cache: CacheT, *, name: str | None = None) -> CacheT:
        """Trace ``cache``, named ``name`` (default: its namespace or ``"default"``) in its attributes."""
        return super().instrument(cache, name=name)

    def _sampled_operations(self) -> tuple[str, ...]:
        # Spans are per call; without them get/set durations can come from the samples.
        return () if self._tracer is not None else SAMPLED_OPERATIONS

    def _forget(self, labels: CacheLabels) -> None:
        for shape in [shape for shape in self._shapes if shape[0] == labels.name]:
            del self._shapes[shape]

    def _shape(
        self, labels: CacheLabels, operation: str, hit: bool | None
    ) -> tuple[dict[str, Any], dict[str, Any], str]:
        shape = self._shapes.get((labels.name, operation, hit))
        if shape is None:
            attributes: dict[str, Any] = {
                "db.system.name": labels.backend,
                "db.operation.name": operation,
                "stratacache.cache.name": labels.name,
            }
            if labels.namespace:
                attributes["db.namespace"] = labels.namespace
            span_attributes = dict(attributes)
            if hit is not None:
                span_attributes["stratacache.cache.hit"] = hit
            span_name = f"{operation} {labels.namespace}" if labels.namespace else operation
            shape = self._shapes[labels.name, operation, hit] = (attributes, span_attributes, span_name)
        return shape

    def _record(self, labels: CacheLabels, event: HookEvent) -> None:
        # Per call when spans are on: kept to dict lookups and the SDK's own calls. One
        # method for both hooks (``error`` is None on after_* events): no frame in between.
        operation = event.operation
        error = event.error
        hit = event.hit
        shape = self._shapes.get((labels.name, operation, hit)) or self._shape(labels, operation, hit)
        attributes, span_attributes, span_name = shape
        key = event.key
        duration = event.duration
        if error is not None or (type(key) is not str and isinstance(key, list | tuple)):
            extra: dict[str, Any] = {}
            if isinstance(key, list | tuple):
                extra["db.operation.batch.size"] = len(key)
            if error is not None:
                extra["error.type"] = type(error).__name__
            attributes = {**attributes, **extra}
            span_attributes = {**span_attributes, **extra}
        if duration is not None and self._duration is not None:
            self._duration.record(duration, attributes)
        tracer = self._tracer
        if tracer is None:
            return
        end = time.time_ns()
        start = end - int(duration * 1e9) if duration else end
        if self._record_keys and type(key) is str:
            span_attributes = {**span_attributes, "stratacache.cache.key": key}
        span = tracer.start_span(
            span_name, kind=SpanKind.CLIENT, attributes=span_attributes, start_time=start
        )
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end(end_time=end)

    def _sample(self, labels: CacheLabels, operation: str, seconds: float, weight: int) -> None:
        # An OpenTelemetry histogram has no weights: each sample is recorded once (module doc).
        if self._duration is not None:
            self._duration.record(seconds, self._shape(labels, operation, None)[0])

    def _observe_lookups(self, options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        # Read when the SDK collects: the facade's live counters, never reset by this.
        observations = []
        for cache, labels in self.instrumented():
            recorder = cache._stats
            base = {"stratacache.cache.name": labels.name, "db.system.name": labels.backend}
            for hit, count in ((True, recorder.hits), (False, recorder.misses)):
                observations.append(metrics.Observation(count, {**base, "stratacache.cache.hit": hit}))
        return observations

    _after = _record
    _error = _record


def _is_meter_provider(provider: object) -> bool:
    return isinstance(provider, metrics.MeterProvider)


def _get_meter(provider: metrics.MeterProvider | None, version: str) -> metrics.Meter:
    if provider is None:
        return metrics.get_meter(_SCOPE, version)
    return provider.get_meter(_SCOPE, version)

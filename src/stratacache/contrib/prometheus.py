"""A Prometheus collector for stratacache caches (``pip install 'stratacache[prometheus]'``).

>>> from prometheus_client import REGISTRY
>>> collector = PrometheusCollector(registry=REGISTRY)
>>> collector.instrument(cache, name="pages")

Per instrumented cache (labels ``cache``, ``namespace``, ``backend``) a scrape shows:

* ``stratacache_hits_total``, ``_misses_total``, ``_sets_total``, ``_deletes_total``,
  ``_errors_total``: the cache's own counters (the ones ``stats()`` reports). They cost the
  cache nothing extra: the facade keeps them anyway and the scrape reads them.
* ``stratacache_operation_duration_seconds`` (histogram, label ``operation``): for ``get``
  and ``set``, from the cache's latency samples (one call in ``latency_sample``, 64 by
  default), each sample counted as the number of calls it stands for, so ``_count`` and
  ``_sum`` estimate every call's and the buckets keep the distribution's shape; the cache
  keeps its fused fast paths. Other operations, and failed calls of any, are recorded by
  hooks on every call. ``latency_sample=1`` on the cache times every get/set.
* ``stratacache_operation_errors_total`` (labels ``operation``, ``error``): the ``on_error``
  hook, on every failure.
* ``stratacache_evictions_total``, ``_expirations_total``, ``stratacache_items``,
  ``stratacache_bytes``, ``stratacache_backend_up`` and ``_backend_ping_seconds``, and per
  layered tier / sharded node its circuit or health state
  (``stratacache_tier_circuit_state``, ``stratacache_node_state``, one sample per state, 1
  for the current one): the backend's figures, from ``stats()`` and ``health()``.

A sync :class:`~stratacache.Cache` is asked for the backend figures during the scrape. An
:class:`~stratacache.AsyncCache` cannot be awaited from the scraping thread, so its backend
figures are the ones the last ``await collector.refresh()`` read (call it before rendering
``/metrics``, or on a timer); its counters and histograms are always current.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from .._exceptions import CacheError, InvalidArgument
from .._sync.cache import Cache
from ..core.hooks import SAMPLED_OPERATIONS, HookEvent
from ..core.stats import Stats
from ._observe import CacheLabels, CacheT, Instrumentation, check_name

__all__ = ["DEFAULT_BUCKETS", "PrometheusCollector"]

#: Histogram buckets in seconds: cache calls run from microseconds (memory) to milliseconds
#: (network), which prometheus_client's default buckets (from 5 ms) would lump together.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip

_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CACHE_LABELS = ("cache", "namespace", "backend")
_BREAKER_STATES = ("closed", "open", "half-open")
_NODE_STATES = ("alive", "suspect", "dead", "probation")


class _Histogram:
    """Bucket counts and a sum for one (cache, operation). Updated under the collector's lock."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size  # one per bucket bound, plus +Inf
        self.total = 0.0


class _Backend:
    """The backend figures of one cache as last read (by the scrape or by refresh())."""

    __slots__ = ("health_seconds", "stats", "up")

    def __init__(self) -> None:
        self.stats: Stats | None = None
        self.up: bool | None = None
        self.health_seconds: float | None = None


class PrometheusCollector(Instrumentation, Collector):
    """Exports the figures of every cache given to :meth:`instrument` (see the module doc).

    ``registry``: where to register (``prometheus_client.REGISTRY``, a ``CollectorRegistry``
    of your own, or None to register nowhere and call ``collect()`` yourself).
    ``prefix``: the metric name prefix. ``buckets``: increasing histogram bounds in seconds.
    ``backend_figures``: False skips ``stats()``/``health()`` during scrapes (the backend
    figures are then left out), for a backend whose scan for ``items`` is too costly.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        prefix: str = "stratacache",
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        backend_figures: bool = True,
    ) -> None:
        super().__init__()
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise InvalidArgument(f"registry must be a prometheus_client CollectorRegistry, got {registry!r}")
        self.prefix = check_name(prefix, "prefix")
        if not _METRIC_NAME.fullmatch(prefix):
            raise InvalidArgument(
                f"prefix must be a Prometheus metric name ([a-zA-Z_][a-zA-Z0-9_]*), got {prefix!r}"
            )
        bounds = list(buckets) if isinstance(buckets, Iterable) else None
        if (
            not bounds
            or not all(
                isinstance(b, int | float) and not isinstance(b, bool) and 0 < b < math.inf for b in bounds
            )
            or any(a >= b for a, b in itertools.pairwise(bounds))
        ):
            raise InvalidArgument(f"buckets must be increasing positive finite seconds, got {buckets!r}")
        self.buckets: tuple[float, ...] = tuple(float(b) for b in bounds)
        self.backend_figures = bool(backend_figures)
        self._lock = threading.Lock()
        self._durations: dict[tuple[str, str], _Histogram] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        self._backends: dict[str, _Backend] = {}
        if registry is not None:
            registry.register(self)

    # ------------------------------------------------------------------ hooks

    def _prepare(self, labels: CacheLabels) -> None:
        with self._lock:
            self._backends[labels.name] = _Backend()

    def _forget(self, labels: CacheLabels) -> None:
        with self._lock:
            self._backends.pop(labels.name, None)
            for key in [k for k in self._durations if k[0] == labels.name]:
                del self._durations[key]
            for error_key in [k for k in self._errors if k[0] == labels.name]:
                del self._errors[error_key]

    def _observe(self, name: str, operation: str, seconds: float, weight: int) -> None:
        # bisect_left: a sample equal to a bound belongs to that bucket (le = less or equal).
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            histogram = self._durations.get((name, operation))
            if histogram is None:
                histogram = self._durations[name, operation] = _Histogram(len(self.buckets) + 1)
            histogram.counts[index] += weight
            histogram.total += seconds * weight

    def _sampled_operations(self) -> tuple[str, ...]:
        # The hot operations: a per-call hook would turn their fused fast paths off.
        return SAMPLED_OPERATIONS

    def _sample(self, labels: CacheLabels, operation: str, seconds: float, weight: int) -> None:
        # One sampled call stands for ``weight`` calls: counted as many times, so _count and
        # _sum estimate all calls and rate() works as for an exact histogram.
        self._observe(labels.name, operation, seconds, weight)

    def _after(self, labels: CacheLabels, event: HookEvent) -> None:
        if event.duration is not None:
            self._observe(labels.name, event.operation, event.duration, 1)

    def _error(self, labels: CacheLabels, event: HookEvent) -> None:
        key = (labels.name, event.operation, type(event.error).__name__)
        with self._lock:
            self._errors[key] = self._errors.get(key, 0) + 1
        if event.duration is not None:
            self._observe(labels.name, event.operation, event.duration, 1)

    # ----------------------------------------------------------- backend figures

    def _read_sync(self, cache: Cache, into: _Backend) -> None:
        report = cache.health()
        into.up = report.healthy
        into.health_seconds = report.latency
        try:
            into.stats = cache.stats()
        except CacheError:
            into.stats = None  # a down backend: its counters are unknown, not zero

    async def refresh(self) -> None:
        """Read ``stats()`` and ``health()`` of every instrumented AsyncCache (and Cache) now.

        Never raises for a failing backend: it is reported as down.
        """
        for cache, labels in self.instrumented():
            into = self._backends.get(labels.name)
            if into is None:
                continue
            if isinstance(cache, Cache):
                self._read_sync(cache, into)
                continue
            report = await cache.health()
            into.up = report.healthy
            into.health_seconds = report.latency
            try:
                into.stats = await cache.stats()
            except CacheError:
                into.stats = None

    # -------------------------------------------------------------------- scrape

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the metric families depend on which caches are instrumented."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The metric families (called by prometheus_client on every scrape)."""
        p = self.prefix
        counters = {
            field: CounterMetricFamily(f"{p}_{field}", doc, labels=_CACHE_LABELS)
            for field, doc in (
                ("hits", "Reads that found a value."),
                ("misses", "Reads that found nothing."),
                ("sets", "Values stored."),
                ("deletes", "Keys deleted."),
                ("errors", "Operations that failed."),
            )
        }
        evictions = CounterMetricFamily(
            f"{p}_evictions", "Entries evicted by the backend.", labels=_CACHE_LABELS
        )
        expirations = CounterMetricFamily(f"{p}_expirations", "Entries expired.", labels=_CACHE_LABELS)
        items = GaugeMetricFamily(f"{p}_items", "Entries stored.", labels=_CACHE_LABELS)
        size = GaugeMetricFamily(f"{p}_bytes", "Bytes stored (0 where unknown).", labels=_CACHE_LABELS)
        up = GaugeMetricFamily(f"{p}_backend_up", "1 when the backend answered a ping.", labels=_CACHE_LABELS)
        ping = GaugeMetricFamily(
            f"{p}_backend_ping_seconds", "Round trip of the last health ping.", labels=_CACHE_LABELS
        )
        tiers = GaugeMetricFamily(
            f"{p}_tier_circuit_state",
            "Circuit breaker state of each layered tier (1 for the current state).",
            labels=[*_CACHE_LABELS, "tier", "state"],
        )
        nodes = GaugeMetricFamily(
            f"{p}_node_state",
            "Health state of each sharded node (1 for the current state).",
            labels=[*_CACHE_LABELS, "node", "state"],
        )
        durations = HistogramMetricFamily(
            f"{p}_operation_duration_seconds",
            "Duration of cache operations (get and set: sampled, each sample counted for the calls"
            " it stands for).",
            labels=[*_CACHE_LABELS, "operation"],
        )
        errors = CounterMetricFamily(
            f"{p}_operation_errors",
            "Failed operations by error type.",
            labels=[*_CACHE_LABELS, "operation", "error"],
        )
        with self._lock:
            histograms = {key: (list(h.counts), h.total) for key, h in self._durations.items()}
            error_counts = dict(self._errors)
        for cache, labels in self.instrumented():
            values = [labels.name, labels.namespace, labels.backend]
            recorder = cache._stats  # the facade's live counters: read, never reset, by a scrape
            counters["hits"].add_metric(values, recorder.hits)
            counters["misses"].add_metric(values, recorder.misses)
            counters["sets"].add_metric(values, recorder.sets)
            counters["deletes"].add_metric(values, recorder.deletes)
            counters["errors"].add_metric(values, recorder.errors)
            for (name, operation), (counts, total) in sorted(histograms.items()):
                if name == labels.name:
                    durations.add_metric([*values, operation], self._cumulative(counts), total)
            for (name, operation, error), count in sorted(error_counts.items()):
                if name == labels.name:
                    errors.add_metric([*values, operation, error], count)
            backend = self._backends.get(labels.name)
            if backend is None or not self.backend_figures:
                continue
            if isinstance(cache, Cache):
                self._read_sync(cache, backend)
            if backend.up is not None:
                up.add_metric(values, 1.0 if backend.up else 0.0)
            if backend.health_seconds is not None:
                ping.add_metric(values, backend.health_seconds)
            stats = backend.stats
            if stats is None:
                continue
            evictions.add_metric(values, stats.evictions)
            expirations.add_metric(values, stats.expirations)
            items.add_metric(values, stats.items)
            size.add_metric(values, stats.bytes)
            self._backend_states(stats.backend, values, tiers, nodes)
        yield from counters.values()
        yield from (durations, errors, evictions, expirations, items, size, up, ping, tiers, nodes)

    def _cumulative(self, counts: list[int]) -> list[tuple[str, float]]:
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip([*self.buckets, math.inf], counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == math.inf else repr(bound), float(running)))
        return buckets

    @staticmethod
    def _backend_states(
        details: Any, values: list[str], tiers: GaugeMetricFamily, nodes: GaugeMetricFamily
    ) -> None:
        # A layered backend lists its tiers with their breaker state, a sharded one maps each
        # node to its health state; any other backend has neither.
        for index, tier in enumerate(details.get("tiers") or ()):
            current = tier.get("circuit") if isinstance(tier, dict) else None
            for state in _BREAKER_STATES:
                tiers.add_metric([*values, str(index), state], 1.0 if current == state else 0.0)
        node_states = details.get("nodes")
        if isinstance(node_states, dict):
            for node, current in sorted(node_states.items()):
                for state in _NODE_STATES:
                    nodes.add_metric([*values, str(node), state], 1.0 if current == state else 0.0)

    def instrument(self, cache: CacheT, *, name: str | None = None) -> CacheT:
        """Observe ``cache`` under the ``cache`` label ``name`` (default: its namespace or ``"default"``)."""
        return super().instrument(cache, name=name)

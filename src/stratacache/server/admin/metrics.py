"""The ``/metrics`` exposition: a prometheus_client collector over :func:`.stats.snapshot`.

The collector reads the server's live state at scrape time (no counter is kept twice), in a
registry of its own per server (so several servers in one process never mix). Names and
meanings are listed in docs/operations.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .latency import SAMPLE_EVERY
from .stats import snapshot

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["ServerCollector", "exposition"]

_PREFIX = "stratacache_"
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


class ServerCollector(Collector):
    """Yields the server's metric families from one snapshot per scrape."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        """The metric families (prometheus_client calls this on every scrape)."""
        data = snapshot(self.server)
        yield from _store_metrics(data["stores"])
        yield from _server_metrics(data)
        yield from _command_metrics(data["commands"])
        yield from _persistence_metrics(data["persistence"])


def _store_metrics(stores: list[dict[str, Any]]) -> Iterator[Metric]:
    counters = {
        "hits": "String reads that found their key, per database",
        "misses": "String reads that did not find their key, per database",
        "evictions": "Keys evicted to stay within limits, per database",
        "expirations": "Keys removed because their TTL passed, per database",
    }
    for field, text in counters.items():
        family = CounterMetricFamily(f"{_PREFIX}store_{field}", text, labels=["db"])
        for store in stores:
            family.add_metric([str(store["db"])], store[field])
        yield family
    keys = GaugeMetricFamily(f"{_PREFIX}store_keys", "Keys held, per database", labels=["db"])
    memory = GaugeMetricFamily(
        f"{_PREFIX}store_memory_bytes", "Bytes the store charges to the pool, per database", labels=["db"]
    )
    max_entries = GaugeMetricFamily(
        f"{_PREFIX}store_max_entries", "The store's own entry limit (0: none), per database", labels=["db"]
    )
    max_bytes = GaugeMetricFamily(
        f"{_PREFIX}store_max_bytes", "The store's own byte limit (0: none), per database", labels=["db"]
    )
    for store in stores:
        label = [str(store["db"])]
        keys.add_metric(label, store["keys"])
        memory.add_metric(label, store["bytes"])
        max_entries.add_metric(label, store["max_entries"] or 0)
        max_bytes.add_metric(label, store["max_bytes"] or 0)
    yield from (keys, memory, max_entries, max_bytes)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{_PREFIX}{name}", text, value=value)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{_PREFIX}{name}", text, value=value)


def _server_metrics(data: dict[str, Any]) -> Iterator[Metric]:
    memory = data["memory"]
    clients = data["clients"]
    keyspace = data["keyspace"]
    yield _gauge("pool_used_bytes", "Bytes the stores hold (the memory pool's ledger)", memory["used"])
    yield _gauge("pool_limit_bytes", "The memory pool's budget (maxmemory; 0: no limit)", memory["maxmemory"])
    yield _gauge(
        "pool_pressure_level",
        "The pool's pressure level: 0 normal, 1 warning (85%), 2 high (90%), 3 critical (95%)",
        memory["pressure_level_value"],
    )
    yield _counter("keyspace_hits", "String reads that found their key, all databases", keyspace["hits"])
    yield _counter(
        "keyspace_misses", "String reads that did not find their key, all databases", keyspace["misses"]
    )
    yield _gauge("connected_clients", "Client connections open now", clients["connected"])
    yield _gauge("blocked_clients", "Clients waiting in a blocking command", clients["blocked"])
    yield _counter("connections_received", "Connections accepted", clients["connections_received"])
    yield _counter(
        "rejected_connections", "Connections refused (maxclients)", clients["rejected_connections"]
    )
    yield _counter("commands_processed", "Commands run since start, all commands", data["commands_processed"])
    yield _gauge("uptime_seconds", "Seconds since the server started", data["uptime_seconds"])
    yield _gauge("loading", "1 while the dataset is being loaded, else 0", 1 if data["loading"] else 0)


def _command_metrics(commands: dict[str, Any]) -> Iterator[Metric]:
    calls = CounterMetricFamily(f"{_PREFIX}commands", "Calls of each command", labels=["command"])
    failed = CounterMetricFamily(
        f"{_PREFIX}commands_failed", "Calls of each command that answered an error", labels=["command"]
    )
    latency = HistogramMetricFamily(
        f"{_PREFIX}command_latency_seconds",
        f"Time a command took to run, sampled (1 call in {SAMPLE_EVERY} of each command)",
        labels=["command"],
    )
    for name, entry in sorted(commands.items()):
        calls.add_metric([name], entry["calls"])
        failed.add_metric([name], entry["failed"])
        histogram = entry.get("latency")
        if histogram is not None:
            latency.add_metric([name], histogram["buckets"], histogram["sum_seconds"])
    yield from (calls, failed, latency)


def _persistence_metrics(fields: dict[str, str]) -> Iterator[Metric]:
    for name, value in fields.items():
        if _NUMBER.fullmatch(value):
            number = float(value)
        elif name.endswith("_status") and value in ("ok", "err"):
            number = 1.0 if value == "ok" else 0.0
        else:
            continue  # text fields (file names, ...) have no number to expose
        yield _gauge(f"persistence_{name}", f"INFO persistence's {name}", number)


def exposition(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry`` (the text format prometheus_client writes)."""
    return generate_latest(registry)


def make_registry(server: Server) -> CollectorRegistry:
    """A registry holding only ``server``'s collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    return registry

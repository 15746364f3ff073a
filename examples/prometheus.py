"""Prometheus metrics for the caches of an application: PrometheusCollector.

Two caches (Redis and in-process memory) on one registry; this prints the exposition a
Prometheus server would scrape from /metrics (start_http_server(9100) serves it for real).
Needs `pip install 'stratacache[prometheus,redis]'`. Set STRATACACHE_REDIS_URL (default
redis://127.0.0.1:6379/0).
"""

import os

from prometheus_client import CollectorRegistry, generate_latest

import stratacache as sc
from stratacache.contrib.prometheus import PrometheusCollector

url = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")
registry = CollectorRegistry()  # prometheus_client.REGISTRY in an application
collector = PrometheusCollector(registry)

with (
    collector.instrument(sc.Cache(url, namespace="pages")) as pages,
    collector.instrument(sc.Cache("memory://?max_entries=2"), name="sessions") as sessions,
):
    pages.clear()
    pages.set("home", "<html>...</html>", ttl=60)
    for key in ["home", "home", "about"]:
        pages.get(key)
    for i in range(4):  # more sessions than max_entries: two are evicted
        sessions.set(f"session:{i}", {"user": i})

    wanted = (
        "stratacache_hits_total",
        "stratacache_misses_total",
        "stratacache_evictions_total",
        "stratacache_backend_up",
        "stratacache_operation_duration_seconds_count",
    )
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(wanted) and 'operation="set"' not in line:
            print(line)
    pages.clear()

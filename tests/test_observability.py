"""Prometheus collector, OpenTelemetry spans/metrics and structured logging, over real caches."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import stratacache as sc
from servers import RedisServer, free_port
from stratacache import AsyncCache, Cache, InvalidArgument
from stratacache.contrib.logging import LoggingInstrumentation
from stratacache.contrib.opentelemetry import OpenTelemetryInstrumentation
from stratacache.contrib.prometheus import PrometheusCollector

# ------------------------------------------------------------------------- helpers


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, parsed back by prometheus_client's own text parser."""
    text = generate_latest(registry).decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The one sample named ``name`` whose labels include ``labels``."""
    found = [v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def down_redis_url() -> str:
    # Nothing listens on a fresh free port: connects are refused at once.
    return f"redis://127.0.0.1:{free_port()}/0?timeout=0.5&connect_timeout=0.5&retries=0"


# ----------------------------------------------------------------------- prometheus


def test_prometheus_sync_memory_counts_times_and_reads_the_backend() -> None:
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry)
    # latency_sample=1: every get/set is a sample of weight 1, so the histogram counts exactly.
    cache = collector.instrument(Cache("memory", namespace="app", latency_sample=1), name="pages")
    assert isinstance(cache, Cache)
    cache.set("a", 1)
    cache.set("b", None)
    assert cache.get("a") == 1
    assert cache.get("b", "default") is None  # a stored None is a hit
    assert cache.get("missing") is None
    cache.get_many(["a", "zzz"])
    cache.set("text", "x")
    with pytest.raises(sc.WrongType):
        cache.incr("text")
    samples = scrape(registry)
    labels = {"cache": "pages", "namespace": "app", "backend": "memory"}
    assert value(samples, "stratacache_hits_total", **labels) == 3
    assert value(samples, "stratacache_misses_total", **labels) == 2
    assert value(samples, "stratacache_sets_total", **labels) == 3
    assert value(samples, "stratacache_errors_total", **labels) == 1
    assert value(samples, "stratacache_operation_duration_seconds_count", operation="get") == 3
    assert value(samples, "stratacache_operation_duration_seconds_count", operation="set") == 3
    assert value(samples, "stratacache_operation_duration_seconds_bucket", operation="set", le="+Inf") == 3
    assert value(samples, "stratacache_operation_duration_seconds_sum", operation="get") > 0
    assert value(samples, "stratacache_operation_errors_total", operation="incr", error="WrongType") == 1
    assert value(samples, "stratacache_items", **labels) == 3
    assert value(samples, "stratacache_backend_up", **labels) == 1
    assert value(samples, "stratacache_evictions_total", **labels) == 0
    collector.uninstrument(cache)
    assert not any(name.startswith("stratacache_hits") for name, _ in scrape(registry))
    cache.close()


def test_prometheus_evictions_and_a_layered_tier_circuit(redis_server: RedisServer) -> None:
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry)
    small = collector.instrument(Cache("memory", max_entries=2), name="small")
    for i in range(5):
        small.set(f"k{i}", i)
    layered = Cache(f"layered://?tier=memory://&tier={redis_server.url}", namespace="obs-layered")
    collector.instrument(layered, name="layered")
    layered.set("k", "v")
    assert layered.get("k") == "v"
    samples = scrape(registry)
    assert value(samples, "stratacache_evictions_total", cache="small") == 3
    assert value(samples, "stratacache_tier_circuit_state", cache="layered", tier="1", state="closed") == 1
    assert value(samples, "stratacache_tier_circuit_state", cache="layered", tier="1", state="open") == 0
    assert value(samples, "stratacache_backend_up", cache="layered", backend="layered") == 1
    small.close()
    layered.close()


def test_prometheus_open_circuit_of_a_down_tier() -> None:
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry)
    down = down_redis_url().replace("&", "%26")  # a nested URL inside the layered URL's query
    cache = collector.instrument(
        Cache(f"layered://?tier=memory://&tier={down}&failure_threshold=1&reset_timeout=60"), name="l"
    )
    for key in ("a", "b"):
        # Whether a read with its source down raises is the layered backend's business.
        with contextlib.suppress(sc.CacheError):
            cache.get(key)
    samples = scrape(registry)
    assert value(samples, "stratacache_tier_circuit_state", cache="l", tier="1", state="open") == 1
    assert value(samples, "stratacache_tier_circuit_state", cache="l", tier="0", state="closed") == 1
    assert value(samples, "stratacache_backend_up", cache="l") == 0
    cache.close()


def test_prometheus_sharded_node_states() -> None:
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry)
    nodes = {f"m{i}": sc.MemoryBackend() for i in range(2)}
    cache = collector.instrument(Cache("sharded", nodes=nodes), name="ring")
    cache.set("k", 1)
    samples = scrape(registry)
    for node in nodes:
        assert value(samples, "stratacache_node_state", cache="ring", node=node, state="alive") == 1
        assert value(samples, "stratacache_node_state", cache="ring", node=node, state="dead") == 0
    assert value(samples, "stratacache_items", cache="ring", backend="sharded") == 1
    cache.close()


def test_prometheus_down_backend_is_reported_not_raised() -> None:
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry)
    cache = collector.instrument(Cache(down_redis_url()), name="down")
    with pytest.raises(sc.BackendUnavailable):
        cache.get("k")
    samples = scrape(registry)  # the scrape itself must not raise
    assert value(samples, "stratacache_backend_up", cache="down") == 0
    assert (
        value(samples, "stratacache_operation_errors_total", operation="get", error="BackendUnavailable") == 1
    )
    # A failure is not a sample: on_error gives its duration, recorded once.
    assert value(samples, "stratacache_operation_duration_seconds_count", cache="down", operation="get") == 1
    assert ("stratacache_items", (("backend", "redis"), ("cache", "down"), ("namespace", ""))) not in samples
    cache.close()


async def test_prometheus_async_cache_over_redis(redis_server: RedisServer) -> None:
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry)
    cache = AsyncCache(redis_server.url, namespace="obs-async", latency_sample=2)
    await cache.clear()
    collector.instrument(cache)
    await cache.set("a", 1)
    assert await cache.get("a") == 1
    assert await cache.get("b") is None
    samples = scrape(registry)
    assert value(samples, "stratacache_hits_total", cache="obs-async", backend="redis") == 1
    # The second get is the sample, standing for both; the one set is not sampled yet.
    assert value(samples, "stratacache_operation_duration_seconds_count", operation="get") == 2
    count = "stratacache_operation_duration_seconds_count"
    counted = [dict(ls)["operation"] for n, ls in samples if n == count]
    assert counted == ["get"]
    # Backend figures of an AsyncCache come from the last refresh().
    assert not any(name == "stratacache_items" for name, _ in samples)
    await collector.refresh()
    samples = scrape(registry)
    assert value(samples, "stratacache_items", cache="obs-async") == 1
    assert value(samples, "stratacache_backend_up", cache="obs-async") == 1
    await cache.close()


def test_prometheus_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="registry"):
        PrometheusCollector("default")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="prefix"):
        PrometheusCollector(prefix="9bad-name")
    with pytest.raises(InvalidArgument, match="prefix"):
        PrometheusCollector(prefix="")
    with pytest.raises(InvalidArgument, match="buckets"):
        PrometheusCollector(buckets=[0.1, 0.05])
    with pytest.raises(InvalidArgument, match="buckets"):
        PrometheusCollector(buckets=[])
    collector = PrometheusCollector()
    with pytest.raises(InvalidArgument, match="cache must be"):
        collector.instrument("memory://")  # type: ignore[type-var]
    cache = Cache("memory")
    with pytest.raises(InvalidArgument, match="name must be"):
        collector.instrument(cache, name="")
    collector.instrument(cache, name="one")
    with pytest.raises(InvalidArgument, match="already instrumented"):
        collector.instrument(cache)
    with pytest.raises(InvalidArgument, match="'one' is already used"):
        collector.instrument(Cache("memory"), name="one")
    with pytest.raises(InvalidArgument, match="not instrumented"):
        collector.uninstrument(Cache("memory"))


def test_prometheus_broken_collector_does_not_break_cache_calls(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(PrometheusCollector):
        def _observe(self, name: str, operation: str, seconds: float, weight: int) -> None:
            raise RuntimeError("exporter down")

    registry = CollectorRegistry()
    cache = Broken(registry).instrument(Cache("memory", latency_sample=1))
    cache.set("k", "v")
    assert cache.get("k") == "v"
    assert "exporter down" in caplog.text
    assert "latency sampler failed" in caplog.text
    caplog.clear()
    with pytest.raises(sc.WrongType):
        cache.incr("k")  # the on_error hook fails the same way, and the cache's error stands
    assert "exporter down" in caplog.text


def test_prometheus_sampled_histogram_keeps_the_fast_paths() -> None:
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry)
    cache = Cache("memory", latency_sample=4)
    fused_get, fused_set = cache.get, cache.set
    collector.instrument(cache, name="hot")
    # No per-call get/set hook: the fused fast paths the cache installed stay in use.
    assert not cache.hooks.on_get
    assert not cache.hooks.on_set
    assert cache.get is fused_get
    assert cache.set is fused_set
    assert "fused_get" in fused_get.__qualname__
    for _ in range(5):
        cache.set("a", 1)  # the 4th is the sample, standing for 4 sets
    for _ in range(9):
        assert cache.get("a") == 1  # hits 4 and 8 are sampled: 2 x 4
    for _ in range(4):
        assert cache.get("zz") is None  # the 4th miss: 1 x 4
    cache.delete("a")  # not a hot operation: a hook, every call, weight 1
    samples = scrape(registry)
    count = "stratacache_operation_duration_seconds_count"
    assert value(samples, count, cache="hot", operation="set") == 4
    assert value(samples, count, cache="hot", operation="get") == 12
    assert value(samples, "stratacache_operation_duration_seconds_bucket", operation="get", le="+Inf") == 12
    assert value(samples, count, cache="hot", operation="delete") == 1
    assert value(samples, "stratacache_operation_duration_seconds_sum", operation="get") > 0
    # The counters stay exact: they are the cache's own.
    assert value(samples, "stratacache_hits_total", cache="hot") == 9
    assert value(samples, "stratacache_misses_total", cache="hot") == 4
    assert value(samples, "stratacache_sets_total", cache="hot") == 5
    # A get hook of the user's times every call: samples of weight 1 from then on.
    cache.hooks.add("after_get", lambda event: None)
    for _ in range(3):
        cache.get("b")
    samples = scrape(registry)
    assert value(samples, count, cache="hot", operation="get") == 15
    collector.uninstrument(cache)
    assert not cache.hooks.samplers
    assert cache.hooks.names == frozenset({"after_get"})


def test_fused_set_failure_reaches_on_error_with_the_fast_path_kept() -> None:
    errors: list[sc.HookEvent] = []
    cache = Cache("memory", max_bytes=64, hooks={"on_error": errors.append})
    assert not cache.hooks.on_set  # on_error alone keeps the fused set
    with pytest.raises(sc.ValueTooLarge):
        cache.set("big", "x" * 1000)
    assert [(e.operation, e.key, type(e.error)) for e in errors] == [("set", "big", sc.ValueTooLarge)]
    assert cache.stats().errors == 1


def test_hook_samplers_weights_and_failures(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, float, int]] = []

    def record(operation: str, seconds: float, weight: int) -> None:
        seen.append((operation, seconds, weight))

    def broken(operation: str, seconds: float, weight: int) -> None:
        raise RuntimeError("sampler bug")

    hooks = sc.Cache("memory").hooks
    with pytest.raises(sc.ConfigurationError, match="sampler must be callable"):
        hooks.add_sampler("nope")  # type: ignore[arg-type]
    hooks.remove_sampler(record)  # never added: ignored
    # A serializing cache takes the facade's own path: a sample's weight is the calls since the last.
    cache = Cache("memory", serializer="json", latency_sample=3)
    cache.hooks.add_sampler(broken)
    cache.hooks.add_sampler(record)
    for i in range(7):
        cache.set(f"k{i}", i)
        cache.get(f"k{i}")
    assert [(op, weight) for op, _, weight in seen] == [("set", 3), ("get", 3), ("set", 3), ("get", 3)]
    assert all(seconds >= 0 for _, seconds, _ in seen)
    assert "sampler bug" in caplog.text  # logged, and the later sampler still ran
    cache.hooks.add("after_set", lambda event: None)
    cache.set("x", 1)  # timed now that a set hook wants every call: k6 and x since the last sample
    assert seen[-1][0::2] == ("set", 2)
    cache.set("x", 2)
    assert seen[-1][0::2] == ("set", 1)
    cache.hooks.remove_sampler(record)
    cache.set("y", 1)
    assert len(seen) == 6


# -------------------------------------------------------------------- opentelemetry


def otel() -> tuple[OpenTelemetryInstrumentation, InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return (
        OpenTelemetryInstrumentation(tracer_provider=tracer_provider, meter_provider=meter_provider),
        exporter,
        reader,
    )


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def test_otel_spans_and_metrics_sync_memory() -> None:
    instrumentation, exporter, reader = otel()
    cache = instrumentation.instrument(Cache("memory", namespace="app"))
    cache.set("user:1", {"secret": "value"})
    assert cache.get("user:1") == {"secret": "value"}
    assert cache.get("nope") is None
    cache.get_many(["user:1", "a", "b"])
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["set app", "get app", "get app", "get_many app"]
    first: ReadableSpan = spans[1]
    assert first.kind is SpanKind.CLIENT
    attributes = dict(first.attributes or {})
    assert attributes == {
        "db.system.name": "memory",
        "db.operation.name": "get",
        "db.namespace": "app",
        "stratacache.cache.name": "app",
        "stratacache.cache.hit": True,
    }
    assert first.end_time is not None
    assert first.start_time is not None
    assert first.end_time >= first.start_time
    assert dict(spans[2].attributes or {})["stratacache.cache.hit"] is False
    assert dict(spans[3].attributes or {})["db.operation.batch.size"] == 3
    assert all("value" not in str(dict(s.attributes or {})) for s in spans)  # values never recorded
    points = metric_points(reader)
    durations = {p.attributes["db.operation.name"]: p.count for p in points["db.client.operation.duration"]}
    assert durations == {"set": 1, "get": 2, "get_many": 1}
    lookups = {p.attributes["stratacache.cache.hit"]: p.value for p in points["stratacache.cache.lookups"]}
    assert lookups == {True: 2, False: 3}


async def test_otel_async_redis_error_span(redis_server: RedisServer) -> None:
    instrumentation, exporter, reader = otel()
    good = AsyncCache(redis_server.url, namespace="obs-otel")
    instrumentation.instrument(good)
    await good.set("n", "text")
    with pytest.raises(sc.WrongType):
        await good.incr("n")
    down = instrumentation.instrument(AsyncCache(down_redis_url()), name="down")
    with pytest.raises(sc.BackendUnavailable):
        await down.get("k")
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["set obs-otel", "incr obs-otel", "get"]
    assert dict(spans[0].attributes or {})["db.system.name"] == "redis"
    for span, error in ((spans[1], "WrongType"), (spans[2], "BackendUnavailable")):
        assert span.status.status_code is StatusCode.ERROR
        assert dict(span.attributes or {})["error.type"] == error
        assert span.events[0].name == "exception"
    errors = [
        p for p in metric_points(reader)["db.client.operation.duration"] if "error.type" in p.attributes
    ]
    assert sorted(p.attributes["error.type"] for p in errors) == ["BackendUnavailable", "WrongType"]
    await good.delete("n")
    await good.close()
    await down.close()


def test_otel_record_keys_and_halves() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentation = OpenTelemetryInstrumentation(tracer_provider=provider, metrics=False, record_keys=True)
    cache = instrumentation.instrument(Cache("memory"))
    cache.get("user:7")
    assert dict(exporter.get_finished_spans()[0].attributes or {})["stratacache.cache.key"] == "user:7"
    reader = InMemoryMetricReader()
    only_metrics = OpenTelemetryInstrumentation(
        meter_provider=MeterProvider(metric_readers=[reader]), spans=False
    )
    other = only_metrics.instrument(Cache("memory", latency_sample=1))
    other.get("x")
    assert len(exporter.get_finished_spans()) == 1
    assert "db.client.operation.duration" in metric_points(reader)


def test_otel_metrics_only_samples_get_and_set_on_the_fast_path() -> None:
    reader = InMemoryMetricReader()
    instrumentation = OpenTelemetryInstrumentation(
        meter_provider=MeterProvider(metric_readers=[reader]), spans=False
    )
    cache = Cache("memory", latency_sample=2)
    fused_get = cache.get
    instrumentation.instrument(cache, name="hot")
    assert not cache.hooks.on_get
    assert cache.get is fused_get
    cache.set("a", 1)
    cache.set("b", 2)  # sampled
    for key in ("a", "a", "a", "a", "x", "x"):
        cache.get(key)  # hits 2 and 4, miss 2: three samples
    cache.delete("a")  # per call
    points = metric_points(reader)
    durations = {p.attributes["db.operation.name"]: p.count for p in points["db.client.operation.duration"]}
    # One record per sample (an OpenTelemetry histogram has no weights): sampled calls.
    assert durations == {"set": 1, "get": 3, "delete": 1}
    lookups = {p.attributes["stratacache.cache.hit"]: p.value for p in points["stratacache.cache.lookups"]}
    assert lookups == {True: 4, False: 2}  # exact: the cache's own counters
    instrumentation.uninstrument(cache)
    assert not cache.hooks.samplers
    assert not cache.hooks.active


def test_otel_broken_exporter_does_not_break_cache_calls() -> None:
    class Broken(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            raise RuntimeError("collector unreachable")

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Broken()))
    cache = OpenTelemetryInstrumentation(tracer_provider=provider, metrics=False).instrument(Cache("memory"))
    # The SDK logs the exporter's failure; the cache call goes on.
    logging.getLogger("opentelemetry").disabled = True
    try:
        cache.set("k", "v")
        assert cache.get("k") == "v"
    finally:
        logging.getLogger("opentelemetry").disabled = False


def test_otel_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="tracer_provider"):
        OpenTelemetryInstrumentation(tracer_provider="global")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="meter_provider"):
        OpenTelemetryInstrumentation(meter_provider=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="record_keys"):
        OpenTelemetryInstrumentation(record_keys="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="cache must be"):
        OpenTelemetryInstrumentation().instrument(None)  # type: ignore[type-var]


# ---------------------------------------------------------------------------- logging


def test_logging_records_fields_never_values(caplog: pytest.LogCaptureFixture) -> None:
    instrumentation = LoggingInstrumentation()
    cache = instrumentation.instrument(Cache("memory", namespace="app"), name="sessions")
    cache.set("quiet", "nothing logged above DEBUG")
    assert not [r for r in caplog.records if r.name.startswith("stratacache.ops")]
    caplog.set_level(logging.DEBUG, logger="stratacache.ops.sessions")
    cache.set("s:1", "top-secret-token")
    cache.get("s:1")
    cache.get("s:2")
    cache.get_many(["s:1", "s:2"])
    cache.set("n", "text")
    with pytest.raises(sc.WrongType):
        cache.incr("n")
    assert instrumentation.logger_for("sessions").name == "stratacache.ops.sessions"
    records = [r for r in caplog.records if r.name == "stratacache.ops.sessions"]
    outcomes = [(r.operation, getattr(r, "key", None), r.outcome) for r in records]  # type: ignore[attr-defined]
    assert outcomes == [
        ("set", "s:1", "ok"),
        ("get", "s:1", "hit"),
        ("get", "s:2", "miss"),
        ("get_many", None, "ok"),
        ("set", "n", "ok"),
        ("incr", "n", "error"),
    ]
    assert records[3].keys == 2  # type: ignore[attr-defined]
    assert all(r.cache == "sessions" and r.backend == "memory" for r in records)  # type: ignore[attr-defined]
    assert all(r.duration is not None and r.duration >= 0 for r in records)  # type: ignore[attr-defined]
    assert records[-1].levelno == logging.WARNING
    assert records[-1].error == "WrongType"  # type: ignore[attr-defined]
    assert "top-secret-token" not in caplog.text
    assert all("top-secret-token" not in str(vars(r)) for r in records)


async def test_logging_async_cache_with_own_logger_and_no_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="myapp.cache")
    instrumentation = LoggingInstrumentation(logger="myapp.cache", level=logging.INFO, log_keys=False)
    cache = instrumentation.instrument(AsyncCache("memory"))
    await cache.set("email:a@example.com", 1)
    records = [r for r in caplog.records if r.name == "myapp.cache"]
    assert len(records) == 1
    assert not hasattr(records[0], "key")
    assert "a@example.com" not in caplog.text
    instrumentation.uninstrument(cache)
    await cache.set("k", 2)
    assert len([r for r in caplog.records if r.name == "myapp.cache"]) == 1


def test_logging_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="level"):
        LoggingInstrumentation(level=7)
    with pytest.raises(InvalidArgument, match="error_level"):
        LoggingInstrumentation(error_level="WARN")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="logger"):
        LoggingInstrumentation(logger=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="log_keys"):
        LoggingInstrumentation(log_keys=1)  # type: ignore[arg-type]


def test_hook_event_duration_and_hit_without_integrations() -> None:
    events: list[sc.HookEvent] = []
    cache = Cache("memory", hooks={"after_get": events.append, "after_delete": events.append})
    cache.set("k", None)
    cache.get("k", "d")
    cache.get("absent", "d")
    cache.delete("k")
    assert [(e.result, e.hit) for e in events[:2]] == [(None, True), ("d", False)]
    assert all(e.duration is not None and e.duration >= 0 for e in events)
    assert events[2].hit is None


def test_logging_hooks_follow_the_logger_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("stratacache.ops.gated")
    instrumentation = LoggingInstrumentation()
    cache = Cache("memory")
    fused_get = cache.get
    instrumentation.instrument(cache, name="gated")
    try:
        # Not enabled for DEBUG: no per-call hook, the fused fast path stays.
        assert not cache.hooks.on_get
        assert cache.get is fused_get
        assert "on_error" in cache.hooks.names  # failures are always hooked
        cache.get("quiet")
        logger.setLevel(logging.DEBUG)  # logging clears its level cache: the hooks come
        assert cache.hooks.on_get
        cache.get("loud")
        logging.disable(logging.INFO)  # disables DEBUG everywhere: they go
        assert not cache.hooks.on_get
        cache.get("disabled")
        logging.disable(logging.NOTSET)
        assert cache.hooks.on_get
        cache.set("again", 1)
        logger.setLevel(logging.NOTSET)
        assert not cache.hooks.on_get
        cache.get("quiet again")
    finally:
        logging.disable(logging.NOTSET)
        logger.setLevel(logging.NOTSET)
    records = [(r.operation, r.key) for r in caplog.records if r.name == logger.name]  # type: ignore[attr-defined]
    assert records == [("get", "loud"), ("set", "again")]
    instrumentation.uninstrument(cache)
    logger.setLevel(logging.DEBUG)
    try:
        assert not cache.hooks.active  # the watch forgot the uninstrumented cache
    finally:
        logger.setLevel(logging.NOTSET)


def test_logging_without_a_level_cache_keeps_per_call_hooks(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Cached(dict[int, bool]):
        """A level cache someone else installed: ours is not put over it."""

    logger = logging.getLogger("stratacache.test.unwatched")
    monkeypatch.setattr(logger, "_cache", Cached())
    cache = LoggingInstrumentation(logger=logger).instrument(Cache("memory"))
    assert cache.hooks.on_get  # nothing would say when to add them: always there
    cache.get("k")  # and each call checks isEnabledFor itself
    assert not [r for r in caplog.records if r.name == logger.name]
    caplog.set_level(logging.DEBUG, logger=logger.name)
    cache.get("k")
    assert [r.outcome for r in caplog.records if r.name == logger.name] == ["miss"]  # type: ignore[attr-defined]

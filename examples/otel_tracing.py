"""OpenTelemetry: a span and a duration measurement for every cache call.

The SDK's in-memory exporter and reader stand in for your OTLP exporter here. Needs
`pip install 'stratacache[opentelemetry,redis]' opentelemetry-sdk`. Set
STRATACACHE_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import contextlib
import os

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import stratacache as sc
from stratacache.contrib.opentelemetry import OpenTelemetryInstrumentation

url = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")
spans = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
reader = InMemoryMetricReader()

otel = OpenTelemetryInstrumentation(tracer_provider=tracer_provider, meter_provider=MeterProvider([reader]))
with otel.instrument(sc.Cache(url, namespace="otel-example")) as cache:
    cache.set("user:1", {"name": "Ada"}, ttl=60)
    cache.get("user:1")
    cache.get("user:2")
    cache.get_many(["user:1", "user:2", "user:3"])
    with contextlib.suppress(sc.WrongType):
        cache.incr("user:1")  # not a counter: a failed call gets an ERROR span
    cache.delete("user:1")

for span in spans.get_finished_spans():
    attrs = span.attributes or {}
    shown = ("stratacache.cache.hit", "db.operation.batch.size", "error.type")
    extras = {k: attrs[k] for k in shown if k in attrs}
    print(f"span {span.name!r:24} {attrs['db.system.name']!s}  {span.status.status_code.name:5} {extras}")

data = reader.get_metrics_data()
for resource_metrics in data.resource_metrics if data else []:
    for scope in resource_metrics.scope_metrics:
        for metric in scope.metrics:
            for point in metric.data.data_points:
                labels = dict(point.attributes or {})
                if metric.name == "stratacache.cache.lookups" and isinstance(point, NumberDataPoint):
                    print(f"metric {metric.name} hit={labels['stratacache.cache.hit']}: {point.value}")

"""What observing a cache costs: ns per memory-backend ``get`` hit, with each integration.

    python benchmarks/bench_observability.py [--calls 200000] [--rounds 5] [--src DIR]
    python benchmarks/bench_observability.py --compare OLD_SRC [--repeat 4] [--calls ...]

``--src`` imports stratacache from another source tree (``git archive <ref> src | tar -x``).
``--compare`` runs this benchmark in child processes, alternating between the tree given
(before) and this checkout's (after), ``--repeat`` times each, and prints both medians side
by side: the two versions then share the machine's load as evenly as one run allows.

Contenders, each a sync ``Cache("memory")`` holding the key read:

* ``none``: no hook registered (the facade's fast path);
* ``hook``: one no-op ``after_get`` hook (the hook machinery alone);
* ``logging``: LoggingInstrumentation, its logger not enabled for DEBUG (the default);
* ``prometheus``: PrometheusCollector;
* ``otel-api``: OpenTelemetryInstrumentation with only opentelemetry-api (no SDK: no-op);
* ``otel-metrics``: with the SDK's metrics only (``spans=False``), to an in-memory reader;
* ``otel-sdk``: with the SDK, spans to a SimpleSpanProcessor whose exporter drops them,
  metrics to an in-memory reader.

Rounds are interleaved (the order rotated each round); the median round is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Read before argparse runs: stratacache must be imported from the chosen tree.
sys.path.insert(
    0,
    str(Path(sys.argv[sys.argv.index("--src") + 1]).resolve())
    if "--src" in sys.argv[:-1]
    else str(Path(__file__).resolve().parent.parent / "src"),
)

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

from stratacache import Cache
from stratacache.contrib.logging import LoggingInstrumentation
from stratacache.contrib.opentelemetry import OpenTelemetryInstrumentation
from stratacache.contrib.prometheus import PrometheusCollector


class _Drop(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _caches() -> tuple[dict[str, Cache], TracerProvider]:
    caches: dict[str, Cache] = {"none": Cache("memory")}
    hooked = Cache("memory")
    hooked.hooks.add("after_get", lambda event: None)
    caches["hook"] = hooked
    caches["logging"] = LoggingInstrumentation().instrument(Cache("memory"), name="bench")
    caches["prometheus"] = PrometheusCollector(CollectorRegistry()).instrument(Cache("memory"))
    caches["otel-api"] = OpenTelemetryInstrumentation().instrument(Cache("memory"))
    metrics_only = OpenTelemetryInstrumentation(
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]), spans=False
    )
    caches["otel-metrics"] = metrics_only.instrument(Cache("memory"))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    sdk = OpenTelemetryInstrumentation(tracer_provider=tracer_provider, meter_provider=meter_provider)
    caches["otel-sdk"] = sdk.instrument(Cache("memory"))
    for cache in caches.values():
        cache.set("key", "value")
    return caches, tracer_provider


def _time(get: Callable[[str], Any], calls: int) -> float:
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for _ in range(calls):
            get("key")
        return (time.perf_counter_ns() - started) / calls
    finally:
        gc.enable()


def _compare(args: argparse.Namespace) -> None:
    """Alternate child runs of the old tree and this one; print both medians per contender."""
    trees = {"before": ["--src", args.compare], "after": []}
    pooled: dict[str, dict[str, list[float]]] = {tree: {} for tree in trees}
    for _ in range(args.repeat):
        for tree, extra in trees.items():
            command = [sys.executable, __file__, "--json", f"--calls={args.calls}", f"--rounds={args.rounds}"]
            out = subprocess.run([*command, *extra], check=True, capture_output=True, text=True).stdout
            for name, values in json.loads(out).items():
                pooled[tree].setdefault(name, []).extend(values)
    runs = args.repeat * args.rounds
    print(f"python {sys.version.split()[0]}, {args.calls} calls x {runs} rounds per version")
    print(f"before: {args.compare}; after: this checkout")
    # The minimum as well as the median: on a loaded machine the fastest round is the one
    # least disturbed by other processes.
    for label, pick in (("median", statistics.median), ("min", min)):
        print(f"{label:<12} {'before':>8} {'x none':>7} {'after':>8} {'x none':>7}")
        figures = {tree: {n: pick(v) for n, v in pooled[tree].items()} for tree in trees}
        for name in figures["after"]:
            cells = []
            for tree in trees:
                value = figures[tree].get(name)
                base = figures[tree]["none"]
                cells.append(
                    f"{value:8.0f} {value / base:7.1f}" if value is not None else f"{'-':>8} {'-':>7}"
                )
            print(f"{name:<12} {' '.join(cells)}")


def main() -> None:
    """Print the median ns per get of each contender."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--src", default=None, help="the stratacache source tree to import")
    parser.add_argument("--compare", default=None, help="an older source tree to compare with")
    parser.add_argument("--repeat", type=int, default=4, help="child runs per version (--compare)")
    parser.add_argument("--json", action="store_true", help="print every round's figures as JSON")
    args = parser.parse_args()
    if args.compare:
        _compare(args)
        return
    caches, tracer_provider = _caches()
    names = list(caches)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            samples[name].append(_time(caches[name].get, args.calls))
    tracer_provider.shutdown()
    if args.json:
        print(json.dumps(samples))
        return
    base = statistics.median(samples["none"])
    print(f"python {sys.version.split()[0]}, {args.calls} calls x {args.rounds} rounds, median")
    print(f"stratacache from {Path(sys.modules['stratacache'].__file__ or '').parent.parent}")
    print(f"{'contender':<12} {'ns/get':>8} {'x none':>7}")
    for name in names:
        median = statistics.median(samples[name])
        print(f"{name:<12} {median:8.0f} {median / base:7.1f}")


if __name__ == "__main__":
    main()

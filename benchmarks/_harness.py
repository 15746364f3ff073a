"""The measurement harness the benchmark scripts share (not a benchmark itself).

* call loops: one tiny function per call shape, so every contender pays the same loop;
* :class:`Contender`, :class:`Scenario`, :class:`Target`: what is timed, and the ratio a
  script aims at;
* :func:`run_sync` / :func:`run_async`: interleaved rounds, the order rotated every round so
  machine drift hits every contender alike, the garbage collector off while a round is
  timed; :func:`rotations` and :func:`interleaved_medians` for the scripts that time their
  own loops;
* :func:`ratios`, :func:`print_scenario`: the medians and ratios as the scripts print them;
* :func:`cpu_model`, :func:`versions`, :func:`print_machine`, :func:`machine_json`: the
  machine header of a run.

Importing it also makes ``stratacache`` importable when the script runs without
``PYTHONPATH=src``: it then adds the ``src/`` directory of the checkout it lives in.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

try:
    import stratacache
except ImportError:  # running without PYTHONPATH=src: use the checkout this file lives in
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import stratacache

perf_counter_ns = time.perf_counter_ns

ROLE_SC = "stratacache"  # the contenders the ratios are taken of
ROLE_PEER = "peer"  # another library, or a raw variant shown for context
ROLE_FLOOR = "floor"  # the least the operation can cost (a dict, a bare loop)
ROLE_RAW = "raw"  # the baseline a target is measured against
ROLE_DIAG = "diagnostic"  # an inner layer of stratacache, to show where the time goes

T = TypeVar("T")


# --------------------------------------------------------------------------- loops
# One tiny function per call shape, so each contender pays exactly the same loop overhead
# (FOR_ITER + one call) and nothing else. Targets are bound methods looked up once, outside
# the loop, the way a hot loop in an application would hold them.


def loop_call1(fn: Callable[[Any], Any], keys: list[Any]) -> None:
    for k in keys:
        fn(k)


def loop_call2(fn: Callable[[Any, Any], Any], keys: list[Any], value: Any) -> None:
    for k in keys:
        fn(k, value)


async def aloop_call1(fn: Callable[[Any], Awaitable[Any]], keys: list[Any]) -> None:
    for k in keys:
        await fn(k)


async def aloop_call2(fn: Callable[[Any, Any], Awaitable[Any]], keys: list[Any], value: Any) -> None:
    for k in keys:
        await fn(k, value)


# ----------------------------------------------------------------------- contenders


@dataclass
class Contender:
    name: str
    role: str
    run: Callable[[], Any]  # runs the whole op list once (returns an awaitable when async)
    note: str = ""
    rounds: list[float] = field(default_factory=list)  # ns per unit, one per timed round

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)


@dataclass
class Target:
    """``ours / raw <= limit``: the ratio a scenario aims at (printed, never enforced)."""

    ours: str
    raw: str
    limit: float

    def verdict(self, s: Scenario) -> tuple[float, bool] | None:
        """(the paired ratio, whether it is within the limit); see :func:`paired_ratios`."""
        pair = paired_ratios(s, self.ours, self.raw)
        if pair is None:
            return None
        ratio = statistics.median(pair)
        return ratio, ratio <= self.limit


def paired_ratios(s: Scenario, ours: str, raw: str) -> list[float] | None:
    """``ours / raw`` round by round: the two ran back to back in each round (in rotating
    order), so drift of the machine between rounds (on a shared VM, +-30% for a loopback
    round trip) cancels out of each ratio. Their median is the figure a target is judged
    on; the ratio of the two medians is printed beside it. ``None`` if a name is absent."""
    by_name = {c.name: c for c in s.contenders}
    if ours not in by_name or raw not in by_name:
        return None
    return [a / b for a, b in zip(by_name[ours].rounds, by_name[raw].rounds, strict=True) if b > 0]


@dataclass
class Scenario:
    key: str
    title: str
    detail: str
    calls: int  # calls per contender per round
    contenders: list[Contender]
    per_call: int = 1  # units per call: 1, or the batch size when the figures are per key
    targets: list[Target] = field(default_factory=list)
    is_async: bool = False
    layers: bool = False  # a layer-by-layer breakdown: each row's cost over the row above
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        return "ns/op" if self.per_call == 1 else "ns/key"


# --------------------------------------------------------------------------- timing


def rotations(items: Sequence[T], rounds: int) -> list[list[T]]:
    """The order of each round: ``items`` rotated by one more place every round."""
    n = len(items)
    return [[*items[r % n :], *items[: r % n]] for r in range(rounds)]


def run_sync(s: Scenario, rounds: int) -> None:
    """One warm-up pass, then ``rounds`` interleaved timed rounds into each ``Contender.rounds``."""
    units = s.calls * s.per_call
    for c in s.contenders:  # warm-up: first-touch costs, connections opened, code specialised
        c.run()
    for order in rotations(s.contenders, rounds):
        gc.collect()
        gc.disable()
        try:
            for c in order:
                t0 = perf_counter_ns()
                c.run()
                t1 = perf_counter_ns()
                c.rounds.append((t1 - t0) / units)
        finally:
            gc.enable()


async def run_async(s: Scenario, rounds: int) -> None:
    """:func:`run_sync` for contenders whose ``run`` returns an awaitable."""
    units = s.calls * s.per_call
    for c in s.contenders:
        await c.run()
    for order in rotations(s.contenders, rounds):
        gc.collect()
        gc.disable()
        try:
            for c in order:
                t0 = perf_counter_ns()
                await c.run()
                t1 = perf_counter_ns()
                c.rounds.append((t1 - t0) / units)
        finally:
            gc.enable()


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


def interleaved_medians(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of each timed call over interleaved rounds, the GC off during each call.

    Each contender times itself: it runs its loop once and returns the figure of that round.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for order in rotations(list(contenders), rounds):
        for name in order:
            gc.disable()
            try:
                samples[name].append(contenders[name]())
            finally:
                gc.enable()
    return medians(samples)


async def ainterleaved_medians(
    contenders: dict[str, Callable[[], Awaitable[float]]], rounds: int
) -> dict[str, float]:
    """:func:`interleaved_medians` for contenders that are coroutine functions."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for order in rotations(list(contenders), rounds):
        for name in order:
            gc.disable()
            try:
                samples[name].append(await contenders[name]())
            finally:
                gc.enable()
    return medians(samples)


# --------------------------------------------------------------------------- output


def ratios(s: Scenario) -> dict[str, dict[str, float]]:
    """{stratacache contender: {other contender: stratacache median / other median}}."""
    out: dict[str, dict[str, float]] = {}
    for a in s.contenders:
        if a.role != ROLE_SC:
            continue
        out[a.name] = {b.name: a.median / b.median for b in s.contenders if b is not a and b.median > 0}
    return out


def _spread(c: Contender) -> str:
    lo, hi = min(c.rounds), max(c.rounds)
    return f"{100 * (hi - lo) / c.median:5.1f}%"


@dataclass(frozen=True)
class Style:
    """How a script prints its scenarios (each script keeps its own look)."""

    count: str = "ops"  # what a round counts: "20,000 ops/round", "1,000 calls/round"
    digits: int = 1  # decimals of the ns figures
    ratio_digits: int = 2  # decimals of the ratios
    sc_ratio_rows: bool = True  # stratacache contenders get a ratio row too (— against itself)


def print_scenario(s: Scenario, rounds: int, style: Style) -> None:
    width = max(len(c.name) for c in s.contenders) + 2
    d = style.digits
    print()
    print(f"{s.title}  ({s.detail})")
    per = "" if s.per_call == 1 else f" of {s.per_call} keys"
    counted = f"{s.calls:,} {style.count}{per}/round x {rounds} rounds"
    print(f"  {counted}; {s.unit} = median round, min = best round,")
    print("  spread = (max-min)/median across rounds")
    print(f"  {'contender':<{width}} {s.unit:>8} {'min':>8}  {'spread':>6}  note")
    prev: float | None = None
    for c in s.contenders:
        tag = {ROLE_SC: "*", ROLE_DIAG: "("}.get(c.role, " ")
        note = c.note + (" [diagnostic: an inner layer of *]" if c.role == ROLE_DIAG else "")
        if s.layers and c.role != ROLE_PEER:
            # The cost this row adds to the row above it (the previous layer).
            note += f"  [{c.median - prev:+7.1f} ns vs row above]" if prev is not None else ""
            prev = c.median
        line = f"{tag} {c.name:<{width}} {c.median:8.{d}f} {min(c.rounds):8.{d}f}  {_spread(c)}  {note}"
        print(line.rstrip())
    if s.layers:
        return
    r = ratios(s)
    sc_names = list(r)
    head = "".join(f"{n:>{max(12, len(n) + 2)}}" for n in sc_names)
    print(f"  ratio = stratacache / row{'':<{max(0, width - 25)}}   {head}")
    for c in s.contenders:
        if c.role == ROLE_SC and not style.sc_ratio_rows:
            continue
        o = c.name
        cells = "".join(
            f"{('—' if o == n else f'{r[n][o]:.{style.ratio_digits}f}x'):>{max(12, len(n) + 2)}}"
            for n in sc_names
        )
        print(f"    / {o:<{width - 2}}  {cells}")
    by_name = {c.name: c for c in s.contenders}
    for t in s.targets:
        if t.ours in by_name and t.raw in by_name:
            extra = by_name[t.ours].median - by_name[t.raw].median
            print(f"  {t.ours} - {t.raw} = {extra:+.0f} {s.unit} (the facade's cost on top of the raw call)")
    for t in s.targets:
        v = t.verdict(s)
        pair = paired_ratios(s, t.ours, t.raw)
        if v is not None and pair is not None:
            ratio, met = v
            q1, _, q3 = statistics.quantiles(pair, n=4) if len(pair) > 1 else (ratio, ratio, ratio)
            of_medians = by_name[t.ours].median / by_name[t.raw].median
            print(
                f"  target {t.ours} / {t.raw} <= {t.limit:.2f}x: {ratio:.4f}x, {'met' if met else 'MISSED'}"
                f"  (median of per-round ratios, quartiles {q1:.3f}-{q3:.3f};"
                f" ratio of medians {of_medians:.4f}x)"
            )
    for line in s.checks:
        print(f"  check: {line}")
    for w in s.warnings:
        print(f"  WARNING: {w}")


def scenario_json(s: Scenario, counts: dict[str, Any], *, targets: bool = False) -> dict[str, Any]:
    """A scenario in a script's JSON document.

    ``counts`` give its size the script's way; ``targets`` adds its targets and checks.
    """
    doc: dict[str, Any] = {"key": s.key, "title": s.title, "detail": s.detail, **counts}
    doc["contenders"] = [
        {
            "name": c.name,
            "role": c.role,
            "note": c.note,
            "median_ns": c.median,
            "min_ns": min(c.rounds),
            "max_ns": max(c.rounds),
            "rounds_ns": c.rounds,
        }
        for c in s.contenders
    ]
    doc["ratios"] = ratios(s)
    if targets:
        by_name = {c.name: c for c in s.contenders}
        doc["targets"] = [
            {
                "ours": t.ours,
                "raw": t.raw,
                "limit": t.limit,
                "ratio": v[0],  # median of the per-round ratios (paired_ratios)
                "ratio_of_medians": by_name[t.ours].median / by_name[t.raw].median,
                "met": v[1],
            }
            for t in s.targets
            if (v := t.verdict(s)) is not None
        ]
        doc["checks"] = s.checks
    doc["warnings"] = s.warnings
    return doc


def write_json(path: str, doc: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


# ---------------------------------------------------------------------- the machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _not_installed(_: str) -> str:
    return "not installed"


def versions(names: Iterable[str], missing: Callable[[str], str] = _not_installed) -> dict[str, str]:
    """stratacache's version, then each distribution's (``missing(name)`` when it has none)."""
    out = {"stratacache": getattr(stratacache, "__version__", "?")}
    for name in names:
        try:
            out[name] = version(name)
        except Exception:
            out[name] = missing(name)
    return out


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def print_machine(what: str, versions: dict[str, str]) -> None:
    """The first lines of a run: what, when, which Python on which CPU, which versions."""
    print(f"stratacache {what} benchmark  {now()}")
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}")
    print(f"CPU: {cpu_model()}  ({os.cpu_count()} logical cores visible)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


def machine_json() -> dict[str, Any]:
    """The first keys of a script's JSON document (the caller adds "versions" and its own)."""
    return {
        "date": now(),
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }

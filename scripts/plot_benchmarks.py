#!/usr/bin/env python3
"""Draw the figures of docs/benchmarks.md as PNGs under docs/img/ (committed; shown by the page).

Run after the figures in docs/benchmarks.md change: ``python scripts/plot_benchmarks.py``
(needs matplotlib: ``pip install 'stratacache[plot]'``). The page is the source: each
chart is one of its tables, found by the heading above it, and shows the table's ratio
column as "stratacache's cost over the peer's" (below 1: stratacache is ahead). Rows that
count throughput (requests or operations per second) are inverted so that every bar reads
the same way; a cell holding several ratios (``0.64x / 0.27x``) gives one bar each, named
by the matching parts of the row's label (``lru / tinylfu``) or else of the peer column.
``--check`` exits 1 when a PNG is missing or a chart's table is gone (tests run it).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "docs" / "img"


@dataclass(frozen=True)
class Chart:
    """One PNG: the table under the first heading starting with ``heading``."""

    name: str  # the PNG's file name, without .png
    heading: str
    title: str
    ratio_column: str  # the header of the column with the ratios
    table: int = 0  # which table under that heading


CHARTS = (
    Chart(
        "bench-server",
        "## Server (issue 14)",
        "stratacache serve vs redis-server",
        "ratio",
    ),
    Chart(
        "bench-memcached-listener",
        "## Memcached listener",
        "stratacache serve's Memcached listener vs memcached",
        "ratio",
    ),
    Chart(
        "bench-redis-memcached-backends",
        "## Redis and Memcached backends",
        "Cache on Redis / Memcached vs redis-py / pymemcache",
        "ratio",
    ),
    Chart(
        "bench-file-layered",
        "## File, layered and sharded backends",
        "file backend vs diskcache; layered L1 vs memory://",
        "ratio",
    ),
    Chart(
        "bench-memory-engine",
        "## In-memory engine (issue 13)",
        "memory engine vs cachetools / theine / aiocache (ns per call)",
        "after / peer",
        table=1,
    ),
)

_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*x")
_THROUGHPUT = re.compile(r"\b(rps|ops/s)\b")


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tables_under(markdown: str, heading: str) -> list[Table]:
    """The tables between the heading starting with ``heading`` and the next heading of its level."""
    lines = markdown.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        return []
    found: list[Table] = []
    i = start + 1
    while i < len(lines):
        line = lines[i]
        hashes = len(line) - len(line.lstrip("#"))
        if line.startswith("#") and hashes <= level and line[hashes : hashes + 1] == " ":
            break
        rule = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith("|") and rule.startswith("|") and set(rule.replace("|", "").strip()) <= set("-: "):
            header, rows = _cells(line), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            found.append(Table(header, rows))
            continue
        i += 1
    return found


def _labels(label: str, peer: str, n: int) -> list[str]:
    """One label per ratio of a row: ``"get, lru / tinylfu"`` -> ``["get, lru", "get, tinylfu"]``."""
    if n <= 1:
        return [label] * n
    match = re.fullmatch(r"(.*[,:] )?(.*)", label)
    head, tail = (match.group(1) or "", match.group(2)) if match else ("", label)
    parts = tail.split(" / ")
    if len(parts) == n:
        return [f"{head}{p}" for p in parts]
    peers = [re.sub(r"[\d,.]+\s*(ns|µs|ms)?$", "", p.replace("`", "")).strip() for p in peer.split(" / ")]
    if len(peers) == n and all(peers):
        return [f"{label} vs {p}" for p in peers]
    return [f"{label} ({i + 1} of {n})" for i in range(n)]


def bars(chart: Chart, markdown: str) -> list[tuple[str, float]]:
    """(row label, stratacache's cost over the peer's) for each row with a ratio."""
    tables = tables_under(markdown, chart.heading)
    if len(tables) <= chart.table:
        raise LookupError(f"{chart.name}: no table {chart.table} under {chart.heading!r} in {PAGE.name}")
    table = tables[chart.table]
    column = table.header.index(chart.ratio_column)
    found = []
    for row in table.rows:
        ratios = [float(m) for m in _NUMBER.findall(row[column].replace("*", "")) if float(m) > 0]
        label = row[0].replace("`", "")
        for part, ratio in zip(_labels(label, row[column - 1], len(ratios)), ratios, strict=True):
            # cost = time per operation: the inverse of a throughput ratio
            found.append((part, 1 / ratio if _THROUGHPUT.search(label) else ratio))
    if not found:
        raise LookupError(f"{chart.name}: no ratios in column {chart.ratio_column!r}")
    return found


def draw(chart: Chart, data: list[tuple[str, float]], path: Path) -> None:
    """A horizontal bar per row, a line at 1.0 (parity), written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Long labels lose their middle: their end says which operation the bar is.
    labels = [label if len(label) <= 60 else label[:38] + "..." + label[-19:] for label, _ in data]
    values = [value for _, value in data]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(data) + 1.4))
    colors = ["#2e7d32" if v <= 1 else "#c62828" for v in values]
    ax.barh(range(len(data)), values, color=colors)
    ax.set_yticks(range(len(data)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}x", va="center", fontsize=8)
    ax.set_xlim(0, max(values) * 1.2)
    ax.set_xlabel("stratacache's cost / the peer's (below 1: stratacache ahead)")
    ax.set_title(chart.title, fontsize=10)
    fig.tight_layout()
    # Fixed metadata: re-running on unchanged figures gives the same bytes (no git churn).
    fig.savefig(path, dpi=80, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=Path, default=PAGE, help="the benchmarks page (docs/benchmarks.md)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go (docs/img)")
    parser.add_argument("--check", action="store_true", help="only check every chart's table and PNG")
    args = parser.parse_args(argv)
    markdown = args.page.read_text(encoding="utf-8")
    problems = []
    for chart in CHARTS:
        try:
            data = bars(chart, markdown)
        except LookupError as exc:
            problems.append(str(exc))
            continue
        path = args.out / f"{chart.name}.png"
        if args.check:
            if not path.exists():
                problems.append(f"{path} is missing: run python scripts/plot_benchmarks.py")
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        draw(chart, data, path)
        print(f"{path}: {len(data)} bars")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

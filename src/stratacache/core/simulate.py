"""Replay an access trace against eviction policies and report hit ratios.

The model is the one the cache-policy literature uses: every request is a *get*, and a miss
is followed by a *set* of the same key ("demand fill"). The policy is driven directly, with
a set of resident keys standing in for the store, so the numbers measure the policy alone::

    for key in trace:
        if key in resident:     policy.on_access(key)                      # hit
        else:                   policy.record_miss(key); policy.on_insert(key)
                                while len(resident) > size: resident.remove(policy.evict())

Traces are text, one key per line (gzip-compressed or not, detected by the magic bytes);
lines that are empty or ``*`` are skipped, as in the LIRS traces of Caffeine's simulator.

From the command line (``python -m stratacache simulate`` is wired to :func:`main`)::

    simulate --trace multi2.trace.gz --policy lru --policy tinylfu --size 2% --size 10% --size 500

A size is a number of entries, or a percentage of the trace's distinct keys, which resolves to
``max(8, int(distinct * percent / 100))`` (the convention of the reference figures).
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .._exceptions import ConfigurationError
from .policies import make_policy, policy_names

__all__ = ["SimResult", "main", "read_trace", "resolve_size", "simulate", "simulate_many"]

_GZIP_MAGIC = b"\x1f\x8b"
# The smallest cache a percentage size resolves to: below it a percentage of a small trace
# would measure a degenerate cache of one or two entries.
_MIN_PERCENT_SIZE = 8


@dataclass(frozen=True, slots=True)
class SimResult:
    """The outcome of one replay: ``hit_ratio`` is ``hits / requests`` (0.0 for no requests)."""

    policy: str
    size: int
    requests: int
    hits: int
    hit_ratio: float


def read_trace(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield the keys of a trace file, one per line, skipping empty lines and ``*`` lines.

    The file may be gzip-compressed (recognised by its magic bytes, not its name) or plain text.
    """
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
    opener = gzip.open if gzipped else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            key = line.strip()
            if key and key != "*":
                yield key


def resolve_size(spec: int | str, distinct: int) -> int:
    """A cache size: an int (or decimal string) as is, or ``"N%"`` of ``distinct`` keys.

    A percentage gives ``max(8, int(distinct * N / 100))``; anything that is not a positive size
    raises :class:`~stratacache.ConfigurationError`.
    """
    if isinstance(spec, str):
        text = spec.strip()
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
                if not 0 < percent <= 100:
                    raise ValueError(text)
                return max(_MIN_PERCENT_SIZE, int(distinct * percent / 100))
            size = int(text)
        except ValueError:
            raise ConfigurationError(
                f"bad cache size {spec!r}: expected a positive number of entries or a percentage like '2%'"
            ) from None
    elif isinstance(spec, int) and not isinstance(spec, bool):
        size = spec
    else:
        raise ConfigurationError(f"bad cache size {spec!r}: expected an int or a string like '2%'")
    if size <= 0:
        raise ConfigurationError(f"bad cache size {spec!r}: it must be positive")
    return size


def simulate(keys: Iterable[Hashable], policy: str, size: int, **policy_kwargs: Any) -> SimResult:
    """Replay ``keys`` as "get; on a miss, set" on a ``size``-entry cache using ``policy``.

    ``policy_kwargs`` go to the policy's constructor (``seed=`` for instance).
    """
    p = make_policy(policy, size, **policy_kwargs)
    resident: set[Hashable] = set()
    add = resident.add
    remove = resident.remove
    # Bound methods hoisted out of the loop, and on_access skipped for policies that ignore it.
    on_access = p.on_access if p.tracks_access else None
    record_miss = p.record_miss
    on_insert = p.on_insert
    evict = p.evict
    requests = 0
    hits = 0
    for key in keys:
        requests += 1
        if key in resident:
            hits += 1
            if on_access is not None:
                on_access(key)
            continue
        record_miss(key)
        on_insert(key)
        add(key)
        while len(resident) > size:
            remove(evict())
    return SimResult(policy, size, requests, hits, hits / requests if requests else 0.0)


def simulate_many(
    keys_list: Sequence[Hashable], policies: Iterable[str], sizes: Iterable[int | str]
) -> list[SimResult]:
    """Replay one trace for every policy at every size (sizes may be percentages like ``"2%"``).

    Results come policy by policy, each in the order of ``sizes``.
    """
    sizes = list(sizes)
    resolved = [resolve_size(s, len(set(keys_list))) if isinstance(s, str) else s for s in sizes]
    return [simulate(keys_list, policy, size) for policy in policies for size in resolved]


def format_table(results: Sequence[SimResult], *, title: str = "") -> str:
    """Render results as a Markdown table: policy, size, requests, hits, hit ratio in percent."""
    lines = [title, ""] if title else []
    lines.append("| policy | size | requests | hits | hit ratio % |")
    lines.append("|---|---:|---:|---:|---:|")
    lines.extend(
        f"| {r.policy} | {r.size} | {r.requests} | {r.hits} | {100 * r.hit_ratio:.2f} |" for r in results
    )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stratacache simulate",
        description="Replay a trace (one key per line, optionally gzipped) as 'get; on a miss, set' "
        "and print the hit ratio of each policy at each cache size.",
    )
    parser.add_argument("--trace", required=True, help="trace file, plain text or gzip")
    parser.add_argument(
        "--policy",
        action="append",
        dest="policies",
        metavar="NAME",
        help=f"policy to replay, repeatable (default: all of {', '.join(policy_names())})",
    )
    parser.add_argument(
        "--size",
        action="append",
        dest="sizes",
        metavar="N|P%",
        help="cache size in entries, or a percentage of the trace's distinct keys; repeatable "
        "(default: 2%% and 10%%)",
    )
    parser.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="a progress bar on stderr (auto: when it is a terminal)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """The ``simulate`` command: parse ``argv``, replay, print a table; returns the exit status.

    Usage errors exit through argparse (status 2); a bad policy, size or unreadable trace
    prints one line to stderr and returns 2.
    """
    args = _parser().parse_args(argv)
    out = sys.stdout if out is None else out
    policies: list[str] = args.policies or policy_names()
    size_specs: list[str] = args.sizes or ["2%", "10%"]
    try:
        unknown = [p for p in policies if p not in policy_names()]
        if unknown:
            raise ConfigurationError(f"unknown policy {unknown[0]!r}; valid: {', '.join(policy_names())}")
        keys = list(read_trace(args.trace))
        distinct = len(set(keys))
        sizes = [resolve_size(spec, distinct) for spec in size_specs]
        runs = [(policy, size) for policy in policies for size in sizes]
        results = []
        # A replay of a large trace takes seconds per (policy, size): show the count on a terminal.
        from .._cli_progress import Progress

        shown = {"auto": None, "on": True, "off": False}[args.progress]
        with Progress("simulate", len(runs), enabled=shown) as bar:
            for done, (policy, size) in enumerate(runs, 1):
                results.append(simulate(keys, policy, size))
                bar.update(done)
    except (ConfigurationError, OSError, EOFError, UnicodeDecodeError) as exc:
        # OSError covers a missing file and a corrupt gzip stream (gzip.BadGzipFile).
        print(f"stratacache simulate: error: {exc}", file=sys.stderr)
        return 2
    title = f"trace {args.trace}: {len(keys)} requests, {distinct} distinct keys"
    print(format_table(results, title=title), file=out)
    return 0

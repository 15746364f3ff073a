"""``stratacache bench URL``: time stratacache against the library a user would pick instead.

The peers by scheme: redis-py for ``redis://``/``rediss://``, pymemcache for
``memcached://``, cachetools' ``TTLCache`` for ``memory://`` and diskcache for ``file://``,
each where it is installed (a missing one is named in the output, never an error). Every
contender runs the same operations (set, get of a present key, get of an absent key) on the
same keys and values; rounds are interleaved and their order rotated every round, so the
drift of a shared machine hits every contender alike (the method of
``benchmarks/_harness.py``, which lives outside the package and so cannot be imported by
an installed command). The figure is the median over rounds, in microseconds per
operation; the ratio is stratacache's time over the peer's (below 1: stratacache is faster).

The keys written carry a random ``scbench:`` prefix and are deleted at the end, so a bench
against a live server leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ._cli_progress import Progress
from ._exceptions import ConfigurationError
from ._redact import redact_url

__all__ = ["BenchResult", "Contender", "format_table", "plot", "run_bench"]

OPERATIONS = ("set", "get hit", "get miss")


@dataclass
class Contender:
    """One library under test: its name and its set/get callables."""

    name: str
    set: Callable[[str, bytes], Any]
    get: Callable[[str], Any]
    cleanup: Callable[[list[str]], Any]
    # microseconds per operation, one figure per timed round, by operation
    rounds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, operation: str) -> float:
        """The median of this contender's rounds of ``operation`` (µs per operation)."""
        return statistics.median(self.rounds[operation])


@dataclass
class BenchResult:
    """What ``run_bench`` measured, and the peers it could not run (name -> why)."""

    url: str
    ops: int
    rounds: int
    value_size: int
    contenders: list[Contender]
    missing: dict[str, str]

    def ratio(self, operation: str, peer: Contender) -> float:
        """stratacache's median time over ``peer``'s for ``operation``."""
        ours = self.contenders[0].median(operation)
        theirs = peer.median(operation)
        return ours / theirs if theirs > 0 else float("inf")


def _ours(url: str, stack: ExitStack) -> Contender:
    import stratacache as sc

    cache = stack.enter_context(sc.Cache(url))
    return Contender("stratacache", cache.set, cache.get, cache.delete_many)


def _redis_peer(url: str, stack: ExitStack) -> Contender:
    import redis

    parts = urlsplit(url)
    client = redis.Redis(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(parts.path.strip("/") or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme == "rediss",
    )
    stack.callback(client.close)

    def cleanup(keys: list[str]) -> None:
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])

    return Contender("redis-py", client.set, client.get, cleanup)


def _memcached_peer(url: str, stack: ExitStack) -> Contender:
    from pymemcache.client.hash import HashClient

    hosts = urlsplit(url).netloc.rpartition("@")[2]
    servers = []
    for part in hosts.split(","):
        host, _, port = part.rpartition(":")
        servers.append((host.strip("[]") or "127.0.0.1", int(port or 11211)))
    client = HashClient(servers)
    stack.callback(client.close)
    return Contender("pymemcache", client.set, client.get, client.delete_many)


def _memory_peer(url: str, stack: ExitStack) -> Contender:
    import cachetools

    cache: Any = cachetools.TTLCache(maxsize=1_000_000, ttl=3600)
    return Contender("cachetools", cache.__setitem__, cache.get, lambda keys: cache.clear())


def _file_peer(url: str, stack: ExitStack) -> Contender:
    import diskcache

    directory = tempfile.mkdtemp(prefix="stratacache-bench-diskcache-")
    stack.callback(shutil.rmtree, directory, True)
    cache = diskcache.Cache(directory)
    stack.callback(cache.close)
    return Contender("diskcache", cache.set, cache.get, lambda keys: cache.clear())


# scheme -> (peer name, the module it needs, its factory)
PEERS: dict[str, tuple[str, str, Callable[[str, ExitStack], Contender]]] = {
    "redis": ("redis-py", "redis", _redis_peer),
    "rediss": ("redis-py", "redis", _redis_peer),
    "memcached": ("pymemcache", "pymemcache", _memcached_peer),
    "memory": ("cachetools", "cachetools", _memory_peer),
    "file": ("diskcache", "diskcache", _file_peer),
}


def _time(fn: Callable[[], None], ops: int) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / ops / 1000


def _loops(c: Contender, keys: list[str], misses: list[str], value: bytes) -> dict[str, Callable[[], None]]:
    set_, get = c.set, c.get

    def do_set() -> None:
        for k in keys:
            set_(k, value)

    def do_hit() -> None:
        for k in keys:
            get(k)

    def do_miss() -> None:
        for k in misses:
            get(k)

    return {"set": do_set, "get hit": do_hit, "get miss": do_miss}


@contextmanager
def _contenders(url: str, missing: dict[str, str]) -> Iterator[list[Contender]]:
    import importlib.util

    scheme = url.partition("://")[0].lower()
    with ExitStack() as stack:
        found = [_ours(url, stack)]
        peer = PEERS.get(scheme)
        if peer is None:
            missing["(no peer)"] = f"no other library is compared on {scheme}:// URLs"
        else:
            name, module, factory = peer
            if importlib.util.find_spec(module) is None:
                missing[name] = f"not installed (pip install {module})"
            else:
                found.append(factory(url, stack))
        yield found


def run_bench(
    url: str,
    *,
    ops: int = 2000,
    rounds: int = 5,
    value_size: int = 100,
    progress: bool | None = None,
) -> BenchResult:
    """Time set / get hit / get miss ``ops`` times per round for ``rounds`` rounds."""
    if ops < 1 or rounds < 1 or value_size < 0:
        raise ConfigurationError("bench needs --ops >= 1, --rounds >= 1 and --value-size >= 0")
    token = uuid.uuid4().hex[:12]
    value = os.urandom(value_size)
    missing: dict[str, str] = {}
    with _contenders(url, missing) as contenders:
        # Keys of their own per contender: on a shared server one must not read the other's bytes.
        keys = {c.name: [f"scbench:{token}:{n}:{i}" for i in range(ops)] for n, c in enumerate(contenders)}
        misses = [f"scbench:{token}:absent:{i}" for i in range(ops)]
        loops = {c.name: _loops(c, keys[c.name], misses, value) for c in contenders}
        total = len(OPERATIONS) * (rounds + 1) * len(contenders)
        try:
            with Progress("bench", total, enabled=progress) as bar:
                done = 0
                for operation in OPERATIONS:
                    for c in contenders:
                        loops[c.name][operation]()  # warm-up: connections, code paths
                        c.rounds[operation] = []
                        done += 1
                        bar.update(done)
                    for r in range(rounds):
                        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
                        for c in order:
                            c.rounds[operation].append(_time(loops[c.name][operation], ops))
                            done += 1
                            bar.update(done)
        finally:
            for c in contenders:
                c.cleanup(keys[c.name])
    return BenchResult(redact_url(url), ops, rounds, value_size, contenders, missing)


def format_table(result: BenchResult) -> str:
    """The side-by-side table: µs per operation for each contender, then the ratios."""
    ours, peers = result.contenders[0], result.contenders[1:]
    headers = ["operation"] + [f"{c.name} µs/op" for c in result.contenders]
    headers += [f"ratio vs {p.name}" for p in peers]
    rows = []
    for operation in OPERATIONS:
        row = [operation] + [f"{c.median(operation):.2f}" for c in result.contenders]
        row += [f"{result.ratio(operation, p):.2f}x" for p in peers]
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [
        f"stratacache bench {result.url}: {result.ops} ops x {result.rounds} rounds, "
        f"{result.value_size}-byte values, median of the rounds",
        line(headers),
        line(["-" * w for w in widths]),
        *(line(r) for r in rows),
    ]
    if peers:
        out.append(f"ratio = {ours.name} time / peer time (below 1.00x: {ours.name} is faster)")
    out.extend(f"{name}: {why}" for name, why in result.missing.items())
    return "\n".join(out)


def plot(result: BenchResult, path: str) -> None:
    """A grouped bar chart of the medians, written to ``path`` (PNG); needs matplotlib."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigurationError("--plot needs matplotlib: pip install 'stratacache[plot]'") from exc
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(result.contenders)
    for i, c in enumerate(result.contenders):
        xs = [j + i * width for j in range(len(OPERATIONS))]
        ax.bar(xs, [c.median(op) for op in OPERATIONS], width, label=c.name)
    ax.set_xticks([j + width * (len(result.contenders) - 1) / 2 for j in range(len(OPERATIONS))])
    ax.set_xticklabels(OPERATIONS)
    ax.set_ylabel("µs per operation (lower is better)")
    ax.set_title(f"stratacache bench {result.url}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

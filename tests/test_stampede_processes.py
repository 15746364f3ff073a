"""Stampede control across real OS processes (the issue's figure), on four shared backends.

32 child processes (16 with Cache, 16 with AsyncCache) miss one cold key at the same
moment on Redis, Memcached, the file backend and our own server (``stratacache serve``):
the loader must run once (at most twice). Then a value past its ttl, inside its
stale-while-revalidate window, must be refreshed once while the others are served
stale. Loader calls are counted in a file that every child appends to, never in a
process's memory. A second test kills a lease holder with SIGKILL mid-load and checks
that another caller takes over once the lease expires.

One zygote process imports everything and forks the 32 workers, which serve every round:
interpreter start-ups and imports cost far more than the rounds themselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stratacache as sc
from stratacache._async.lease import lease_key

CHILD = Path(__file__).with_name("stampede_child.py")
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the workers are forked (POSIX)")
PROCESSES = 32
LOAD_SECONDS = 0.3
BACKENDS = ("redis", "memcached", "file", "stratacache-server")


@pytest.fixture
def backend_urls(
    redis_server: Any, memcached_server: Any, stratacache_server: Any, tmp_path: Path
) -> dict[str, str]:
    return {
        "redis": redis_server.url,
        "memcached": memcached_server.url,
        "file": f"file://{tmp_path / 'file-cache'}",
        "stratacache-server": f"redis://127.0.0.1:{stratacache_server.port}/0",
    }


def _spawn(config: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


@pytest.fixture
def zygote(backend_urls: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """The process that forks the 32 workers and relays rounds to them (stampede_child.py)."""
    counters = tmp_path / "counters"
    counters.mkdir()
    proc = _spawn(
        {
            "caches": backend_urls,
            "counters": str(counters),
            "lease_ttl": 10,
            "load_seconds": LOAD_SECONDS,
            "mode": "rounds",
            "processes": PROCESSES,
        }
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _values(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        assert proc.stderr is not None
        raise AssertionError(f"stampede_child exited {proc.wait()}: {proc.stderr.read()[-2000:]}")
    values: list[str] = json.loads(line)
    return values


def test_32_processes_call_the_loader_once(zygote: subprocess.Popen[str], tmp_path: Path) -> None:
    assert zygote.stdin is not None
    assert _values(zygote) == ["ready"] * PROCESSES
    figures = {}
    for name in BACKENDS:
        key = f"cold-{uuid.uuid4().hex}"
        started = time.perf_counter()
        # Every worker is blocked on its own pipe: one write each releases them together.
        zygote.stdin.write(f"{name} {key}\n")
        zygote.stdin.flush()
        values = _values(zygote)
        elapsed = time.perf_counter() - started
        calls = (tmp_path / "counters" / name).stat().st_size
        assert 1 <= calls <= 2, f"{name}: the loader ran {calls} times for {PROCESSES} processes"
        # Everybody got a loader's result: the one holder's (or, with 2 calls, one of two).
        assert len(set(values)) == calls, f"{name}: {sorted(set(values))}"
        assert all(v.startswith("loaded-by-") for v in values), values
        figures[name] = {"processes": PROCESSES, "loader_calls": calls, "seconds": round(elapsed, 3)}
    # Stale-while-revalidate across processes: a value past its ttl is refreshed once, by
    # one process, while the others are served the stale value.
    keys = {name: f"swr-{uuid.uuid4().hex}" for name in BACKENDS}
    first = {}
    for name in BACKENDS:
        zygote.stdin.write(f"{name} {keys[name]} swr\n")
        zygote.stdin.flush()
        first[name] = set(_values(zygote))
        assert len(first[name]) == 1, first[name]
    before = {name: (tmp_path / "counters" / name).stat().st_size for name in BACKENDS}
    time.sleep(1.1)  # past the 1 s ttl, inside the 30 s window
    for name in BACKENDS:
        started = time.perf_counter()
        zygote.stdin.write(f"{name} {keys[name]} swr\n")
        zygote.stdin.flush()
        values = _values(zygote)
        elapsed = time.perf_counter() - started
        refreshes = (tmp_path / "counters" / name).stat().st_size - before[name]
        assert refreshes == 1, f"{name}: {refreshes} refreshes by {PROCESSES} processes"
        stale = sum(value in first[name] for value in values)
        assert stale >= 1, f"{name}: nobody was served the stale value"
        assert all(value in first[name] or value.startswith("loaded-by-") for value in values)
        assert len(set(values)) == 2, f"{name}: {sorted(set(values))}"  # the stale and the refreshed one
        figures[name].update(
            {"swr_refreshes": refreshes, "swr_served_stale": stale, "swr_seconds": round(elapsed, 3)}
        )
    zygote.stdin.write("quit\n")
    zygote.stdin.flush()
    assert zygote.wait(timeout=60) == 0
    _report(figures)


def test_killed_lease_holder_is_taken_over(backend_urls: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL the process holding the lease mid-load (on all four backends at once): a
    caller in another process waits, takes the lease once it expires, and loads."""
    counters = tmp_path / "counters"
    counters.mkdir()
    key = f"orphan-{uuid.uuid4().hex}"
    # Whole seconds, and 3 rather than 2: Memcached rounds expiries up to whole seconds of
    # its own coarse clock, so a lease may live up to a second less than asked.
    lease_ttl = 3.0
    policy = sc.StampedePolicy(lease_ttl=lease_ttl, wait_timeout=20, backoff_initial=0.01, backoff_max=0.1)
    caches = {name: sc.Cache(url, namespace="stampede") for name, url in backend_urls.items()}
    try:
        for cache in caches.values():
            cache.ping()  # connected before the holder starts: the lease checks below are quick
        holder = _spawn(
            {
                "caches": backend_urls,
                "counters": str(counters),
                "lease_ttl": lease_ttl,
                "mode": "hang",
                "key": key,
            }
        )
        try:
            deadline = time.monotonic() + 30
            while not all((counters / name).exists() for name in BACKENDS):  # every load started
                assert holder.poll() is None, holder.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "the holder never started loading"
                time.sleep(0.01)
            for name, cache in caches.items():
                assert cache.get(lease_key(key)) is not None, name  # the holder's lease
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.communicate()
        killed = time.perf_counter()
        for name, cache in caches.items():
            counter = counters / name

            def load(counter: Path = counter) -> str:
                with counter.open("ab") as out:
                    out.write(b"x")
                return "taken-over"

            assert cache.get_or_set(key, load, ttl=60, policy=policy) == "taken-over", name
            assert cache.get(key) == "taken-over", name
            assert cache.get(lease_key(key)) is None, name  # released by the new holder
            assert counter.stat().st_size == 2, name  # the dead holder's call and ours
        taken_over = time.perf_counter() - killed
    finally:
        for cache in caches.values():
            cache.close()
    _report({"killed_holder": {"lease_ttl": lease_ttl, "all_four_taken_over_after": round(taken_over, 3)}})


def _report(figures: dict[str, Any]) -> None:
    """Append measured figures to $STRATACACHE_STAMPEDE_REPORT (docs/patterns/stampede.md's table)."""
    report = os.environ.get("STRATACACHE_STAMPEDE_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            out.write(json.dumps(figures) + "\n")

"""The verbs across real processes: compare-and-set increments and get-and-delete races.

The conformance suite checks every verb on every backend, with tasks and threads racing in
one process. Here several processes share one store (Redis, our server, Memcached, a file
directory) and race for real: N workers each add 1 k times by ``get_item`` + ``set(...,
if_version=)``, and the total must be exactly N*k; N workers ``pull`` one key at once and
exactly one of them gets it. The memory backend is per process: its race is the threads'
one in the conformance suite, and one more here with more threads.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import stratacache as sc
from stratacache import MISSING

WORKERS = 4
INCREMENTS = 15

# A worker: builds its cache, says "ready", waits for "go" (so all start together), then
# does its part and prints its result.
_WORKER = """
import sys
import stratacache as sc
from stratacache import MISSING

url, mode, key, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with sc.Cache(url) as cache:
    cache.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "cas":
        lost = 0
        for _ in range(count):
            while True:
                item = cache.get_item(key)
                if cache.set(key, item.value + 1, if_version=item.version):
                    break
                lost += 1
        print(lost, flush=True)
    else:
        print(repr(cache.pull(key, "nothing")), flush=True)
"""


@pytest.fixture(params=["redis", "stratacache-server", "memcached", "file"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL every worker process can open onto the same data."""
    name = request.param
    if name in ("redis", "memcached"):
        url: str = request.getfixturevalue(f"{name}_server").url
        return url
    if name == "stratacache-server":
        running = request.getfixturevalue("stratacache_server")
        return f"redis://127.0.0.1:{running.port}/0"
    return f"file://{tmp_path / 'cache'}"


def run_workers(tmp_path: Path, url: str, mode: str, key: str) -> list[str]:
    """Start WORKERS processes, release them together, and return what each printed."""
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, mode, key, str(INCREMENTS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.communicate()[1]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            results.append(out.strip())
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_compare_and_set_increments_from_processes_add_up(shared_url: str, tmp_path: Path) -> None:
    key = f"cas-{uuid.uuid4().hex}"
    with sc.Cache(shared_url) as cache:
        cache.set(key, 0, ttl=300)
        run_workers(tmp_path, shared_url, "cas", key)
        assert cache.get(key) == WORKERS * INCREMENTS


def test_one_process_of_many_pulls_the_value(shared_url: str, tmp_path: Path) -> None:
    key = f"pull-{uuid.uuid4().hex}"
    with sc.Cache(shared_url) as cache:
        cache.set(key, "prize", ttl=300)
        results = run_workers(tmp_path, shared_url, "pull", key)
        assert sorted(results) == ["'nothing'"] * (WORKERS - 1) + ["'prize'"]
        assert cache.exists(key) is False


@pytest.mark.parametrize("url", ["memory://", "memory://?serializer=msgpack"])
def test_compare_and_set_increments_from_threads_add_up_in_memory(url: str) -> None:
    threads_count = 8
    with sc.Cache(url) as cache:
        cache.set("n", 0)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(INCREMENTS):
                    while True:
                        item = cache.get_item("n")
                        assert item is not None
                        if cache.set("n", item.value + 1, if_version=item.version):
                            break
            except BaseException as exc:  # reported in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert cache.get("n") == threads_count * INCREMENTS


def test_versions_from_one_shard_never_match_on_another() -> None:
    # Each memory node counts versions from 1: a version must name the node that issued it,
    # or a compare-and-set after a failover could match an unrelated entry on the successor.
    nodes = {f"m{i}": sc.MemoryBackend() for i in range(2)}
    with sc.Cache(sc.ShardedBackend(nodes)) as cache:  # type: ignore[attr-defined]
        cache.set("k", 1)
        item = cache.get_item("k")
        assert item is not None
        owner = cache.backend.node_for(cache._key("k"))  # type: ignore[attr-defined]
        other = next(name for name in nodes if name != owner)
        nodes[other].store.set("k", "theirs", None)
        assert isinstance(item.version, str)
        forged = item.version.replace(owner, other, 1)
        assert cache.set("k", 2, if_version=forged) is False
        assert cache.delete("k", if_version=forged) is False
        assert cache.set("k", 2, if_version=item.version) is True
        assert nodes[other].store.get("k") == "theirs"


def test_verbs_refuse_bad_arguments_by_name() -> None:
    with sc.Cache() as cache:
        cache.set("k", 1)
        with pytest.raises(sc.InvalidArgument, match="if_version"):
            cache.set("k", 2, if_version=None)
        with pytest.raises(sc.InvalidTTL, match="ttl"):
            cache.set("k", 2, ttl=-1, if_version=1)
        with pytest.raises(sc.InvalidKey):
            cache.get_item(3)  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidTTL, match="ttl"):
            cache.replace("k", 2, ttl="soon")
        assert cache.get("k") == 1


def _hooks_seen(cache: Any) -> list[str]:
    seen: list[str] = []
    for name in ("get_item", "pull", "replace"):
        cache.hooks.add(f"after_{name}", lambda event: seen.append(event.operation))
    return seen


def test_verbs_fire_hooks_and_count_stats() -> None:
    with sc.Cache() as cache:
        seen = _hooks_seen(cache)
        cache.set("k", 1)
        cache.get_item("k")
        cache.get_item("absent")
        cache.replace("k", 2)
        cache.pull("k")
        assert seen == ["get_item", "get_item", "replace", "pull"]
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.sets, stats.deletes) == (2, 1, 2, 1)


def test_file_verbs_on_values_kept_in_their_own_files(tmp_path: Path) -> None:
    # Above inline_threshold a value lives in a file; its version is the file's fresh name,
    # and pull reads the file before the row goes (the file is then trashed and removed).
    big = b"x" * 4096
    with sc.Cache(f"file://{tmp_path}?inline_threshold=1024", serializer="raw") as cache:
        cache.set("big", big)
        item = cache.get_item("big")
        assert item is not None
        assert (item.value, item.size) == (big, len(big))
        assert isinstance(item.version, str)
        assert item.version.startswith("f:")
        cache.set("big", big)  # the same bytes, a new file: a new version
        again = cache.get_item("big")
        assert again is not None
        assert again.version != item.version
        assert cache.set("big", b"y" * 4096, if_version=item.version) is False
        assert cache.set("big", b"y" * 4096, if_version=again.version) is True
        assert cache.replace("big", b"z" * 4096) is True
        assert cache.pull("big") == b"z" * 4096
        assert cache.get("big") is None
        assert sorted(p.name for p in tmp_path.rglob("*.val")) == []


@pytest.mark.parametrize("asynchronous", [False, True])
def test_file_get_item_has_created_on_the_wall_clock(tmp_path: Path, asynchronous: bool) -> None:
    # The index keeps each write's time; get_item reports it, shifted onto the wall clock
    # as expires_at is (the store's clock here is a FakeClock far from real time).
    from stratacache.testing import FakeClock

    clock = FakeClock(1_000.0)

    def check(item: sc.Item | None, written: float) -> None:
        assert item is not None
        assert item.created is not None
        assert item.expires_at is not None
        assert abs(item.created - written) < 5
        assert item.expires_at - item.created == pytest.approx(60, abs=0.01)

    if not asynchronous:
        with sc.Cache(backend="file", directory=str(tmp_path), clock=clock) as cache:
            written = time.time()
            cache.set("k", 1, ttl=60)
            clock.advance(10)
            check(cache.get_item("k"), written - 10)
        return

    async def run() -> None:
        async with sc.AsyncCache(backend="file", directory=str(tmp_path), clock=clock) as cache:
            written = time.time()
            await cache.set("k", 1, ttl=60)
            clock.advance(10)
            check(await cache.get_item("k"), written - 10)

    asyncio.run(run())


def test_verbs_on_a_layered_cache(redis_server: Any) -> None:
    # Two layered caches (memory L1 each) over one real redis-server L2, as two processes:
    # versions and compare-and-set are decided by the shared tier, never by a stale L1.
    options = {"backend": "layered", "tiers": ["memory://", redis_server.url], "namespace": "verbs-layered"}
    with sc.Cache(**options) as a, sc.Cache(**options) as b:
        assert a.backend.wait_listening()  # type: ignore[attr-defined]
        assert b.backend.wait_listening()  # type: ignore[attr-defined]
        a.clear()
        a.set("k", 1, ttl=60)
        seen = a.get_item("k")
        assert seen is not None
        assert seen.value == 1
        assert b.get("k") == 1  # b's L1 holds it now too
        assert b.set("k", 2, ttl=60, if_version=seen.version) is True
        assert a.set("k", 3, ttl=60, if_version=seen.version) is False  # a's version is stale
        assert a.delete("k", if_version=seen.version) is False
        assert a.replace("k", 4, ttl=60) is True
        assert a.replace("absent", 1) is False
        assert b.pull("k") == 4
        assert a.pull("k") is None
        assert a.get("k", MISSING) is MISSING


async def test_verbs_on_a_layered_cache_async(redis_server: Any) -> None:
    options = {"backend": "layered", "tiers": ["memory://", redis_server.url], "namespace": "verbs-layered"}
    async with sc.AsyncCache(**options) as a, sc.AsyncCache(**options) as b:
        assert await a.backend.wait_listening()  # type: ignore[attr-defined]
        assert await b.backend.wait_listening()  # type: ignore[attr-defined]
        await a.clear()
        await a.set("k", 1, ttl=60)
        seen = await a.get_item("k")
        assert seen is not None
        assert await b.get("k") == 1
        assert await b.set("k", 2, ttl=60, if_version=seen.version) is True
        assert await a.set("k", 3, ttl=60, if_version=seen.version) is False
        assert await a.delete("k", if_version=seen.version) is False
        assert await a.replace("k", 4, ttl=60) is True
        assert await b.pull("k") == 4
        assert await a.pull("k") is None
        assert await a.get("k", MISSING) is MISSING

"""Facade behaviour beyond the conformance suite: single-flight, decorators, hooks, stats, API."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import stratacache as sc
from stratacache import AsyncCache, Cache, ConfigurationError, HookEvent, InvalidArgument, InvalidKey

# ------------------------------------------------------------------ public surface


def test_all_is_exactly_the_public_names() -> None:
    public = {name for name in dir(sc) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in public if type(getattr(sc, name)).__name__ == "module"}
    assert set(sc.__all__) == public - modules | {"__version__"}
    for name in sc.__all__:
        assert getattr(sc, name) is not None
        obj = getattr(sc, name)
        if callable(obj) and not isinstance(obj, type(sc.MISSING)):
            assert obj.__doc__, f"{name} has no docstring"


def test_import_loads_no_driver_and_starts_no_thread() -> None:
    code = (
        "import sys, threading; import stratacache; "
        "drivers = [m for m in ('redis', 'pymemcache', 'msgpack', 'orjson', 'cryptography', 'yaml', "
        "'lz4', 'zstandard') if m in sys.modules]; "
        "print(drivers, threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] 1"


def test_missing_is_falsy_and_distinct() -> None:
    assert not sc.MISSING
    assert sc.MISSING is not None
    assert repr(sc.MISSING) == "MISSING"
    assert not sc.UNSET
    assert repr(sc.UNSET) == "UNSET"


def test_error_tree() -> None:
    for cls in (
        sc.BackendUnavailable,
        sc.CacheTimeout,
        sc.SerializationError,
        sc.UnsupportedOperation,
        sc.ConfigurationError,
        sc.CacheClosed,
        sc.ProtocolError,
        sc.InvalidArgument,
        sc.WrongType,
    ):
        assert issubclass(cls, sc.CacheError)
    assert issubclass(sc.InvalidKey, ValueError)
    assert issubclass(sc.InvalidTTL, sc.InvalidArgument)
    assert issubclass(sc.ValueTooLarge, sc.InvalidArgument)
    assert issubclass(sc.WrongType, TypeError)
    error = sc.UnsupportedOperation("memcached", "delete_pattern", "no key enumeration")
    assert str(error) == "backend 'memcached' does not support delete_pattern(): no key enumeration"
    assert (error.backend, error.operation) == ("memcached", "delete_pattern")


# -------------------------------------------------------------------- single-flight


def test_get_or_set_single_flight_threads() -> None:
    cache = Cache("memory")
    calls = 0
    started = threading.Event()
    release = threading.Event()

    def factory() -> str:
        nonlocal calls
        calls += 1
        started.set()
        release.wait(5)
        return "value"

    results: list[Any] = []

    def worker() -> None:
        results.append(cache.get_or_set("k", factory, ttl=60))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    assert started.wait(5)
    time.sleep(0.05)  # let every thread reach the flight before the leader finishes
    release.set()
    for t in threads:
        t.join(5)
    assert results == ["value"] * 16
    assert calls == 1


def test_get_or_set_single_flight_error_reaches_all_threads() -> None:
    cache = Cache("memory")
    calls = 0
    barrier = threading.Barrier(8)

    def factory() -> str:
        nonlocal calls
        calls += 1
        time.sleep(0.1)
        raise RuntimeError("boom")

    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            cache.get_or_set("k", factory)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(errors) == 8
    assert calls < 8  # most callers shared the leader's failure
    assert not cache.exists("k")


async def test_get_or_set_single_flight_tasks() -> None:
    acache = AsyncCache("memory")
    calls = 0

    async def factory() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"n": 1}

    results = await asyncio.gather(*(acache.get_or_set("k", factory) for _ in range(50)))
    assert results == [{"n": 1}] * 50
    assert calls == 1
    assert await acache.get("k") == {"n": 1}


async def test_get_or_set_tasks_share_exception_and_nothing_cached() -> None:
    acache = AsyncCache("memory")
    calls = 0

    async def factory() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        raise ValueError("bad")

    results = await asyncio.gather(
        *(acache.get_or_set("k", factory) for _ in range(10)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, ValueError) for r in results)
    assert not await acache.exists("k")


async def test_cancelled_leader_does_not_fail_waiters() -> None:
    acache = AsyncCache("memory")
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "ok"

    leader = asyncio.create_task(acache.get_or_set("k", factory))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(acache.get_or_set("k", factory))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await follower == "ok"
    assert calls == 2


def test_sync_factory_returning_awaitable_is_refused() -> None:
    cache = Cache("memory")

    async def factory() -> int:
        return 1

    coro_holder: list[Any] = []

    def wrapper() -> Any:
        coro = factory()
        coro_holder.append(coro)
        return coro

    with pytest.raises(InvalidArgument, match="AsyncCache"):
        cache.get_or_set("k", wrapper)
    coro_holder[0].close()
    assert not cache.exists("k")


# ----------------------------------------------------------------------- decorators


def test_cached_sync_function() -> None:
    cache = Cache("memory", namespace="fn")
    calls: list[tuple[int, int]] = []

    @sc.cached(cache, ttl=60)
    def add(a: int, b: int = 2) -> int:
        calls.append((a, b))
        return a + b

    assert add(1) == 3
    assert add(1, 2) == 3
    assert add(a=1) == 3
    assert add(2) == 4
    assert calls == [(1, 2), (2, 2)]
    key = add.cache_key(1)  # type: ignore[attr-defined]
    assert key.endswith("add(a=1, b=2)")
    assert cache.get(key) == 3
    assert add.invalidate(1) is True  # type: ignore[attr-defined]
    assert add(1) == 3
    assert len(calls) == 3
    assert add.__name__ == "add"


def test_cached_custom_key_and_long_args() -> None:
    cache = Cache("memory")

    @sc.cached(cache, key=lambda user_id: f"user:{user_id}")
    def load(user_id: int) -> str:
        return f"user {user_id}"

    assert load(7) == "user 7"
    assert cache.get("user:7") == "user 7"

    @sc.cached(cache)
    def echo(text: str) -> str:
        return text

    long_text = "x" * 1000
    assert echo(long_text) == long_text
    assert "sha256:" in echo.cache_key(long_text)  # type: ignore[attr-defined]

    @sc.cached(cache, key=lambda: 5)  # type: ignore[arg-type, return-value]
    def bad_key() -> int:
        return 1

    with pytest.raises(InvalidKey, match="returned int"):
        bad_key()


async def test_cached_async_function() -> None:
    acache = AsyncCache("memory")
    calls = 0

    @sc.cached(acache, ttl=30)
    async def fetch(n: int) -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return [n] * 3

    results = await asyncio.gather(*(fetch(2) for _ in range(10)))
    assert results == [[2, 2, 2]] * 10
    assert calls == 1
    assert await fetch.invalidate(2) is True  # type: ignore[attr-defined]


def test_cached_flavour_mismatch_and_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="async def"):

        @sc.cached(AsyncCache("memory"))
        def plain() -> int:
            return 1

    with pytest.raises(ConfigurationError, match="AsyncCache"):

        @sc.cached(Cache("memory"))
        async def coroutine() -> int:
            return 1

    with pytest.raises(ConfigurationError, match="needs a Cache"):

        @sc.cached("not a cache")  # type: ignore[arg-type]
        def other() -> int:
            return 1

    with pytest.raises(ConfigurationError, match="key must be a callable"):
        sc.cached(Cache("memory"), key="k")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- hooks


def test_hooks_from_constructor_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    events: list[HookEvent] = []
    errors: list[HookEvent] = []

    def explode(event: HookEvent) -> None:
        raise RuntimeError("hook bug")

    cache = Cache(
        "memory",
        hooks={
            "before_get": [events.append, explode],
            "after_incr": events.append,
            "on_error": errors.append,
        },
    )
    assert cache.get("k") is None
    assert cache.incr("n", 2) == 2
    assert [(e.operation, e.result) for e in events] == [("get", None), ("incr", 2)]
    assert "hook bug" in caplog.text
    cache.set("text", "abc")
    with pytest.raises(sc.WrongType):
        cache.incr("text")
    assert [e.operation for e in errors] == ["incr"]
    assert isinstance(errors[0].error, sc.WrongType)
    assert cache.stats().errors == 1


def test_bad_hooks_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown hook 'after_gte'"):
        Cache("memory", hooks={"after_gte": print})
    with pytest.raises(ConfigurationError, match="must be callable"):
        Cache("memory", hooks={"after_get": [42]})  # type: ignore[list-item]
    cache = Cache("memory")
    cache.hooks.remove("after_get", print)  # removing an unknown hook is harmless


# ---------------------------------------------------------------------------- stats


def test_stats_counts_and_latency() -> None:
    cache = Cache("memory", latency_sample=1, max_entries=2, policy="lru")
    for i in range(3):
        cache.set(f"k{i}", i)
    cache.get("k2")
    cache.get("k0")
    cache.get_many(["k1", "k2", "zz"])
    cache.delete("k1")
    cache.delete("k1")
    stats = cache.stats()
    assert (stats.sets, stats.hits, stats.misses, stats.deletes) == (3, 3, 2, 1)
    assert stats.evictions == 1
    assert stats.items == 1
    assert stats.get_latency.count == 2
    assert stats.set_latency.count == 3
    assert 0 < stats.get_latency.p50 <= stats.get_latency.p99
    assert stats.hit_rate == pytest.approx(3 / 5)
    cache.reset_stats()
    assert cache.stats().hits == 0


def test_stats_expirations_and_namespace_items() -> None:
    from stratacache.testing import FakeClock

    clock = FakeClock()
    base = Cache("memory", clock=clock)
    ns = Cache(base.backend, namespace="a")
    ns.set("x", 1, ttl=5)
    ns.set("y", 1)
    base.set("z", 1)
    assert ns.stats().items == 2
    assert base.stats().items == 3
    clock.advance(6)
    assert ns.get("x") is None
    assert ns.stats().expirations == 1


# ---------------------------------------------------------------------------- misc


def test_repr_and_context_manager() -> None:
    with Cache("memory", namespace="r") as cache:
        assert "namespace='r'" in repr(cache)
        assert "memory" in repr(cache.backend)
    assert cache.closed
    with pytest.raises(sc.CacheClosed):
        cache.stats()


def test_touch_and_expire_validate() -> None:
    cache = Cache("memory", default_ttl=None)
    cache.set("k", 1)
    assert cache.touch("k") is True
    assert cache.ttl("k") is None
    with pytest.raises(InvalidArgument, match="pattern"):
        cache.delete_pattern(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="start"):
        cache.lrange("l", 0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="hashable"):
        cache.sadd("s", [1, 2])
    with pytest.raises(InvalidArgument, match="without a field"):
        cache.hset("h", value=1)
    with pytest.raises(InvalidArgument, match="Mapping"):
        cache.hset("h", mapping=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="at least one field"):
        cache.hdel("h")


def test_serializing_memory_cache_isolates_values() -> None:
    cache = Cache("memory", serializer="msgpack")
    value = {"list": [1, 2]}
    cache.set("k", value)
    value["list"].append(3)
    assert cache.get("k") == {"list": [1, 2]}
    plain = Cache("memory")
    plain.set("k", value)
    value["list"].append(4)
    assert plain.get("k") == {"list": [1, 2, 3, 4]}  # objects are stored as they are


def test_get_many_decodes_every_stored_form_and_names_a_corrupt_key() -> None:
    # get_many inlines the codec's plain-header fast path; the other forms (a counter's
    # decimal, a header whose payload does not parse) must still go through Codec.decode.
    cache = Cache("memory", serializer="msgpack")
    cache.set_many({"d": {"a": [1, 2]}, "t": (1, "x"), "n": 7})
    cache.incr("c", 3)
    assert cache.get_many(["d", "t", "n", "c", "missing"]) == {
        "d": {"a": [1, 2]},
        "t": (1, "x"),
        "n": 7,
        "c": 3,
    }
    header = cache.backend.get("d")[:4]
    cache.backend.set("bad", header + b"\xc1", None)  # 0xc1 is never valid msgpack
    with pytest.raises(sc.SerializationError, match="'bad'"):
        cache.get_many(["d", "bad"])
    with pytest.raises(sc.SerializationError, match="'bad'"):
        cache.get("bad")  # get inlines the same fast path
    assert cache.stats().errors == 2
    assert [cache.get(k) for k in ("d", "t", "n", "c")] == [{"a": [1, 2]}, (1, "x"), 7, 3]


def test_cli_demo_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stratacache", "demo"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "factory ran 1 time(s)" in out
    assert "InvalidTTL" in out
    assert "done." in out


def test_demo_and_fake_clock_need_no_pytest() -> None:
    # The README's first command installs only the package: nothing it runs may need pytest.
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from stratacache.testing import FakeClock\n"
        "from stratacache.cli import main\n"
        "FakeClock().advance(1)\n"
        "raise SystemExit(main(['demo']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "done." in result.stdout


def test_cli_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    cli = importlib.import_module("stratacache.cli")
    assert cli.main(["demo"]) == 0
    assert "get_or_set x3" in capsys.readouterr().out


def test_readme_quick_start_runs(tmp_path: Any) -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "quickstart.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "quick start ok" in result.stdout


@pytest.mark.parametrize("policy", ["lru", "tinylfu", "fifo", "lfu"])
@pytest.mark.parametrize("every", [4, 3])
def test_fused_set_times_one_write_in_sample_every(policy: str, every: int) -> None:
    # The inline write path (C, or the Python closure) times its own ticks; with a ttl the
    # facade's path does. Either way one write in `every` is sampled, and every one counted.
    cache = Cache("memory", policy=policy, latency_sample=every, max_entries=4)
    for i in range(12):
        cache.set(f"k{i}", i)
    stats = cache.stats()
    assert (stats.sets, stats.set_latency.count, stats.evictions) == (12, 12 // every, 8)
    assert 0 < stats.set_latency.p50 <= stats.set_latency.p99
    for i in range(12):
        cache.set(f"t{i}", i, ttl=60)
    assert (cache.stats().sets, cache.stats().set_latency.count) == (24, 24 // every)


@pytest.mark.parametrize("policy", ["lru", "tinylfu", "fifo"])
def test_fused_get_counts_samples_and_defers(policy: str) -> None:
    from stratacache.testing import FakeClock

    clock = FakeClock()
    cache = Cache("memory", policy=policy, latency_sample=4, clock=clock)
    assert "get" in vars(cache)  # the sync memory cache installed its one-frame get
    cache.set("plain", 1)
    cache.set("timed", 2, ttl=5)
    cache.rpush("list", 1)
    for _ in range(8):
        assert cache.get("plain") == 1
        assert cache.get("absent", "d") == "d"
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (8, 8)
    assert stats.get_latency.count == 4  # one call in four takes the timed full path
    assert cache.get("timed") == 2
    clock.advance(6)
    assert cache.get("timed") is None  # an entry with a ttl is checked by the full path
    with pytest.raises(sc.WrongType):
        cache.get("list")
    seen: list[HookEvent] = []
    cache.hooks.add("after_get", seen.append)
    cache.get("plain")
    assert len(seen) == 1  # hooks added later are honoured
    ns = Cache(cache.backend, namespace="n")
    ns.set("plain", "namespaced")
    assert ns.get("plain") == "namespaced"
    assert cache.get("plain") == 1
    cache.close()
    assert "get" not in vars(cache)
    with pytest.raises(sc.CacheClosed):
        cache.get("plain")


def test_cli_simulate(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cli = importlib.import_module("stratacache.cli")
    trace = tmp_path / "trace.txt"
    trace.write_text("\n".join(["a", "b", "a", "*", "c", "a", "b"]) + "\n")
    assert cli.main(["simulate", "--trace", str(trace), "--policy", "lru", "--size", "2"]) == 0
    out = capsys.readouterr().out
    assert "| lru | 2 | 6 | 2 |" in out
    assert cli.main(["simulate", "--trace", str(trace), "--policy", "nope", "--size", "2"]) == 2

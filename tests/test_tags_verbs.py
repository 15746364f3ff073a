"""Tags meet the verbs: compare-and-set, replace and compare-and-delete of tagged entries,
the read that drops an invalidated entry, and what hooks see (invalidate_tags, leases).

Both flavours, on memory (objects and msgpack), Redis, Memcached and the file store.
"""

from __future__ import annotations

from typing import Any

import pytest

import stratacache._async.cache as async_cache_module
import stratacache._sync.cache as sync_cache_module
from stratacache import AsyncCache, BackendUnavailable, Cache, HookEvent, StampedePolicy

BACKENDS = ["memory", "memory-msgpack", "redis", "memcached", "file"]


# ------------------------------------------------- compare-and-set (if_version=)


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_cas_does_not_resurrect_an_invalidated_entry_async(acache: AsyncCache) -> None:
    await acache.set("cart", ["apple"], ttl=60, tags=["user:42"])
    item = await acache.get_item("cart")
    assert item is not None
    await acache.invalidate_tags("user:42")
    # The entry is gone for every reader: a compare against it never matches.
    assert await acache.set("cart", [*item.value, "pear"], tags=["user:42"], if_version=item.version) is False
    assert await acache.set("cart", ["x"], if_version=item.version) is False
    assert await acache.get("cart") is None
    assert await acache.exists("cart") is False  # dropped by the compare


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_cas_does_not_resurrect_an_invalidated_entry_sync(cache: Cache) -> None:
    cache.set("cart", ["apple"], ttl=60, tags=["user:42"])
    item = cache.get_item("cart")
    assert item is not None
    cache.invalidate_tags("user:42")
    assert cache.set("cart", [*item.value, "pear"], tags=["user:42"], if_version=item.version) is False
    assert cache.get("cart") is None


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_cas_carries_the_compared_entrys_tag_versions_async(acache: AsyncCache) -> None:
    await acache.set("cart", ["apple"], ttl=60, tags=["user:42"])
    item = await acache.get_item("cart")
    assert item is not None
    tags = ["user:42", "shop"]
    assert await acache.set("cart", ["apple", "pear"], ttl=60, tags=tags, if_version=item.version)
    assert await acache.get("cart") == ["apple", "pear"]
    item = await acache.get_item("cart")
    assert item is not None
    assert set(item.tags) == {"user:42", "shop"}
    await acache.invalidate_tags("shop")  # a tag new with the compare-and-set counts too
    assert await acache.get("cart") is None
    # Carried, not re-read: versions taken from the compared entry. An invalidation that
    # lands after the check (simulated by handing the stale versions back) still wins.
    await acache.set("basket", [1], ttl=60, tags=["user:7"])
    item = await acache.get_item("basket")
    assert item is not None
    stale = await acache.tag_versions("user:7")
    await acache.invalidate_tags("user:7")
    assert await acache.set("basket", [1, 2], ttl=60, tags=stale, if_version=item.version) is False
    assert await acache.get("basket") is None


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_cas_carries_the_compared_entrys_tag_versions_sync(cache: Cache) -> None:
    cache.set("cart", ["apple"], ttl=60, tags=["user:42"])
    item = cache.get_item("cart")
    assert item is not None
    assert cache.set("cart", ["apple", "pear"], ttl=60, tags=["user:42"], if_version=item.version)
    assert cache.get("cart") == ["apple", "pear"]
    cache.invalidate_tags("user:42")
    assert cache.get("cart") is None
    # Untagged entries: the check is transparent, a stored None included.
    cache.set("n", 1)
    item = cache.get_item("n")
    assert item is not None
    assert cache.set("n", None, if_version=item.version) is True
    item = cache.get_item("n")
    assert item is not None
    assert item.value is None
    assert cache.set("n", 2, if_version=item.version) is True
    assert cache.get("n") == 2


async def test_cas_keeps_old_versions_across_a_racing_invalidation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new value carries the compared entry's versions, so an invalidation that lands
    right after the validity check (before any version is read again) still invalidates it."""
    async with AsyncCache("memory://") as c:
        await c.set("cart", ["apple"], tags=["user:42"])
        item = await c.get_item("cart")
        assert item is not None
        real = async_cache_module.valid_envelopes
        raced: list[int] = []

        async def invalidate_after_check(cache: Any, envelopes: Any) -> Any:
            valid = await real(cache, envelopes)
            if not raced:
                raced.append(1)
                await c.invalidate_tags("user:42")
            return valid

        monkeypatch.setattr(async_cache_module, "valid_envelopes", invalidate_after_check)
        assert await c.set("cart", ["apple", "pear"], tags=["user:42"], if_version=item.version) is True
        assert raced
        assert await c.get("cart") is None  # versions read after the check would show the pear


# ----------------------------------------------------------------------- replace


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_replace_refuses_an_invalidated_entry_async(acache: AsyncCache) -> None:
    await acache.set("s", "old", ttl=60, tags=["t"])
    assert await acache.replace("s", "new", ttl=60) is True  # a valid tagged entry: replaced
    assert await acache.get("s") == "new"
    await acache.set("s", "old", ttl=60, tags=["t"])
    await acache.invalidate_tags("t")
    assert await acache.replace("s", "new", ttl=60) is False
    assert await acache.get("s") is None
    assert await acache.exists("s") is False
    assert await acache.replace("absent", 1) is False


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_replace_refuses_an_invalidated_entry_sync(cache: Cache) -> None:
    cache.set("s", "old", ttl=60, tags=["t"])
    cache.invalidate_tags("t")
    assert cache.replace("s", "new", ttl=60) is False
    assert cache.get("s") is None
    cache.set("p", "plain")
    assert cache.replace("p", "new") is True
    assert cache.get("p") == "new"


# ---------------------------------------------------- delete(if_version=)


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_compare_and_delete_removes_an_invalidated_entry_async(acache: AsyncCache) -> None:
    await acache.set("d", 1, ttl=60, tags=["t"])
    item = await acache.get_item("d")
    assert item is not None
    await acache.invalidate_tags("t")
    # Documented: the version is the stored entry's; removing an invalidated one is harmless.
    assert await acache.delete("d", if_version=item.version) is True
    assert await acache.exists("d") is False


# ------------------------------------------- a read never drops a writer's fresh value


def _write_during_check(monkeypatch: pytest.MonkeyPatch, module: Any, write: Any) -> None:
    real = module.valid_envelopes

    if module is async_cache_module:

        async def racing(cache: Any, envelopes: Any) -> Any:
            valid = await real(cache, envelopes)
            await write()
            return valid
    else:

        def racing(cache: Any, envelopes: Any) -> Any:  # type: ignore[misc]
            valid = real(cache, envelopes)
            write()
            return valid

    monkeypatch.setattr(module, "valid_envelopes", racing)


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_reading_an_invalidated_entry_keeps_a_fresh_write_async(
    acache: AsyncCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    for read in ("get", "get_item"):
        await acache.set("k", "stale", ttl=60, tags=["t"])
        await acache.invalidate_tags("t")

        async def write() -> None:
            await acache.backend.set(acache._key("k"), acache._encode("fresh", "k"), 60)

        with monkeypatch.context() as patch:
            _write_during_check(patch, async_cache_module, write)
            assert await getattr(acache, read)("k") is None  # what was read: invalidated
        assert await acache.get("k") == "fresh", read


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_reading_an_invalidated_entry_keeps_a_fresh_write_sync(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.set("k", "stale", ttl=60, tags=["t"])
    cache.invalidate_tags("t")
    with monkeypatch.context() as patch:
        fresh = cache._encode("fresh", "k")
        _write_during_check(patch, sync_cache_module, lambda: cache.backend.set(cache._key("k"), fresh, 60))
        assert cache.get("k") is None
    assert cache.get("k") == "fresh"
    # Nobody racing: the invalidated entry is dropped by the read that finds it.
    cache.set("k", "stale", ttl=60, tags=["t"])
    cache.invalidate_tags("t")
    # (exists() answers as get would, so the stored entry is looked at in the backend.)
    assert cache.backend.exists(cache._key("k")) is True
    assert cache.get("k") is None
    assert cache.backend.exists(cache._key("k")) is False


# ----------------------------------------------------------------- observability


def _recorder(events: list[HookEvent]) -> dict[str, Any]:
    names = ["before_invalidate_tags", "after_invalidate_tags", "on_error", "after_add", "after_get_item"]
    return dict.fromkeys([*names, "after_delete", "after_set", "after_get"], events.append)


async def test_invalidate_tags_is_a_hooked_operation_async() -> None:
    events: list[HookEvent] = []
    async with AsyncCache("memory://", hooks=_recorder(events)) as c:
        await c.invalidate_tags("a", "b", "a")
        assert [(e.operation, e.key) for e in events] == [("invalidate_tags", ["a", "b"])] * 2
        assert events[1].duration is not None
        events.clear()

        async def down(*args: Any) -> None:
            raise BackendUnavailable("memory: injected failure")

        c.backend.set_many = down  # type: ignore[method-assign]
        with pytest.raises(BackendUnavailable):
            await c.invalidate_tags("a")
        assert [(e.operation, e.key, e.error and type(e.error)) for e in events] == [
            ("invalidate_tags", ["a"], None),
            ("invalidate_tags", ["a"], BackendUnavailable),
        ]
        assert (await c.stats()).errors == 1


def test_invalidate_tags_is_a_hooked_operation_sync() -> None:
    events: list[HookEvent] = []
    with Cache("memory://", hooks={"after_invalidate_tags": events.append}) as c:
        c.invalidate_tags("x")
        assert [(e.operation, e.key) for e in events] == [("invalidate_tags", ["x"])]


@pytest.mark.parametrize("backend_name", ["memory", "redis"])
async def test_stampede_leases_do_not_fire_user_hooks_async(acache: AsyncCache) -> None:
    events: list[HookEvent] = []
    for name, hook in _recorder(events).items():
        acache.hooks.add(name, hook)
    policy = StampedePolicy(lease_ttl=5)
    assert await acache.get_or_set("report", lambda: 7, ttl=60, policy=policy) == 7
    assert await acache.get_or_set("report", lambda: 8, ttl=60, policy=policy) == 7
    keys = [str(e.key) for e in events]
    assert keys
    assert not [k for k in keys if "stratacache-lease:" in k], keys
    assert await acache.exists("stratacache-lease:report") is False  # released


def test_stampede_leases_do_not_fire_user_hooks_sync() -> None:
    events: list[HookEvent] = []
    with Cache("memory://", hooks=_recorder(events)) as c:
        assert c.get_or_set("report", lambda: 7, ttl=60, policy=StampedePolicy(lease_ttl=5)) == 7
        assert not [e for e in events if "stratacache-lease:" in str(e.key)]
        assert c.exists("stratacache-lease:report") is False


async def test_a_failing_entry_check_is_reported_as_the_verb_async() -> None:
    events: list[HookEvent] = []
    async with AsyncCache("memory://", hooks={"on_error": events.append}) as c:
        await c.set("k", 1, tags=["t"])
        item = await c.get_item("k")
        assert item is not None

        async def down(*args: Any) -> None:
            raise BackendUnavailable("memory: injected failure")

        c.backend.get_item = down  # type: ignore[method-assign]
        with pytest.raises(BackendUnavailable):
            await c.set("k", 2, if_version=item.version)
        with pytest.raises(BackendUnavailable):
            await c.replace("k", 2)
        assert [(e.operation, e.key) for e in events] == [("set", "k"), ("replace", "k")]
        assert (await c.stats()).errors == 2

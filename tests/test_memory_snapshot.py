"""Warm restarts of the memory backend (``snapshot=``): sync and async, objects and
serialized values, TTLs, the periodic saver, and the failures that name their cause."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stratacache as sc
from stratacache.core.snapshot import HASH, LIST, STRING, ZSET, Record, SnapshotReader, dumps
from stratacache.serializers import Codec

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=12), st.sampled_from([None, "msgpack"])
)
def test_warm_restart_keeps_values(tmp_path: Path, data: dict[str, object], serializer: str | None) -> None:
    path = tmp_path / "cache.scs"
    path.unlink(missing_ok=True)
    options = {} if serializer is None else {"serializer": serializer}
    with sc.Cache(f"memory://?snapshot={path}", **options) as cache:
        cache.set_many(data)
    with sc.Cache(f"memory://?snapshot={path}", **options) as cache:
        assert cache.get_many(list(data)) == data


def test_ttls_and_expiry_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.scs"
    with sc.Cache(snapshot=path, serializer="msgpack") as cache:
        cache.set("long", "v", ttl=1000)
        cache.set("forever", [1, 2])
        cache.set("short", "x", ttl=0.2)
        cache.incr("n", 5)
    time.sleep(0.3)
    with sc.Cache(snapshot=path, serializer="msgpack") as cache:
        assert cache.get("short") is None
        assert cache.get("forever") == [1, 2]
        assert 990 < cache.ttl("long") <= 1000
        assert cache.ttl("forever") is None
        assert cache.incr("n") == 6


def test_collections_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.scs"
    with sc.Cache(snapshot=path) as cache:
        cache.rpush("l", "a", 2, b"c")
        cache.sadd("s", "x", 3)
        cache.hset("h", mapping={"f": {"nested": True}, "g": 1})
        cache.expire("h", 500)
    with sc.Cache(snapshot=path) as cache:
        assert cache.lrange("l", 0, -1) == ["a", 2, b"c"]
        assert cache.smembers("s") == {"x", 3}
        assert cache.hgetall("h") == {"f": {"nested": True}, "g": 1}
        assert 490 < cache.ttl("h") <= 500


def test_async_flavour(tmp_path: Path) -> None:
    path = tmp_path / "a.scs"

    async def run() -> None:
        async with sc.AsyncCache(snapshot=str(path), snapshot_interval=60) as cache:
            await cache.set("k", {"a": 1}, ttl=100)
        async with sc.AsyncCache(f"memory://?snapshot={path}") as cache:
            assert await cache.get("k") == {"a": 1}

    asyncio.run(run())


def test_periodic_saves(tmp_path: Path) -> None:
    path = tmp_path / "p.scs"
    cache = sc.Cache(snapshot=path, snapshot_interval=0.1)
    try:
        cache.set("k", "v")
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with path.open("rb") as f:
            assert [r.key for r in SnapshotReader(f)] == [b"k"]
        # No temporary file is left next to it.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p.scs"]
    finally:
        cache.close()


def test_missing_file_is_an_empty_start(tmp_path: Path) -> None:
    with sc.Cache(snapshot=tmp_path / "none.scs") as cache:
        assert cache.get("k") is None
    assert (tmp_path / "none.scs").exists()  # saved at close


def test_corrupt_file_names_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.scs"
    data = bytearray(dumps([Record(0, b"k", STRING, b"\x01x", None)]))
    data[20] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(sc.SnapshotError, match=rf"{path} at offset 16: checksum mismatch"):
        sc.Cache(snapshot=path)
    path.write_bytes(bytes(data[:10]))
    with pytest.raises(sc.SnapshotError, match=rf"{path} at offset 10: truncated"):
        sc.Cache(snapshot=path)


def test_server_values_load_as_bytes_with_the_raw_serializer(tmp_path: Path) -> None:
    path = tmp_path / "server.scs"
    deadline = int((time.time() + 100) * 1000)
    records = [
        Record(0, b"plain", STRING, b"hello", deadline),
        Record(0, b"list", LIST, [b"a", b"b"], None),
        Record(0, b"hash", HASH, [(b"f", b"v")], None),
        Record(1, b"other-db", STRING, b"ignored", None),
    ]
    path.write_bytes(dumps(records))
    with sc.Cache(snapshot=path, serializer="raw") as cache:
        assert cache.get("plain") == b"hello"
        assert 90 < cache.ttl("plain") <= 100
        assert cache.lrange("list", 0, -1) == [b"a", b"b"]
        assert cache.hgetall("hash") == {"f": b"v"}
        assert cache.get("other-db") is None
    path.write_bytes(dumps([Record(0, b"z", ZSET, [(b"m", 1.0)], None)]))
    with pytest.raises(sc.SnapshotError, match="holds a zset"):
        sc.Cache(snapshot=path)


def test_bad_parameters_name_themselves(tmp_path: Path) -> None:
    for bad in (0, -1, "soon", float("inf")):
        with pytest.raises(sc.ConfigurationError, match="snapshot_interval"):
            sc.Cache(snapshot=tmp_path / "x.scs", snapshot_interval=bad)
    with pytest.raises(sc.ConfigurationError, match="snapshot_interval"):
        sc.Cache(f"memory://?snapshot={tmp_path}/x.scs&snapshot_interval=-3")
    with pytest.raises(sc.ConfigurationError, match="needs a snapshot file"):
        sc.Cache(snapshot_interval=5)
    with pytest.raises(sc.ConfigurationError, match=r"snapshot: the directory of .*/nowhere/x.scs"):
        sc.Cache(snapshot=tmp_path / "nowhere" / "x.scs")


def test_failed_save_at_close_names_the_path(tmp_path: Path) -> None:
    workdir = tmp_path / "gone"
    workdir.mkdir()
    path = workdir / "x.scs"
    cache = sc.Cache(snapshot=path)
    cache.set("k", "v")
    workdir.rmdir()  # the directory disappears under the cache
    with pytest.raises(sc.SnapshotError, match=rf"{path}: cannot write the snapshot"):
        cache.close()
    assert cache.closed


def test_unencodable_object_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "o.scs"
    path.write_bytes(dumps([Record(0, b"keep", STRING, Codec("msgpack").encode("x"), None)]))
    cache = sc.Cache(snapshot=path)
    cache.set("odd", object())
    with pytest.raises(sc.SerializationError, match="odd"):
        cache.close()
    # The previous file is untouched.
    with path.open("rb") as f:
        assert [r.key for r in SnapshotReader(f)] == [b"keep"]

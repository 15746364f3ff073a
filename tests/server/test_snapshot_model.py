"""The server's save and load are inverse: any keyspace (every type, TTLs, several
databases, binary keys) written by SAVE's writer and read by the loader comes back equal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratacache.server import Server, ServerConfig
from stratacache.server import snapshot as snap
from stratacache.server.commands.hashes import HashValue
from stratacache.server.commands.lists import ListValue
from stratacache.server.commands.sets import SetValue
from stratacache.server.zset import ZSet

members = st.binary(max_size=12)


@st.composite
def values(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["string", "list", "set", "hash", "zset"]))
    if kind == "string":
        return draw(st.binary(max_size=100))
    if kind == "list":
        value = ListValue()
        for item in draw(st.lists(members, min_size=1, max_size=8)):
            value.push(item, False)
        return value
    if kind == "set":
        value = SetValue()
        for item in draw(st.lists(st.one_of(members, st.integers(-99, 99).map(b"%d".__mod__)), min_size=1)):
            value.add(item)
        return value
    if kind == "hash":
        value = HashValue()
        for name, item in draw(st.dictionaries(members, members, min_size=1, max_size=8)).items():
            value.put(name, item)
        return value
    scores = draw(st.dictionaries(members, st.floats(allow_nan=False), min_size=1, max_size=8))
    return ZSet.from_scores(scores)


def contents(server: Server) -> dict[tuple[int, str], Any]:
    """Every key as comparable data: type, contents in order, deadline to the millisecond."""
    result: dict[tuple[int, str], Any] = {}
    for db in server.databases:
        for key in sorted(db.keys()):
            value = db.get(key)
            if type(value) is bytes:
                data: Any = value
            elif isinstance(value, ListValue):
                data = list(value.items)
            elif isinstance(value, SetValue):
                data = sorted(value.members)
            elif isinstance(value, HashValue):
                data = sorted(value.fields.items())
            else:
                data = list(value)
            result[(db.index, key)] = (type(value).__name__, data)
    return result


def deadlines(server: Server) -> dict[tuple[int, str], float | None]:
    return {(db.index, key): db.deadline(key) for db in server.databases for key in sorted(db.keys())}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.tuples(st.integers(0, 3), st.binary(max_size=10).map(lambda b: b.decode("latin-1"))),
        st.tuples(values(), st.one_of(st.none(), st.floats(100, 10**6))),
        max_size=20,
    )
)
def test_save_then_load_is_the_identity(tmp_path: Path, keyspace: dict[tuple[int, str], Any]) -> None:
    config = ServerConfig(port=0, save="", dir=str(tmp_path), databases=4)
    before = Server(config)
    for (index, key), (value, ttl) in keyspace.items():
        before.databases[index].set(key, value, ttl)
    path = str(tmp_path / "dump.scs")
    snap.write_file(before, path, str(tmp_path / "temp.scs"))
    after = Server(config)
    loaded = snap.load_file(after, path)
    assert loaded == len(keyspace)
    assert contents(after) == contents(before)
    # Deadlines are kept to the millisecond (the file holds Unix milliseconds).
    old, new = deadlines(before), deadlines(after)
    assert old.keys() == new.keys()
    for key, deadline in old.items():
        assert (deadline is None) == (new[key] is None)
        if deadline is not None:
            assert abs(deadline - new[key]) <= 0.0005, key  # type: ignore[operator]
    before.engine.close()
    after.engine.close()


def test_expired_keys_are_dropped_and_counted(tmp_path: Path) -> None:
    config = ServerConfig(port=0, save="", dir=str(tmp_path))
    before = Server(config)
    before.databases[0].set("short", b"x", 0.05)
    before.databases[0].set("long", b"y", 100)
    path = str(tmp_path / "dump.scs")
    snap.write_file(before, path, str(tmp_path / "temp.scs"))
    time.sleep(0.1)
    after = Server(config)
    assert snap.load_file(after, path) == 1
    assert snap.state(after).expired_on_load == 1
    assert after.databases[0].keys() == ["long"]
    before.engine.close()
    after.engine.close()

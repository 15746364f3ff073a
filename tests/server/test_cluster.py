"""Cluster mode: the layout's checks, the CLUSTER commands, MOVED and CROSSSLOT compared with a
real Redis Cluster of the same layout, and redis-py's cluster clients over three nodes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import yaml
from clusternodes import HOST, RANGES, layout, node_configs, start_threads, stop_threads
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot
from respclient import Err, Pair, RespConn

from stratacache._exceptions import ConfigurationError
from stratacache.server import ServerThread
from stratacache.server.cluster import keyslot, node_id_for
from stratacache.server.config import config_from_mapping


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[ServerThread]]:
    """Three cluster nodes (threads) with the standard 3-way layout, shared by the module."""
    threads = start_threads(node_configs())
    yield threads
    stop_threads(threads)


@pytest.fixture
def cluster(nodes: list[ServerThread]) -> list[ServerThread]:
    """The module's nodes, flushed."""
    for running in nodes:
        assert running.server is not None
        running.call(running.server.databases[0].flush)
    return nodes


def key_on(node: int, prefix: str = "k") -> str:
    """A key whose slot belongs to node ``node`` of the standard layout."""
    first, last = (int(part) for part in RANGES[node].split("-"))
    for i in range(100_000):
        key = f"{prefix}{i}"
        if first <= keyslot(key.encode()) <= last:
            return key
    raise AssertionError("no key found")


# ------------------------------------------------------------------------------ keyslot

TRICKY = [
    b"",
    b"foo",
    b"{user1000}.following",
    b"foo{}{bar}",
    b"foo{{bar}}zap",
    b"foo{bar}{zap}",
    b"{}",
    b"}{",
    b"{a",
    b"a}{b}",
    b"\xff\x00{\xfe}",
]


def test_keyslot_is_redis_py_s_and_hash_tags_are_redis_s() -> None:
    # Redis's documented examples (cluster spec, "hash tags").
    assert keyslot(b"foo{}{bar}") == keyslot(b"foo{}{bar}") != keyslot(b"bar")
    assert keyslot(b"foo{{bar}}zap") == keyslot(b"{bar")
    assert keyslot(b"foo{bar}{zap}") == keyslot(b"bar")
    assert keyslot(b"{user1000}.following") == keyslot(b"{user1000}.followers")
    for key in TRICKY:
        assert keyslot(key) == key_slot(key)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(
        st.binary(max_size=12) | st.text("{}ab", max_size=8).map(str.encode), min_size=1, max_size=20
    )
)
def test_keyslot_matches_a_real_cluster(redis_cluster: Any, keys: list[bytes]) -> None:
    real = redis_cluster.nodes[0]
    conn = RespConn(real.port)
    try:
        for key in keys:
            assert conn.call("CLUSTER", "KEYSLOT", key) == keyslot(key), key
    finally:
        conn.close()


def test_cluster_keyslot_command(cluster: list[ServerThread]) -> None:
    conn = RespConn(cluster[1].port)
    for key in TRICKY:
        assert conn.call("CLUSTER", "KEYSLOT", key) == key_slot(key)
    conn.close()


# ------------------------------------------------------------------------------ layouts


def _config(cluster: Any, port: int = 7001, **options: Any) -> Any:
    return config_from_mapping(
        {"port": port, "cluster-enabled": "yes", "cluster": cluster, **options}, "c.yaml"
    )


def _nodes(*specs: tuple[int, Any]) -> dict[str, Any]:
    return {"nodes": [{"host": HOST, "port": port, "slots": slots} for port, slots in specs]}


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        (_nodes((7001, "0-5000"), (7002, "5002-16383")), "slots 5001 are assigned to no node"),
        (
            _nodes((7001, "0-5000"), (7002, "6000-16000")),
            "slots 5001-5999, 16001-16383 are assigned to no node",
        ),
        (
            _nodes((7001, "0-5000"), (7002, "5000-16383")),
            "cluster.nodes[1].slots: slot 5000 is also assigned to cluster.nodes[0]",
        ),
        (_nodes((7001, "0-16383"), (7001, "0")), "127.0.0.1:7001 is also the address of cluster.nodes[0]"),
        (_nodes((7001, "0-16384")), "'0-16384' is not a range of slots within 0-16383"),
        (_nodes((7001, "10-0")), "'10-0' is not a range of slots"),
        (_nodes((7001, "a-b")), "'a-b' is not a slot or a range"),
        (_nodes((7001, [])), "no slots given"),
        ({"nodes": [{"host": HOST, "port": 7001}]}, "cluster.nodes[0].slots: missing"),
        (
            {"nodes": [{"host": HOST, "port": "x", "slots": "0-16383"}]},
            "cluster.nodes[0].port: expected a port",
        ),
        (
            {"nodes": [{"port": 7001, "slots": "0-16383", "id": "XYZ"}]},
            "cluster.nodes[0].id: 'XYZ' is not 40",
        ),
        (
            {
                "nodes": [
                    {"port": 7001, "slots": "0-100", "id": "a" * 40},
                    {"port": 7002, "slots": "101-16383", "id": "a" * 40},
                ]
            },
            f"cluster.nodes[1].id: {'a' * 40} is also the id of cluster.nodes[0]",
        ),
        ({"nodes": [{"port": 7001, "slots": "0-16383", "weight": 1}]}, "unknown key(s) ['weight']"),
        ({"nodes": []}, "cluster.nodes: expected a non-empty list"),
        ({"nodes": _nodes((7001, "0-16383"))["nodes"], "myself": "b" * 40}, "cluster.myself: 'bbbb"),
        ("0-16383", "cluster: expected a mapping"),
    ],
)
def test_bad_layouts_are_refused_naming_the_fault(cluster: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _config(cluster)
    assert message in str(info.value)
    assert str(info.value).startswith("c.yaml: cluster")


def test_myself_by_port_or_by_id_and_databases() -> None:
    from stratacache.server import Server

    layout_ = _nodes((7001, "0-8000"), (7002, "8001-16383"))
    config = _config(layout_, port=7002)
    assert config.databases == 1  # cluster mode: database 0 only
    server = Server(config)
    assert server.cluster is not None
    assert server.cluster.myself.port == 7002
    assert server.cluster.myself.id == node_id_for(HOST, 7002)
    # An explicit myself wins over the port (a node behind an address of its own).
    config = _config({**layout_, "myself": node_id_for(HOST, 7001)}, port=9999)
    state = Server(config).cluster
    assert state is not None
    assert state.myself.port == 7001
    with pytest.raises(
        ConfigurationError, match=r"no node of cluster\.nodes has port 9999; set cluster\.myself"
    ):
        Server(_config(layout_, port=9999))
    with pytest.raises(ConfigurationError, match="cluster mode has one database"):
        Server(_config(layout_, port=7001, databases=4))
    with pytest.raises(ConfigurationError, match="cluster-enabled yes needs a 'cluster' mapping"):
        Server(config_from_mapping({"cluster-enabled": "yes"}, "c.yaml"))
    with pytest.raises(ConfigurationError, match="cluster: given but cluster-enabled is no"):
        Server(config_from_mapping({"cluster": layout_}, "c.yaml"))


# ------------------------------------------------------------------ cluster mode off


@pytest.mark.parametrize(
    "args",
    [
        ("CLUSTER", "INFO"),
        ("CLUSTER", "SLOTS"),
        ("CLUSTER", "NODES"),
        ("CLUSTER", "SHARDS"),
        ("CLUSTER", "KEYSLOT", "x"),
        ("CLUSTER", "MYID"),
        ("CLUSTER", "COUNTKEYSINSLOT", "1"),
        ("CLUSTER", "GETKEYSINSLOT", "1", "1"),
        ("CLUSTER", "HELP"),
        ("CLUSTER", "ADDSLOTS", "1"),
        ("CLUSTER",),
        ("CLUSTER", "KEYSLOT"),
        ("CLUSTER", "INFO", "x"),
        ("CLUSTER", "NOSUCH"),
        ("READONLY",),
        ("READWRITE",),
        ("ASKING",),
        ("READONLY", "x"),
        ("SELECT", "1"),
    ],
)
def test_cluster_commands_with_cluster_mode_off_are_redis_s(pair: Pair, args: tuple[str, ...]) -> None:
    pair.check(*args)


def test_info_and_config_report_cluster_mode(cluster: list[ServerThread], rclient: redis.Redis) -> None:
    assert rclient.info("cluster") == {"cluster_enabled": 0}
    r = redis.Redis(host=HOST, port=cluster[0].port)
    assert r.info("cluster") == {"cluster_enabled": 1}
    assert r.config_get("cluster-enabled") == {"cluster-enabled": "yes"}
    assert r.info("server")["redis_mode"] == "cluster"
    conn = RespConn(cluster[0].port)
    assert conn.call("HELLO", "3")[b"mode"] == b"cluster"
    conn.close()
    assert rclient.info("server")["redis_mode"] == "standalone"
    r.close()


# ------------------------------------------------------- compared with a real cluster


@pytest.fixture
def mirrored(redis_cluster: Any, cluster: list[ServerThread]) -> Iterator[tuple[list[Pair], dict[str, str]]]:
    """(a Pair per node: ours and the real cluster's node with the same slots, the text
    replacements that turn the real nodes' addresses into ours)."""
    redis_cluster.flush()
    real_nodes = redis_cluster.nodes
    # redis-cli --cluster create spreads the slots as our standard layout does.
    probe = RespConn(real_nodes[0].port)
    real_ranges = {entry[2][1]: f"{entry[0]}-{entry[1]}" for entry in probe.call("CLUSTER", "SLOTS")}
    probe.close()
    ordered = sorted(real_nodes, key=lambda node: RANGES.index(real_ranges[node.port]))
    pairs = [
        Pair(RespConn(ours.port), RespConn(real.port)) for ours, real in zip(cluster, ordered, strict=True)
    ]
    addresses = {
        f"{HOST}:{real.port}": f"{HOST}:{ours.port}" for ours, real in zip(cluster, ordered, strict=True)
    }
    yield pairs, addresses
    for p in pairs:
        p.ours.close()
        p.real.close()


def _check(pair: Pair, addresses: dict[str, str], *args: Any) -> Any:
    mine, theirs = pair.call(*args)
    if isinstance(theirs, Err):
        text = theirs.message
        for real, ours in addresses.items():
            text = text.replace(real, ours)
        theirs = Err(text)
    assert mine == theirs, f"{args!r}: ours {mine!r} != redis {theirs!r}"
    return mine


def test_moved_and_crossslot_texts_are_redis_s(mirrored: tuple[list[Pair], dict[str, str]]) -> None:
    pairs, addresses = mirrored
    mine, other = key_on(0), key_on(2)
    tagged = [f"{{{mine}}}.a", f"{{{mine}}}.b"]
    eval_script = "return #KEYS"
    commands: list[tuple[Any, ...]] = [
        ("SET", mine, "v"),
        ("SET", other, "v"),
        ("GET", other),
        ("GET",),  # arity comes before the slot check
        ("NOSUCH", other),  # so does an unknown command
        ("MSET", mine, "1", other, "2"),  # CROSSSLOT before MOVED
        ("MSET", other, "1", f"{{{other}}}x", "2"),
        ("MSET", tagged[0], "1", tagged[1], "2"),
        ("MGET", *tagged),
        ("MGET", other, other),
        ("DEL", mine, other),
        ("EXISTS", other),
        ("RENAME", tagged[0], tagged[1]),
        ("RENAME", mine, other),
        ("EVAL", eval_script, "2", mine, other),
        ("EVAL", eval_script, "1", other),
        ("EVAL", eval_script, "2", *tagged),
        ("EVAL", eval_script, "x", mine, other),
        ("EVAL", eval_script, "5", mine, other),
        ("EVAL", eval_script, "0"),
        ("ZUNIONSTORE", tagged[0], "2", tagged[1], other),
        ("ZUNIONSTORE", tagged[0], "1", tagged[1]),
        ("ZINTERCARD", "2", mine, other),
        ("LMPOP", "2", other, f"{{{other}}}z", "LEFT"),
        ("LMPOP", "2", mine, other, "LEFT"),
        ("SINTERCARD", "1", other),
        ("BLMPOP", "0.01", "2", mine, other, "LEFT"),
        ("BLPOP", mine, other, "0.01"),
        ("SMOVE", mine, other, "m"),
        ("OBJECT", "ENCODING", other),
        ("MEMORY", "USAGE", other),
        ("SELECT", "1"),
        ("SELECT", "0"),
        ("CLUSTER", "KEYSLOT", other),
        ("CLUSTER", "COUNTKEYSINSLOT", "x"),
        ("CLUSTER", "COUNTKEYSINSLOT", "16384"),
        ("CLUSTER", "COUNTKEYSINSLOT", "-1"),
        ("CLUSTER", "GETKEYSINSLOT", "1", "-1"),
        ("CLUSTER", "GETKEYSINSLOT", "1", "x"),
        ("CLUSTER", "GETKEYSINSLOT", "16384", "1"),
        ("CLUSTER", "KEYSLOT"),
        ("CLUSTER", "NOSUCH"),
        ("READONLY",),
        ("READWRITE",),
        ("ASKING",),
        ("PING",),
        ("DBSIZE",),
    ]
    for args in commands:
        _check(pairs[0], addresses, *args)
    # The owner of the other key serves it, and counts it in its slot.
    _check(pairs[2], addresses, "SET", other, "v")
    _check(pairs[2], addresses, "CLUSTER", "COUNTKEYSINSLOT", keyslot(other.encode()))
    _check(pairs[2], addresses, "CLUSTER", "GETKEYSINSLOT", keyslot(other.encode()), "10")


def test_transactions_are_redirected_at_queue_time(mirrored: tuple[list[Pair], dict[str, str]]) -> None:
    pairs, addresses = mirrored
    pair = pairs[0]
    mine, other, mine2 = key_on(0), key_on(2), key_on(0, "q")
    assert keyslot(mine.encode()) != keyslot(mine2.encode())
    # A foreign key: MOVED at queue time, and EXEC aborts.
    for args in (("MULTI",), ("SET", mine, "1"), ("SET", other, "1"), ("EXEC",), ("GET", mine)):
        _check(pair, addresses, *args)
    # Two keys of this node in different slots: each queues, EXEC answers CROSSSLOT and
    # discards the transaction (a second EXEC has no MULTI).
    for args in (("MULTI",), ("SET", mine, "1"), ("SET", mine2, "2"), ("EXEC",), ("EXEC",), ("GET", mine)):
        _check(pair, addresses, *args)
    # One slot: runs.
    tag = f"{{{mine}}}"
    for args in (("MULTI",), ("SET", tag + "a", "1"), ("INCR", tag + "b"), ("EXEC",)):
        _check(pair, addresses, *args)
    # WATCH checks its keys too.
    _check(pair, addresses, "WATCH", other)
    _check(pair, addresses, "WATCH", mine, mine2)


def test_layout_replies_have_redis_s_shape(
    mirrored: tuple[list[Pair], dict[str, str]], cluster: list[ServerThread]
) -> None:
    pairs, addresses = mirrored
    ours_by_real = {
        int(real.rsplit(":", 1)[1]): int(ours.rsplit(":", 1)[1]) for real, ours in addresses.items()
    }
    ids = {node.port: node_id_for(HOST, node.port) for node in cluster}

    def normalise_slots(reply: list[Any], real: bool) -> list[Any]:
        result = []
        for first, last, (host, port, _id, meta) in reply:
            result.append([first, last, [host, ours_by_real[port] if real else port, meta]])
        return result

    mine, theirs = pairs[0].call("CLUSTER", "SLOTS")
    assert normalise_slots(mine, False) == normalise_slots(theirs, True)
    assert [entry[2][2] for entry in mine] == [ids[node.port].encode() for node in cluster]
    mine, theirs = pairs[0].call("CLUSTER", "SHARDS")
    assert len(mine) == len(theirs) == 3
    assert mine[0][1] == [0, 5460]
    for shard in mine + theirs:
        assert shard[0::2] == [b"slots", b"nodes"]
        (node,) = shard[3]
        assert node[0::2] == [b"id", b"port", b"ip", b"endpoint", b"role", b"replication-offset", b"health"]
    mine_text, theirs_text = pairs[0].call("CLUSTER", "NODES")
    for text in (mine_text, theirs_text):
        lines = text.decode().splitlines()
        assert len(lines) == 3
        fields = [line.split() for line in lines]
        assert sorted(f[2] for f in fields) == ["master", "master", "myself,master"]
        assert all(f[3] == "-" and f[7] == "connected" and len(f[0]) == 40 for f in fields)
        assert sorted(f[8] for f in fields) == sorted(RANGES)
    info_mine, info_theirs = (
        dict(line.split(":", 1) for line in reply.decode().splitlines())
        for reply in pairs[0].call("CLUSTER", "INFO")
    )
    for name in (
        "cluster_state",
        "cluster_slots_assigned",
        "cluster_slots_ok",
        "cluster_known_nodes",
        "cluster_size",
    ):
        assert info_mine[name] == info_theirs[name], name
    assert set(info_mine) <= set(info_theirs)
    assert pairs[0].ours.call("CLUSTER", "MYID") == ids[cluster[0].port].encode()
    assert len(pairs[0].ours.call("CLUSTER", "MYSHARDID")) == 40
    # RESP3: SLOTS' metadata is a map there, SHARDS are maps.
    for p in (pairs[0].ours, pairs[0].real):
        p.call("HELLO", "3")
    mine, theirs = pairs[0].call("CLUSTER", "SLOTS")
    assert normalise_slots(mine, False) == normalise_slots(theirs, True)
    mine, theirs = pairs[0].call("CLUSTER", "SHARDS")
    assert [sorted(shard) for shard in mine] == [sorted(shard) for shard in theirs]


# ------------------------------------------------------------------ the fast path


def test_pipelined_plain_commands_are_checked_too(cluster: list[ServerThread], rclient: redis.Redis) -> None:
    """The connection's fast path runs data commands of plain clients without execute()'s
    checks: in cluster mode it must not run a foreign key's command."""
    for _ in range(2):
        rclient.execute_command("SET", "warm", "1")  # the fast path (of every server) knows SET
    other = key_on(1)
    conn = RespConn(cluster[0].port)
    conn.send_raw(
        b"".join(
            b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$1\r\nv\r\n" % (len(other), other.encode()) for _ in range(20)
        )
    )
    replies = [conn.read() for _ in range(20)]
    assert replies == [Err(f"MOVED {keyslot(other.encode())} {HOST}:{cluster[1].port}")] * 20
    assert cluster[0].server is not None
    assert cluster[0].server.databases[0].keys() == []
    # This node's own keys run (on the fast path), and are counted as Redis counts them.
    r = redis.Redis(host=HOST, port=cluster[0].port)
    before = r.info("commandstats").get("cmdstat_set", {"calls": 0})["calls"]
    mine = key_on(0).encode()
    conn.send_raw(
        b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$1\r\n%d\r\n" % (len(mine), mine, i) for i in range(10))
    )
    assert [conn.read() for _ in range(10)] == ["OK"] * 10
    assert conn.call("GET", mine) == b"9"
    conn.close()
    assert r.info("commandstats")["cmdstat_set"]["calls"] == before + 10
    r.close()


# --------------------------------------------------------------- redis-py's clients


def test_redis_py_cluster_client_across_three_nodes(cluster: list[ServerThread]) -> None:
    rc = redis.RedisCluster(host=HOST, port=cluster[1].port)
    try:
        assert {node.port for node in rc.get_primaries()} == {node.port for node in cluster}
        for i in range(300):
            rc.set(f"key:{i}", i)
        assert [rc.get(f"key:{i}") for i in range(300)] == [str(i).encode() for i in range(300)]
        conns = [RespConn(node.port) for node in cluster]
        sizes = [conn.call("DBSIZE") for conn in conns]  # node-local
        for conn in conns:
            conn.close()
        assert sum(sizes) == 300
        assert all(80 < size < 120 for size in sizes)
        # Hash tags keep multi-key commands on one node.
        rc.mset({"{user:1}:name": "ann", "{user:1}:age": "7"})
        assert rc.mget("{user:1}:name", "{user:1}:age") == [b"ann", b"7"]
        assert rc.mget_nonatomic([f"key:{i}" for i in range(0, 300, 37)]) == [
            str(i).encode() for i in range(0, 300, 37)
        ]
        # Pipelines are split by node.
        pipe = rc.pipeline()
        for i in range(100):
            pipe.incrby(f"counter:{i}", i)
        assert pipe.execute() == list(range(100))
        assert rc.delete(*[f"key:{i}" for i in range(300)]) == 300
        with pytest.raises(redis.exceptions.RedisClusterException):
            rc.execute_command("MSET", "a", "1", "b", "2")  # redis-py refuses cross-slot itself
    finally:
        rc.close()


def test_redis_py_asyncio_cluster_client(cluster: list[ServerThread]) -> None:
    async def main() -> None:
        rc = redis.asyncio.RedisCluster(host=HOST, port=cluster[2].port)
        try:
            await asyncio.gather(*(rc.set(f"a:{i}", i) for i in range(200)))
            values = await asyncio.gather(*(rc.get(f"a:{i}") for i in range(200)))
            assert values == [str(i).encode() for i in range(200)]
            async with rc.pipeline() as pipe:
                for i in range(50):
                    pipe.lpush(f"{{list}}:{i % 3}", i)
                replies = await pipe.execute()
            assert len(replies) == 50
            assert await rc.llen("{list}:0") == 17
            assert await rc.execute_command("CLUSTER", "KEYSLOT", "{list}:0") == key_slot(b"list")
        finally:
            await rc.aclose()

    asyncio.run(main())


def test_keys_scan_and_dbsize_are_node_local(cluster: list[ServerThread]) -> None:
    rc = redis.RedisCluster(host=HOST, port=cluster[0].port)
    try:
        for node in range(3):
            rc.set(key_on(node, "local"), node)
        for index, node in enumerate(cluster):
            r = redis.Redis(host=HOST, port=node.port)
            assert r.keys("*") == [key_on(index, "local").encode()]
            assert r.dbsize() == 1
            r.close()
    finally:
        rc.close()


def test_layout_helper_matches_the_standard_ranges() -> None:
    assert [node["slots"] for node in layout([1, 2, 3])["nodes"]] == list(RANGES)


def test_serve_refuses_a_node_missing_from_the_layout(tmp_path: Path) -> None:
    """``stratacache serve`` names the fault and exits 2 (the port comes last, from --port)."""
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(node_configs([7001, 7002, 7003])[0]))
    proc = subprocess.run(
        [sys.executable, "-m", "stratacache.cli", "serve", "--config", str(path), "--port", "7004"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"stratacache serve: {path}: cluster: no node of cluster.nodes has port 7004; "
        "set cluster.myself to this node's id"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("GET", "a"),
        ("MSET", "a", "1", "b", "2"),
        ("MGET", "a", "b", "c"),
        ("BLPOP", "a", "b", "0"),
        ("RENAME", "a", "b"),
        ("EVAL", "return 1", "2", "a", "b", "argv"),
        ("EVALSHA_RO", "x" * 40, "1", "a", "argv"),
        ("LMPOP", "2", "a", "b", "LEFT", "COUNT", "2"),
        ("BLMPOP", "0", "2", "a", "b", "RIGHT"),
        ("SINTERCARD", "2", "a", "b", "LIMIT", "1"),
        ("ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"),
        ("ZDIFFSTORE", "d", "1", "a"),
        ("ZINTER", "2", "a", "b", "WITHSCORES"),
        ("ZINTERCARD", "3", "a", "b", "c"),
        ("MEMORY", "USAGE", "a"),
        ("OBJECT", "ENCODING", "a"),
        ("SMOVE", "a", "b", "m"),
        ("LMOVE", "a", "b", "LEFT", "RIGHT"),
        ("WATCH", "a", "b"),
    ],
)
def test_keys_found_are_redis_s(real: Any, args: tuple[str, ...]) -> None:
    """The keys the slot check reads are those Redis's COMMAND GETKEYS names."""
    from stratacache.server.cluster import command_keys
    from stratacache.server.commands import load

    conn = RespConn(real.port)
    expected = conn.call("COMMAND", "GETKEYS", *args)
    conn.close()
    cmd = load()[args[0].lower().encode()]
    assert command_keys(cmd, [arg.encode() for arg in args]) == expected

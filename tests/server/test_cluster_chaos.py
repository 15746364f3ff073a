"""Chaos: three ``stratacache serve`` cluster nodes as processes, redis-py's cluster client
writing and reading under load; one node is killed with SIGKILL and restarted on its port.

While it is down, only the keys of its slots fail and every other key keeps succeeding
(failure detection is the client's: the other nodes keep serving their slots, nothing
moves); once it is back, the client writes its slots again. Writes acknowledged by the
other nodes are never lost. ``DURABILITY`` holds options added to every node's
configuration (see :func:`clusternodes.node_configs`): with an append-only log there
(``appendonly: yes, appendfsync: always``), no acknowledged write of the killed node may be
lost either.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import redis
from clusternodes import HOST, RANGES, NodeProcess, node_configs
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from servers import free_port
from stratacache.server.cluster import keyslot


def _node_dir(directory: Path, port: int) -> str:
    path = directory / f"data-{port}"
    path.mkdir(exist_ok=True)
    return str(path)


# Options for every node: each writes an append-only log, fsynced before each reply, in a
# directory of its own, so the killed node must lose nothing acknowledged either.
DURABILITY: dict[str, Any] = {"appendonly": "yes", "appendfsync": "always", "save": "", "dir": _node_dir}

KEYS = [f"chaos:{i}" for i in range(240)]


def _node_of(key: str) -> int:
    slot = keyslot(key.encode())
    for index, spec in enumerate(RANGES):
        first, last = (int(part) for part in spec.split("-"))
        if first <= slot <= last:
            return index
    raise AssertionError(slot)


class Load(threading.Thread):
    """Writes then reads every key in turn, recording (phase, node, ok) per operation (an
    operation during which the phase changed counts as "transition") and the last
    acknowledged value of each key."""

    def __init__(self, client: RedisCluster) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.phase = "before"
        self.outcomes: Counter[tuple[str, int, bool]] = Counter()
        self.acked: dict[str, int] = {}
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.running = threading.Event()  # cleared: the load pauses before its next operation
        self.running.set()
        self.round = 0

    def run(self) -> None:
        counter = 0
        while not self.stopping.is_set():
            for key in KEYS:
                if self.stopping.is_set():
                    return
                self.running.wait()
                counter += 1
                phase, node = self.phase, _node_of(key)
                try:
                    self.client.set(key, counter)
                    self.acked[key] = counter
                    ok = self.client.get(key) == str(counter).encode()
                except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
                    ok = False
                    if len(self.errors) < 20:
                        self.errors.append(f"{phase} {key} node {node}: {type(exc).__name__}: {exc}")
                if self.phase != phase:
                    phase = "transition"  # the operation straddled a kill or a restart
                self.outcomes[phase, node, ok] += 1
            self.round += 1


def test_kill_and_restart_one_node_under_load(tmp_path: Path) -> None:
    ports = [free_port() for _ in RANGES]
    # A callable option is called with (the test's directory, the node's port): a dir per node.
    options = {
        name: partial(value, tmp_path) if callable(value) else value for name, value in DURABILITY.items()
    }
    nodes = [NodeProcess(config, tmp_path) for config in node_configs(ports, **options)]
    victim = 1
    client: RedisCluster | None = None
    load: Load | None = None
    try:
        for node in nodes:
            node.start()
        client = RedisCluster(
            startup_nodes=[ClusterNode(HOST, port) for port in ports],
            retry=Retry(NoBackoff(), 1),
            socket_timeout=2,
            socket_connect_timeout=0.5,
        )
        load = Load(client)
        load.start()
        _wait_rounds(load, 2)
        load.phase = "killing"  # not checked: the kill lands during some operation
        nodes[victim].kill()
        load.phase = "down"
        time.sleep(2.0)
        load.phase = "restarting"
        # What the victim acknowledged before it died; the load pauses while the restarted
        # node is read directly, so nothing written after the restart can hide a loss.
        at_kill = {key: value for key, value in load.acked.items() if _node_of(key) == victim}
        load.running.clear()
        nodes[victim].start()
        with redis.Redis(HOST, ports[victim]) as direct:
            pipe = direct.pipeline(transaction=False)  # one GET a key: they span slots
            for key in at_kill:
                pipe.get(key)
            restored = dict(zip(at_kill, pipe.execute(), strict=True))
        load.running.set()
        # Recovery: the client reaches the restarted node again within a few seconds.
        load.phase = "after"
        deadline = time.monotonic() + 10
        while load.outcomes["after", victim, True] < 20:
            assert time.monotonic() < deadline, f"no recovery: {dict(load.outcomes)} {load.errors}"
            time.sleep(0.05)
        load.phase = "recovered"
        _wait_rounds(load, 1)
        load.stopping.set()
        load.join(10)

        outcomes = load.outcomes
        others = [i for i in range(3) if i != victim]
        assert outcomes["before", victim, True] > 0
        assert not any(outcomes["before", i, False] for i in range(3)), load.errors
        # Down: the victim's slots fail, every other slot keeps succeeding.
        assert outcomes["down", victim, False] > 0
        assert outcomes["down", victim, True] == 0
        for i in others:
            assert outcomes["down", i, True] > 0
            assert outcomes["down", i, False] == 0, load.errors
            assert outcomes["restarting", i, False] == 0, load.errors
            assert outcomes["after", i, False] == 0, load.errors
        # Recovered: a whole round over every slot without an error.
        assert outcomes["recovered", victim, True] > 0
        assert not any(outcomes["recovered", i, False] for i in range(3)), load.errors

        # No acknowledged write of a surviving node is lost (nor of the victim when durable).
        final = dict(zip(KEYS, client.mget_nonatomic(KEYS), strict=True))
        # Values only grow: a write in flight at the kill (never acknowledged) may have
        # reached the log too, so a key may hold a newer value than its last acknowledged one.
        lost = [key for key, value in load.acked.items() if final[key] is None or int(final[key]) < value]
        assert all(_node_of(key) == victim for key in lost), lost
        if DURABILITY:
            assert at_kill
            # Values only grow: a write in flight at the kill may be in the log unacknowledged.
            gone = [
                key for key, value in at_kill.items() if restored[key] is None or int(restored[key]) < value
            ]
            assert gone == [], f"{len(gone)} of {len(at_kill)} acknowledged writes lost"
    finally:
        if load is not None:
            load.stopping.set()
            load.join(10)
        if client is not None:
            client.close()
        for node in nodes:
            node.stop()


def _wait_rounds(load: Load, rounds: int, timeout: float = 15.0) -> None:
    target = load.round + rounds
    deadline = time.monotonic() + timeout
    while load.round < target:
        assert time.monotonic() < deadline, f"the load made no progress: {load.errors}"
        time.sleep(0.02)

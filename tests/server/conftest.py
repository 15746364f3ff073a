"""Fixtures for the server's tests: our server on a thread, a real redis-server, raw clients.

* ``ours``: a :class:`ServerThread` shared by the session, flushed before each test; a test
  that needs its own configuration uses ``server_factory(**options)``.
* ``real``: the session's real ``redis-server`` (from ``servers.py``), flushed before each test.
* ``pair``: a raw RESP client on each; ``pair.check(*args)`` runs a command on both and
  asserts the replies are equal (errors included, text for text), returning the reply.
* ``client``: a raw RESP client on ours; ``rclient``: redis-py on ours.

Every test fails if the server logged an internal error (a handler that raised something
other than an error reply) while it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from mcclient import mc, mc_conn, mc_pair, mc_thread  # noqa: F401 - the memcached listener's fixtures
from respclient import HOST, Pair, RespConn

from stratacache.server import ServerConfig, ServerThread
from stratacache.server.config import config_from_mapping


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in an empty directory of its own: a server started without ``dir``
    (in process or as a subprocess) writes and loads ``./dump.scs`` and ``./appendonly.aof``
    there, never in the repository nor across tests."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def ours_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    # A scratch dir and save "": no snapshot is loaded from, or left in, the working directory.
    workdir = str(tmp_path_factory.mktemp("ours"))
    with ServerThread(ServerConfig(port=0, save="", dir=workdir)) as running:
        yield running


@pytest.fixture
def ours(ours_thread: ServerThread) -> Iterator[ServerThread]:
    """Our server (shared by the session), flushed; fails the test on an internal error."""
    server = ours_thread.server
    assert server is not None
    for db in server.databases:
        ours_thread.call(db.flush)
    before = server.internal_errors
    yield ours_thread
    assert server.internal_errors == before, "the server logged an internal error (see the log)"


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerThread]]:
    """``server_factory(**options)``: a server of its own with Redis-named options
    (``maxmemory="1mb"``, ``requirepass="x"``, ...), stopped after the test."""
    started: list[ServerThread] = []

    def make(**options: Any) -> ServerThread:
        config = config_from_mapping(
            {
                "port": 0,
                "save": "",
                "dir": str(tmp_path_factory.mktemp("server")),
                **{k.replace("_", "-"): v for k, v in options.items()},
            },
            "test",
        )
        running = ServerThread(config).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
        assert running.server is not None
        assert running.server.internal_errors == 0, "the server logged an internal error"


@pytest.fixture
def real(redis_server: Any) -> Any:
    """The session's real redis-server, flushed."""
    redis_server.flush()
    return redis_server


@pytest.fixture
def client(ours: ServerThread) -> Iterator[RespConn]:
    """A raw RESP connection to our server."""
    conn = RespConn(ours.port)
    yield conn
    conn.close()


@pytest.fixture
def pair(ours: ServerThread, real: Any) -> Iterator[Pair]:
    """Raw clients on our server and on a real redis-server, both flushed."""
    a, b = RespConn(ours.port), RespConn(real.port)
    yield Pair(a, b)
    a.close()
    b.close()


@pytest.fixture
def rclient(ours: ServerThread) -> Iterator[redis.Redis]:
    """redis-py (RESP2) on our server."""
    r = redis.Redis(host=HOST, port=ours.port, protocol=2)
    yield r
    r.close()

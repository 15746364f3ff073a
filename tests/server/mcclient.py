"""Raw memcached connections and the fixtures of the memcached listener's tests.

* :class:`McConn`: a raw socket; ``call(data)`` sends bytes followed by ``mn`` and returns
  every reply up to the ``MN`` (so a pipeline's replies come back whole, quiet ones included).
* :class:`McPair`: the same bytes to our listener and to a real memcached; ``check(data)``
  asserts the replies are equal once CAS uniques are masked (ours and memcached's counters
  differ), and ``{cas}`` in ``data`` is replaced, per side, by the last CAS that side showed.
* Fixtures (imported by the test modules): ``mc_thread`` (our server with a memcached
  listener, shared by the module), ``mc`` (flushed, fails on an internal error), ``mc_conn``,
  ``mc_pair`` (ours and the session's real memcached, both flushed).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from servers import free_port
from stratacache.server import ServerThread
from stratacache.server.config import config_from_mapping

HOST = "127.0.0.1"
# The pair's servers refuse the same items: the session memcached runs with -I 2m.
PAIR_ITEM_SIZE = 2 * 1024 * 1024

_VALUE_CAS = re.compile(rb"^(VALUE \S+ \d+ \d+) (\d+)\r$", re.M)
_META_CAS = re.compile(rb"^((?:VA|HD|NF|NS|EX|EN)(?: [^\r\n]*?)?) c(\d+)(?=[ \r])", re.M)


class McConn:
    """A raw memcached connection (see the module docstring)."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.last_cas = b"0"

    def send(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.sock.sendall(data)

    def call(self, data: bytes, *, end: bytes = b"mn\r\n", marker: bytes = b"MN\r\n") -> bytes:
        """Send ``data`` then ``end``; everything read until the reply ends with ``marker``
        (without it). Raises ConnectionError if the server closes first."""
        self.sock.sendall(data.replace(b"{cas}", self.last_cas) + end)
        return self.read_until(marker)

    def read_until(self, marker: bytes) -> bytes:
        """Read until the received bytes end with ``marker``; return them without it."""
        buf = b""
        while not buf.endswith(marker):
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"closed by the server after {buf[-300:]!r}")
            buf += chunk
        found = _VALUE_CAS.findall(buf) + _META_CAS.findall(buf)
        if found:
            self.last_cas = found[-1][1]
        return buf[: -len(marker)]

    def closed(self, timeout: float = 2.0) -> bool:
        """Whether the server closed the connection (reads and discards what is pending)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def mask_cas(reply: bytes) -> bytes:
    """``reply`` with CAS uniques replaced by ``#``."""
    reply = _VALUE_CAS.sub(rb"\1 #\r", reply)
    while True:
        masked = _META_CAS.sub(rb"\1 c#", reply)
        if masked == reply:
            return masked
        reply = masked


def _steps(data: bytes) -> list[bytes]:
    """``data`` cut before each line that holds ``{cas}``."""
    steps: list[bytes] = []
    current = b""
    for line in re.split(rb"(?<=\n)", data):
        if b"{cas}" in line and current:
            steps.append(current)
            current = b""
        current += line
    if current:
        steps.append(current)
    return steps


class McPair:
    """Our listener and a real memcached side by side (see the module docstring)."""

    def __init__(self, ours: McConn, real: McConn) -> None:
        self.ours = ours
        self.real = real

    def both(self, data: bytes) -> tuple[bytes, bytes]:
        """The raw replies of (ours, real) to ``data``; a line holding ``{cas}`` is sent after
        the replies to the lines before it came (so it uses the CAS they showed)."""
        mine = theirs = b""
        for step in _steps(data):
            mine += self.ours.call(step)
            theirs += self.real.call(step)
        return mine, theirs

    def check(self, data: bytes) -> bytes:
        """Assert both answer ``data`` alike (CAS masked); return our reply."""
        mine, theirs = self.both(data)
        assert mask_cas(mine) == mask_cas(theirs), f"for {data[:300]!r}\nours: {mine!r}\nreal: {theirs!r}"
        return mine


def start_listener(**options: Any) -> ServerThread:
    """Our server with a memcached listener on a free port (Redis-named ``options``)."""
    for _attempt in range(5):
        settings = {"port": 0, "memcached-port": free_port(), **options}
        config = config_from_mapping({k.replace("_", "-"): v for k, v in settings.items()}, "test")
        try:
            return ServerThread(config).start()
        except OSError:  # the free port was taken meanwhile: another one
            time.sleep(0.05)
    raise RuntimeError("no free port for the memcached listener")


def mc_port(running: ServerThread) -> int:
    """The port of ``running``'s memcached listener."""
    assert running.server is not None
    return int(running.server.extra["memcache"].ports[0])


@pytest.fixture(scope="module")
def mc_thread() -> Iterator[ServerThread]:
    """Our server with a memcached listener (item size as the pair's memcached), per module."""
    running = start_listener(memcached_max_item_size=PAIR_ITEM_SIZE)
    yield running
    running.stop()


@pytest.fixture
def mc(mc_thread: ServerThread) -> Iterator[ServerThread]:
    """The module's server, every database flushed; fails the test on an internal error."""
    server = mc_thread.server
    assert server is not None
    for db in server.databases:
        mc_thread.call(db.flush)
    before = server.internal_errors
    yield mc_thread
    assert server.internal_errors == before, "the server logged an internal error (see the log)"


@pytest.fixture
def mc_conn(mc: ServerThread) -> Iterator[McConn]:
    """A raw memcached connection to our listener."""
    conn = McConn(mc_port(mc))
    yield conn
    conn.close()


@pytest.fixture
def mc_pair(mc: ServerThread, memcached_server: Any) -> Iterator[McPair]:
    """Raw connections to our listener and to the session's real memcached, both flushed."""
    memcached_server.flush()
    ours, real = McConn(mc_port(mc)), McConn(memcached_server.port)
    yield McPair(ours, real)
    ours.close()
    real.close()

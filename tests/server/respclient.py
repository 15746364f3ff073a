"""A raw RESP client for the server's tests: RESP2 and RESP3 replies decoded to plain
values (errors as :class:`Err` values, so replies compare with ==), and :class:`Pair`, which
runs a command on our server and on a real redis-server and compares the replies."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

__all__ = ["Closed", "Err", "Pair", "Push", "RespConn"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Err:
    """An error reply, as a value (so replies compare with ==)."""

    message: str

    def __repr__(self) -> str:
        return f"Err({self.message!r})"


class Push(list[Any]):
    """A RESP3 push, told apart from an array."""


class Closed(Exception):
    """The server closed the connection."""


class RespConn:
    """A raw RESP connection that decodes RESP2 and RESP3 replies (errors as :class:`Err`)."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, *args: Any) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))

    def call(self, *args: Any) -> Any:
        self.send(*args)
        return self.read()

    def read(self) -> Any:
        line = self.rfile.readline()
        if not line:
            raise Closed("connection closed by the server")
        if not line.endswith(b"\r\n"):
            raise Closed(f"connection closed mid-reply: {line!r}")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            return Err(body.decode(errors="replace"))
        if kind == b":":
            return int(body)
        if kind in (b"$", b"=", b"!"):
            size = int(body)
            if size < 0:
                return None
            data = self.rfile.read(size + 2)[:-2]
            if kind == b"!":
                return Err(data.decode(errors="replace"))
            return data
        if kind in (b"*", b"~", b">"):
            count = int(body)
            if count < 0:
                return None
            items = [self.read() for _ in range(count)]
            if kind == b"~":
                return ("set", sorted(items, key=repr))
            return Push(items) if kind == b">" else items
        if kind == b"%":
            return {_hashable(self.read()): self.read() for _ in range(int(body))}
        if kind == b"_":
            return None
        if kind == b",":
            return ("double", body.decode())
        if kind == b"#":
            return body == b"t"
        if kind == b"(":
            return int(body)
        raise ValueError(f"unexpected reply line {line!r}")

    def closed(self, timeout: float = 2.0) -> bool:
        """Whether the server closed the connection (reads until EOF or ``timeout``)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class Pair:
    """A raw client on our server and one on a real redis-server."""

    def __init__(self, ours: RespConn, real: RespConn) -> None:
        self.ours = ours
        self.real = real

    def call(self, *args: Any) -> tuple[Any, Any]:
        """Both replies, (ours, real)."""
        return self.ours.call(*args), self.real.call(*args)

    def check(self, *args: Any) -> Any:
        """Run on both; assert the replies are equal; return it."""
        mine, theirs = self.call(*args)
        assert mine == theirs, f"{args!r}: ours {mine!r} != redis {theirs!r}"
        return mine

    def check_sorted(self, *args: Any) -> Any:
        """As :meth:`check`, for replies whose order Redis leaves undefined (SMEMBERS, KEYS)."""
        mine, theirs = self.call(*args)
        if isinstance(mine, list) and isinstance(theirs, list):
            mine, theirs = sorted(mine, key=repr), sorted(theirs, key=repr)
        assert mine == theirs, f"{args!r}: ours {mine!r} != redis {theirs!r}"
        return mine

"""Container health check for ``stratacache serve``: PING over the Redis protocol.

Exit status 0 when the server answers PING with ``+PONG`` (or ``-NOAUTH``: it is up and
asks for a password, which the check does not need to know), 1 otherwise (no answer within
the timeout, ``-LOADING`` while a dataset loads, anything else). No redis-cli needed: the
standard library only, so it runs in the image's own Python.

Usage: python healthcheck.py [HOST [PORT]]  (defaults: 127.0.0.1 7379, or the
STRATACACHE_HEALTH_HOST / STRATACACHE_HEALTH_PORT environment variables).
"""

from __future__ import annotations

import os
import socket
import sys

_ALIVE = (b"+PONG", b"-NOAUTH")


def check(host: str, port: int, timeout: float = 2.0) -> tuple[bool, str]:
    """Send PING; (healthy, the first line of the reply or the error)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while b"\r\n" not in reply:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        return False, f"{host}:{port}: {exc}"
    line = reply.split(b"\r\n", 1)[0]
    return line.startswith(_ALIVE), line.decode("latin-1") or "connection closed without a reply"


def main(argv: list[str]) -> int:
    """Run the check; print the reply and return the exit status."""
    host = argv[0] if argv else os.environ.get("STRATACACHE_HEALTH_HOST", "127.0.0.1")
    port = int(argv[1]) if len(argv) > 1 else int(os.environ.get("STRATACACHE_HEALTH_PORT", "7379"))
    healthy, text = check(host, port)
    print(text)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

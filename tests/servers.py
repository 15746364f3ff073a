"""Real ``redis-server`` and ``memcached`` processes for the test-suite.

Nothing here is mocked: every server is a child process listening on a free loopback port, with
its own scratch directory and log file.  The module is importable on its own (``from servers
import RedisServer``) and also defines pytest fixtures that ``tests/conftest.py`` re-exports.

Guarantees about cleanup, because stray daemons on a shared CI machine are worse than a failed test:

* children run in their own process group (``start_new_session``), so ``stop()``/``kill()``
  signal the whole group, including any helper process a server forks;
* an :func:`atexit` hook stops every server that is still running when the interpreter exits;
* on Linux, children also get ``PR_SET_PDEATHSIG`` so they die with the test process even when it
  is ``SIGKILL``-ed and ``atexit`` never runs.

POSIX only (process groups and signals); the project's CI is Linux.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Protocol, Self, TypeAlias
from urllib.parse import quote

import pytest

__all__ = [
    "HOST",
    "INSTALL_HINT",
    "MemcachedServer",
    "MemcachedServerFactory",
    "RedisServer",
    "RedisServerFactory",
    "RespError",
    "RespReply",
    "free_port",
    "have_binary",
    "memcached_server",
    "memcached_server_factory",
    "redis_server",
    "redis_server_factory",
    "require_binary",
    "stop_all_servers",
]

#: Every test server binds to loopback only: the workplace forbids traffic to other addresses.
HOST = "127.0.0.1"

#: What to run to get the server binaries; quoted in skip/failure messages.
INSTALL_HINT = "bash scripts/install_servers.sh"

# Shared bookkeeping, guarded by one lock because fixtures may be used from helper threads.
_registry_lock = threading.Lock()
_live_servers: set[_ServerProcess] = set()
_handed_out_ports: set[int] = set()
_owned_tmpdirs: list[Path] = []

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class _PortInUseError(Exception):
    """The server exited at startup because its port was already taken."""


# --------------------------------------------------------------------------------------------------
# Binaries
# --------------------------------------------------------------------------------------------------


def have_binary(name: str) -> bool:
    """Return whether the executable ``name`` is on ``PATH``."""
    return shutil.which(name) is not None


def _missing_binary_message(name: str) -> str:
    return (
        f"{name!r} is not installed or not on PATH; install the test servers with `{INSTALL_HINT}` "
        "(Debian packages: redis-server redis-tools memcached)"
    )


def require_binary(name: str) -> None:
    """Make sure ``name`` is on ``PATH``, or skip the calling test.

    On CI (``CI=true``) a missing binary is an error rather than a skip: a green run that silently
    skipped every server test would hide a broken install step.
    """
    if have_binary(name):
        return
    message = _missing_binary_message(name)
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(message)
    # allow_module_level so that test modules may also call this at import time.
    pytest.skip(message, allow_module_level=True)


# --------------------------------------------------------------------------------------------------
# Ports and process plumbing
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The kernel picks it (bind to port 0) and the socket is closed before returning, so another
    process may grab it in between; ``start()`` copes with that by retrying on a fresh port.  A port
    is never handed out twice by one process, so two servers never share a port, not even while one
    of them is down waiting for ``restart()``.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        with _registry_lock:
            if port not in _handed_out_ports:
                _handed_out_ports.add(port)
                return port
    raise RuntimeError(f"could not find an unused TCP port on {HOST}")


def _make_pdeathsig_hook() -> Callable[[], None] | None:
    """Build a ``preexec_fn`` that makes the child die with its parent (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Loaded here, in the parent: dlopen() between fork and exec is not safe.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before prctl() took effect; then nobody would signal us.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``proc`` if it has not been reaped yet."""
    # Until we reap it, the leader's pid (== its group id) cannot be reused, so this cannot hit
    # an unrelated process.
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def _kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


# --------------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------------


class _ServerProcess:
    """Common lifecycle of a server child process; subclasses supply argv, probe and URL."""

    #: Executable name, looked up on PATH.
    binary: ClassVar[str]
    #: Seconds to wait for a fresh process to answer its protocol.
    startup_timeout: ClassVar[float] = 10.0
    #: Seconds ``stop()`` waits after SIGTERM before it sends SIGKILL.
    stop_timeout: ClassVar[float] = 5.0
    #: Fresh ports tried by the first ``start()`` when the chosen one turns out to be taken.
    port_attempts: ClassVar[int] = 5

    def __init__(self, *, extra_args: Sequence[str] = (), tmpdir: Path | None = None) -> None:
        # A plain string is a Sequence[str] too and would be split into one argument per character.
        if isinstance(extra_args, str | bytes):
            raise TypeError("extra_args must be a sequence of arguments, not a single string")
        self.host: str = HOST
        self.extra_args: tuple[str, ...] = tuple(extra_args)
        if tmpdir is None:
            tmpdir = Path(tempfile.mkdtemp(prefix=f"stratacache-{self.binary}-"))
            with _registry_lock:
                _owned_tmpdirs.append(tmpdir)
        self.tmpdir: Path = Path(tmpdir)
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- subclass hooks -----------------------------------------------------------------------------

    def command_line(self, port: int) -> list[str]:
        """Return the argv that starts this server on ``port``."""
        raise NotImplementedError

    def _probe(self, port: int) -> int | None:
        """Talk the server's protocol on ``port``; return the pid the server reports, else None."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Connection URL for the library under test."""
        raise NotImplementedError

    # -- public attributes --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """TCP port; fixed by the first ``start()`` and kept by ``restart()``."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started yet, so it has no port")
        return self._port

    @property
    def pid(self) -> int | None:
        """Pid of the running server process, or None when it is not running."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may still be starting up)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """File receiving the server's stdout and stderr, appended to across restarts."""
        return self.tmpdir / f"{self.binary}.log"

    def log_tail(self, lines: int = 30) -> str:
        """Return the last ``lines`` lines of the server log (empty if there is none yet)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Self:
        """Spawn the server and block until it answers its protocol.

        The first call picks a free port, retrying on a fresh one if the port was grabbed in the
        meantime; later calls (see :meth:`restart`) reuse that port.  Raises RuntimeError, with the
        tail of the log, if the server exits or does not answer within :attr:`startup_timeout`.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._proc = None  # forget a process that died on its own
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        if self._port is not None:
            self._start_on(self._port, same_port=True)
            return self
        clash: _PortInUseError | None = None
        for _ in range(self.port_attempts):
            port = free_port()
            try:
                self._start_on(port, same_port=False)
            except _PortInUseError as exc:
                clash = exc
                continue
            self._port = port
            return self
        raise RuntimeError(
            f"{self.binary}: every one of {self.port_attempts} free ports was taken by the time the "
            f"server bound it; log {self.log_path}:\n{self.log_tail()}"
        ) from clash

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout`` seconds.  Idempotent.

        The process is reaped before this returns, so its pid no longer exists afterwards.
        """
        proc = self._proc
        if proc is None:
            return
        try:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                _kill_and_reap(proc)
        finally:
            self._forget_process()

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests) and reap it; ``restart()`` brings it back.

        Does nothing when the server is not running.
        """
        proc = self._proc
        if proc is None:
            return
        try:
            _kill_and_reap(proc)
        finally:
            self._forget_process()

    def restart(self) -> Self:
        """Stop the server if it runs, then start it again on the same port (data is not kept)."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port is not None else "unstarted"
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {where} {state}>"

    # -- internals ----------------------------------------------------------------------------------

    def _forget_process(self) -> None:
        self._proc = None
        with _registry_lock:
            _live_servers.discard(self)

    def _start_on(self, port: int, *, same_port: bool) -> None:
        """Spawn on ``port`` and wait until ready; raise _PortInUseError on a clash."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            proc, log_offset = self._spawn(port)
            try:
                ready = self._wait_ready(proc, port, deadline, log_offset)
            except BaseException:
                _kill_and_reap(proc)
                raise
            if ready:
                self._proc = proc
                with _registry_lock:
                    _live_servers.add(self)
                return
            if not same_port:
                raise _PortInUseError(port)
            # restart(): the port is ours by contract, so whoever holds it may let go soon (e.g. a
            # client socket that briefly took it as an ephemeral port); keep trying until the deadline.
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.binary}: cannot restart on port {port}, another process holds it; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _spawn(self, port: int) -> tuple[subprocess.Popen[bytes], int]:
        argv = self.command_line(port)
        # Only spawn from the main thread with PDEATHSIG: the signal fires when the spawning *thread*
        # exits, which for a worker thread could be long before the test session ends.
        hook = _make_pdeathsig_hook() if threading.current_thread() is threading.main_thread() else None
        with self.log_path.open("ab") as log:
            log.seek(0, os.SEEK_END)
            offset = log.tell()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp} starting: {shlex.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                start_new_session=True,
                preexec_fn=hook,  # noqa: PLW1509 -- the hook only calls prctl(), which is fork-safe
            )
        return proc, offset

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, deadline: float, log_offset: int) -> bool:
        """Return True once ``proc`` answers, False if it exited because ``port`` was taken."""
        while True:
            code = proc.poll()
            if code is not None:
                if "address already in use" in self._log_since(log_offset).lower():
                    return False
                raise RuntimeError(
                    f"{self.binary} exited with code {code} while starting on {self.host}:{port}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            # Compare pids: on a port clash some *other* server may be the one answering.
            if self._probe(port) == proc.pid:
                return True
            if time.monotonic() >= deadline:
                _kill_and_reap(proc)
                raise RuntimeError(
                    f"{self.binary} did not answer on {self.host}:{port} within "
                    f"{self.startup_timeout:g}s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _resolve_binary(self) -> str:
        path = shutil.which(self.binary)
        if path is None:
            raise RuntimeError(_missing_binary_message(self.binary))
        return path


# --------------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------------

#: A decoded RESP2 reply: simple string -> str, bulk string -> bytes, integer -> int, nil -> None.
RespReply: TypeAlias = str | bytes | int | list["RespReply"] | None


class RespError(Exception):
    """An error reply (``-ERR ...``) from Redis; ``str(exc)`` is the message without the dash."""


def _encode_command(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(rfile: IO[bytes]) -> RespReply:
    line = rfile.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed in the middle of a reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RespError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = rfile.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed in the middle of a bulk reply")
        return data[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(rfile) for _ in range(count)]
    # RESP3 types never appear: we never send HELLO 3.
    raise ValueError(f"unexpected RESP reply line {line!r}")


def _redis_call(
    host: str,
    port: int,
    password: str | None,
    commands: Sequence[Sequence[str | bytes | int]],
    timeout: float,
) -> list[RespReply]:
    """Send ``commands`` pipelined on one fresh connection (AUTH first if needed); return replies."""
    to_send = [("AUTH", password), *commands] if password else list(commands)
    with socket.create_connection((host, port), timeout=timeout) as sock, sock.makefile("rb") as rfile:
        sock.sendall(b"".join(_encode_command(cmd) for cmd in to_send))
        replies = [_read_reply(rfile) for _ in to_send]
    return replies[1:] if password else replies


class RedisServer(_ServerProcess):
    """A throw-away ``redis-server``: no persistence, loopback only, optional ``requirepass``.

    ``extra_args`` are appended to the command line verbatim (e.g. ``["--maxmemory", "1mb"]``),
    which is also how TLS or cluster flags can be added later.
    """

    binary = "redis-server"

    def __init__(
        self,
        *,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        tmpdir: Path | None = None,
    ) -> None:
        super().__init__(extra_args=extra_args, tmpdir=tmpdir)
        # Redis treats an empty requirepass as "no password"; normalise so url and probe agree.
        self.password: str | None = password or None

    def command_line(self, port: int) -> list[str]:
        """Return the ``redis-server`` argv for ``port``."""
        argv = [
            self._resolve_binary(),
            "--port", str(port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.tmpdir),
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        return [*argv, *self.extra_args]

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def command(self, *args: str | bytes | int, timeout: float = 5.0) -> RespReply:
        """Run one Redis command on a fresh raw connection (authenticating first) and return its reply.

        Error replies raise :class:`RespError`.  Handy for fault tests (``CLIENT KILL``,
        ``CONFIG SET``, ``DEBUG SLEEP``) without depending on the library under test.
        """
        return _redis_call(self.host, self.port, self.password, [args], timeout)[0]

    def flush(self) -> None:
        """Delete every key (``FLUSHALL``), e.g. between tests sharing the session server."""
        self.command("FLUSHALL")

    def _probe(self, port: int) -> int | None:
        try:
            pong, info = _redis_call(self.host, port, self.password, [("PING",), ("INFO", "server")], 0.5)
        except (OSError, ValueError, RespError):  # refused, reset, -LOADING, wrong password, ...
            return None
        if pong != "PONG" or not isinstance(info, bytes):
            return None
        for line in info.decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.partition(":")[2])
        return None


# --------------------------------------------------------------------------------------------------
# Memcached
# --------------------------------------------------------------------------------------------------


def _memcached_call(
    host: str, port: int, request: bytes, terminators: tuple[bytes, ...], timeout: float
) -> bytes:
    """Send ``request`` and read reply lines until one of them is in ``terminators``."""
    lines: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout) as sock, sock.makefile("rb") as rfile:
        sock.sendall(request)
        while True:
            line = rfile.readline()
            if not line.endswith(b"\r\n"):
                raise ConnectionError("memcached closed the connection in the middle of a reply")
            lines.append(line)
            if line in terminators or line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
                return b"".join(lines)


class MemcachedServer(_ServerProcess):
    """A throw-away ``memcached``: loopback only, UDP off, 64 MB of memory.

    ``extra_args`` are appended to the command line verbatim (e.g. ``["-I", "2m"]``).
    """

    binary = "memcached"

    def command_line(self, port: int) -> list[str]:
        """Return the ``memcached`` argv for ``port``."""
        argv = [self._resolve_binary(), "-l", self.host, "-p", str(port), "-U", "0", "-m", "64"]
        # memcached refuses to run as root unless told which user to be; CI containers run as root.
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        return [*argv, *self.extra_args]

    @property
    def url(self) -> str:
        """``memcached://127.0.0.1:PORT``."""
        return f"memcached://{self.host}:{self.port}"

    def flush(self) -> None:
        """Invalidate every item (``flush_all``), e.g. between tests sharing the session server."""
        reply = _memcached_call(self.host, self.port, b"flush_all\r\n", (b"OK\r\n",), 5.0)
        if reply != b"OK\r\n":
            raise RuntimeError(f"memcached flush_all failed: {reply!r}")

    def _probe(self, port: int) -> int | None:
        try:
            reply = _memcached_call(self.host, port, b"version\r\nstats\r\n", (b"END\r\n",), 0.5)
        except (OSError, ValueError):
            return None
        if not reply.startswith(b"VERSION "):
            return None
        for line in reply.splitlines():
            if line.startswith(b"STAT pid "):
                return int(line.split()[2])
        return None


# --------------------------------------------------------------------------------------------------
# Session-wide cleanup
# --------------------------------------------------------------------------------------------------


def stop_all_servers() -> None:
    """Stop every server started by this process and remove scratch directories we created.

    Registered with :mod:`atexit`; safe to call more than once.
    """
    with _registry_lock:
        servers = list(_live_servers)
    _terminate_all(servers)
    for server in servers:
        # Keep going: one stubborn server must not leave the others running.
        with contextlib.suppress(Exception):
            server.stop(timeout=2.0)
    with _registry_lock:
        dirs = list(_owned_tmpdirs)
        _owned_tmpdirs.clear()
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


atexit.register(stop_all_servers)


def _terminate_all(servers: Sequence[_ServerProcess]) -> None:
    """SIGTERM every server up front so their shutdowns overlap.

    memcached only notices a shutdown request on its once-a-second clock tick, so stopping N of
    them one after the other would cost N seconds.
    """
    for server in servers:
        proc = server._proc
        if proc is not None:
            _signal_group(proc, signal.SIGTERM)


def _stop_each(servers: Sequence[_ServerProcess]) -> None:
    """Stop all ``servers``, then re-raise the first failure, so one failure cannot leak the rest."""
    _terminate_all(servers)
    errors: list[BaseException] = []
    for server in servers:
        try:
            server.stop()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


# --------------------------------------------------------------------------------------------------
# Pytest fixtures (re-exported by tests/conftest.py)
# --------------------------------------------------------------------------------------------------


class RedisServerFactory(Protocol):
    """Type of the ``redis_server_factory`` fixture: each call starts one more server."""

    def __call__(self, *, password: str | None = None, extra_args: Sequence[str] = ()) -> RedisServer:
        """Start and return a new :class:`RedisServer`; it is stopped at test teardown."""
        ...


class MemcachedServerFactory(Protocol):
    """Type of the ``memcached_server_factory`` fixture: each call starts one more server."""

    def __call__(self, *, extra_args: Sequence[str] = ()) -> MemcachedServer:
        """Start and return a new :class:`MemcachedServer`; it is stopped at test teardown."""
        ...


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One ``redis-server`` shared by the whole session (no password).

    Shared state: call ``redis_server.flush()`` where isolation matters, and never kill or stop it
    from a test; fault tests use ``redis_server_factory`` instead.
    """
    require_binary("redis-server")
    server = RedisServer(tmpdir=tmp_path_factory.mktemp("redis-session"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemcachedServer]:
    """One ``memcached`` shared by the whole session; same rules as ``redis_server``."""
    require_binary("memcached")
    server = MemcachedServer(tmpdir=tmp_path_factory.mktemp("memcached-session"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerFactory]:
    """Start private ``redis-server`` processes for one test; all are stopped at its teardown."""
    require_binary("redis-server")
    started: list[RedisServer] = []

    def make(*, password: str | None = None, extra_args: Sequence[str] = ()) -> RedisServer:
        server = RedisServer(
            password=password, extra_args=extra_args, tmpdir=tmp_path_factory.mktemp("redis")
        )
        started.append(server)  # before start(): a half-started server must still be cleaned up
        return server.start()

    try:
        yield make
    finally:
        _stop_each(started)


@pytest.fixture
def memcached_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemcachedServerFactory]:
    """Start private ``memcached`` processes for one test; all are stopped at its teardown."""
    require_binary("memcached")
    started: list[MemcachedServer] = []

    def make(*, extra_args: Sequence[str] = ()) -> MemcachedServer:
        server = MemcachedServer(extra_args=extra_args, tmpdir=tmp_path_factory.mktemp("memcached"))
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        _stop_each(started)

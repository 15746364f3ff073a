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

Besides single servers there are multi-process set-ups, all made of the same child processes and
so covered by the same cleanup: a TLS-enabled ``redis-server`` (certificates made with ``trustme``),
a three-primary :class:`RedisCluster`, a :class:`RedisSentinelSet` (primary, replica, sentinel) and
pairs of ``memcached`` nodes.

POSIX only (process groups and signals); the project's CI is Linux.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
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
    "DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT",
    "HOST",
    "INSTALL_HINT",
    "REDIS_TEST_PASSWORD",
    "MemcachedServer",
    "MemcachedServerFactory",
    "RedisCluster",
    "RedisClusterFactory",
    "RedisClusterNode",
    "RedisSentinel",
    "RedisSentinelFactory",
    "RedisSentinelSet",
    "RedisServer",
    "RedisServerFactory",
    "RespError",
    "RespReply",
    "free_port",
    "have_binary",
    "memcached_pair",
    "memcached_server",
    "memcached_server_factory",
    "memcached_url",
    "redis_cluster",
    "redis_cluster_factory",
    "redis_password_server",
    "redis_sentinel",
    "redis_sentinel_factory",
    "redis_server",
    "redis_server_factory",
    "redis_tls_server",
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


def _child_preexec_hook() -> Callable[[], None] | None:
    """The ``preexec_fn`` for a child process: PDEATHSIG, when spawned from the main thread.

    PDEATHSIG fires when the spawning *thread* exits, which for a worker thread could be long
    before the test session ends.
    """
    return _make_pdeathsig_hook() if threading.current_thread() is threading.main_thread() else None


def _scratch_dir(prefix: str) -> Path:
    """Create a temporary directory that :func:`stop_all_servers` removes at exit."""
    path = Path(tempfile.mkdtemp(prefix=f"stratacache-{prefix}-"))
    with _registry_lock:
        _owned_tmpdirs.append(path)
    return path


def _wait_for(what: str, check: Callable[[], bool], timeout: float, detail: Callable[[], str]) -> None:
    """Poll ``check`` until it returns True; after ``timeout`` seconds raise RuntimeError.

    Connection trouble and error replies count as "not yet": the servers being waited for are
    typically just starting, syncing or switching roles.  ``detail`` is appended to the error (a log
    tail, the last reply) so that a timeout can be diagnosed from the test report alone.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            if check():
                return
        except (OSError, ValueError, RespError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            error = f"; last error: {last_error!r}" if last_error is not None else ""
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}{error}\n{detail()}")
        time.sleep(0.05)


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
        self.tmpdir: Path = _scratch_dir(self.binary) if tmpdir is None else Path(tmpdir)
        self._port: int | None = None
        # Listeners besides the main port (TLS, cluster bus), by name; see _extra_port().
        self._extra_ports: dict[str, int] = {}
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
    def address(self) -> str:
        """``127.0.0.1:PORT``, as multi-node URLs and ``redis-cli --cluster`` want it."""
        return f"{self.host}:{self.port}"

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
            # Any of the ports may be the one that clashed, so a new attempt gets all-new ones.
            self._extra_ports.clear()
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

    def _extra_port(self, name: str) -> int:
        """Return the secondary listening port called ``name``, choosing a free one on first use.

        For ``command_line()``: chosen during the first ``start()`` together with the main port
        (afresh on each attempt) and, like it, kept by ``restart()``.
        """
        port = self._extra_ports.get(name)
        if port is None:
            port = self._extra_ports[name] = free_port()
        return port

    def _started_extra_port(self, name: str) -> int:
        """The secondary port ``name`` of a started server, for public properties."""
        if self._port is None or name not in self._extra_ports:
            raise RuntimeError(f"{type(self).__name__} has not been started yet, so it has no {name} port")
        return self._extra_ports[name]

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
        hook = _child_preexec_hook()
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
    ssl_context: ssl.SSLContext | None = None,
) -> list[RespReply]:
    """Send ``commands`` pipelined on one fresh connection (AUTH first if needed); return replies.

    With ``ssl_context`` the connection is TLS and the certificate is checked against ``host``.
    """
    to_send = [("AUTH", password), *commands] if password else list(commands)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
        if ssl_context is not None:
            sock = stack.enter_context(ssl_context.wrap_socket(sock, server_hostname=host))
        rfile = stack.enter_context(sock.makefile("rb"))
        sock.sendall(b"".join(_encode_command(cmd) for cmd in to_send))
        replies = [_read_reply(rfile) for _ in to_send]
    return replies[1:] if password else replies


def _info_fields(reply: RespReply) -> dict[str, str]:
    """Parse an ``INFO`` or ``CLUSTER INFO`` reply (``key:value`` lines) into a dict."""
    if not isinstance(reply, bytes):
        raise ValueError(f"expected a bulk string of key:value lines, got {reply!r}")
    fields: dict[str, str] = {}
    for line in reply.decode(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            fields[key] = value.strip()
    return fields


def _field_pairs(reply: RespReply) -> dict[str, str]:
    """Turn a flat ``[name, value, name, value, ...]`` reply (``SENTINEL MASTER``) into a dict."""
    if not isinstance(reply, list) or len(reply) % 2:
        raise ValueError(f"expected a flat list of name/value pairs, got {reply!r}")
    items = [item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


def _role(server: _RespServer) -> str:
    """First element of ``ROLE``: ``master``, ``slave`` or ``sentinel``."""
    reply = server.command("ROLE", timeout=2.0)
    if not isinstance(reply, list) or not isinstance(reply[0], bytes):
        raise ValueError(f"unexpected ROLE reply {reply!r}")
    return reply[0].decode()


class _RespServer(_ServerProcess):
    """A ``redis-server`` process in any of its modes (plain, cluster node, sentinel): it speaks RESP."""

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

    def command(self, *args: str | bytes | int, timeout: float = 5.0) -> RespReply:
        """Run one Redis command on a fresh raw connection (authenticating first) and return its reply.

        Error replies raise :class:`RespError`.  Handy for fault tests (``CLIENT KILL``,
        ``CONFIG SET``, ``DEBUG SLEEP``) without depending on the library under test.
        """
        return _redis_call(self.host, self.port, self.password, [args], timeout)[0]

    def info(self, section: str = "default") -> dict[str, str]:
        """``INFO section`` as a dict of its ``key:value`` lines."""
        return _info_fields(self.command("INFO", section))

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


class RedisServer(_RespServer):
    """A throw-away ``redis-server``: no persistence, loopback only, optional ``requirepass``.

    ``tls=True`` adds a TLS listener on a second port (:attr:`tls_port`) next to the plain
    :attr:`port`.  A fresh CA, server certificate and client certificate are made with ``trustme``
    in ``tmpdir/tls`` when the object is created; clients may present the client certificate but
    need not (``--tls-auth-clients optional``).

    ``replica_of`` makes this server a replica of another one (``--replicaof``, read when the
    process starts, so the other one must have been started first).  ``extra_args`` are appended
    to the command line verbatim (e.g. ``["--maxmemory", "1mb"]``).
    """

    def __init__(
        self,
        *,
        password: str | None = None,
        tls: bool = False,
        replica_of: RedisServer | None = None,
        extra_args: Sequence[str] = (),
        tmpdir: Path | None = None,
    ) -> None:
        super().__init__(password=password, extra_args=extra_args, tmpdir=tmpdir)
        self.tls: bool = tls
        self.replica_of: RedisServer | None = replica_of
        if tls:
            self._make_certificates()

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
        if self.replica_of is not None:
            primary = self.replica_of
            argv += ["--replicaof", primary.host, str(primary.port)]
            if primary.password:
                argv += ["--masterauth", primary.password]
        if self.tls:
            argv += [
                "--tls-port", str(self._extra_port("tls")),
                "--tls-cert-file", str(self.server_cert_path),
                "--tls-key-file", str(self.server_key_path),
                "--tls-ca-cert-file", str(self.ca_path),
                "--tls-auth-clients", "optional",
            ]  # fmt: skip
        return [*argv, *self._mode_args(port), *self.extra_args]

    def _mode_args(self, port: int) -> list[str]:
        """Arguments a subclass adds before ``extra_args`` (cluster mode)."""
        return []

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        return f"redis://{self._url_auth()}{self.host}:{self.port}/0"

    def _url_auth(self) -> str:
        return f":{quote(self.password, safe='')}@" if self.password else ""

    def command(self, *args: str | bytes | int, timeout: float = 5.0, tls: bool = False) -> RespReply:
        """Like :meth:`_RespServer.command`; ``tls=True`` goes through :attr:`tls_port` instead.

        Over TLS the server's certificate is verified against :attr:`ca_path` and the client
        certificate is presented.
        """
        if not tls:
            return super().command(*args, timeout=timeout)
        context = self.ssl_context(client_cert=True)
        return _redis_call(self.host, self.tls_port, self.password, [args], timeout, context)[0]

    def flush(self) -> None:
        """Delete every key (``FLUSHALL``), e.g. between tests sharing the session server."""
        self.command("FLUSHALL")

    # -- TLS ----------------------------------------------------------------------------------------

    @property
    def tls_port(self) -> int:
        """Port of the TLS listener (``tls=True`` only); fixed by the first ``start()`` like :attr:`port`."""
        self._require_tls()
        return self._started_extra_port("tls")

    @property
    def tls_url(self) -> str:
        """``rediss://[:password@]127.0.0.1:TLSPORT/0?ssl_ca_certs=<CA path, percent-encoded>``."""
        ca = quote(str(self.ca_path), safe="")
        return f"rediss://{self._url_auth()}{self.host}:{self.tls_port}/0?ssl_ca_certs={ca}"

    @property
    def ca_path(self) -> Path:
        """PEM file of the CA that signed the server and client certificates (``tls=True`` only)."""
        return self._tls_file("ca.pem")

    @property
    def server_cert_path(self) -> Path:
        """PEM certificate the server presents, valid for 127.0.0.1 and localhost."""
        return self._tls_file("server.pem")

    @property
    def server_key_path(self) -> Path:
        """PEM private key of :attr:`server_cert_path`."""
        return self._tls_file("server.key")

    @property
    def client_cert_path(self) -> Path:
        """PEM client certificate signed by the same CA, which the server accepts."""
        return self._tls_file("client.pem")

    @property
    def client_key_path(self) -> Path:
        """PEM private key of :attr:`client_cert_path`."""
        return self._tls_file("client.key")

    def ssl_context(self, *, client_cert: bool = False) -> ssl.SSLContext:
        """A client-side context that trusts only this server's CA, optionally with the client cert."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        if client_cert:
            context.load_cert_chain(self.client_cert_path, self.client_key_path)
        return context

    def _require_tls(self) -> None:
        if not self.tls:
            raise RuntimeError(f"{self!r} was not created with tls=True, so it has no TLS listener")

    def _tls_file(self, name: str) -> Path:
        self._require_tls()
        return self.tmpdir / "tls" / name

    def _make_certificates(self) -> None:
        # Imported here so that the module, and every non-TLS server, works without trustme.
        try:
            import trustme
        except ImportError as exc:
            raise RuntimeError("RedisServer(tls=True) needs trustme (in the 'test' extra)") from exc
        ca = trustme.CA()
        # Name exactly what clients dial, so that hostname verification is on and passes.
        server = ca.issue_cert(self.host, "localhost")
        client = ca.issue_cert("client.stratacache.invalid", common_name="stratacache-tests")
        self.ca_path.parent.mkdir(parents=True, exist_ok=True)
        ca.cert_pem.write_to_path(str(self.ca_path))
        self.server_cert_path.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
        server.private_key_pem.write_to_path(str(self.server_key_path))
        self.client_cert_path.write_bytes(b"".join(pem.bytes() for pem in client.cert_chain_pems))
        client.private_key_pem.write_to_path(str(self.client_key_path))


# --------------------------------------------------------------------------------------------------
# Redis Cluster
# --------------------------------------------------------------------------------------------------

#: Number of hash slots in a Redis Cluster.
_CLUSTER_SLOTS = 16384


class RedisClusterNode(RedisServer):
    """A ``redis-server`` in cluster mode: one primary of a :class:`RedisCluster`.

    Its cluster state lives in ``tmpdir/nodes-<port>.conf`` and its cluster bus listens on a port
    of its own (``--cluster-port``: the default, port + 10000, may be taken or beyond 65535).  Both
    survive ``kill()``/``restart()``, so a restarted node comes back with the same node ID and the
    same slots and rejoins the cluster; only its keys are lost (no persistence).
    """

    def __init__(
        self, *, node_timeout_ms: int = 2000, extra_args: Sequence[str] = (), tmpdir: Path | None = None
    ) -> None:
        super().__init__(extra_args=extra_args, tmpdir=tmpdir)
        self.node_timeout_ms: int = node_timeout_ms

    def _mode_args(self, port: int) -> list[str]:
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-port", str(self._extra_port("cluster-bus")),
        ]  # fmt: skip

    @property
    def cluster_bus_port(self) -> int:
        """Port of the node-to-node cluster bus."""
        return self._started_extra_port("cluster-bus")

    @property
    def nodes_conf_path(self) -> Path:
        """The node's cluster state file, written by redis-server itself."""
        return self.tmpdir / f"nodes-{self.port}.conf"

    def node_id(self) -> str:
        """The node's cluster ID (``CLUSTER MYID``)."""
        reply = self.command("CLUSTER", "MYID")
        if not isinstance(reply, bytes):
            raise ValueError(f"unexpected CLUSTER MYID reply {reply!r}")
        return reply.decode()

    def cluster_info(self) -> dict[str, str]:
        """``CLUSTER INFO`` as a dict (``cluster_state``, ``cluster_known_nodes``, ...)."""
        return _info_fields(self.command("CLUSTER", "INFO", timeout=2.0))


class RedisCluster:
    """Three (or more) ``redis-server`` primaries joined into one Redis Cluster, without replicas.

    ``start()`` starts the nodes, joins them with ``redis-cli --cluster create`` (which spreads the
    16384 slots evenly) and waits until every node reports ``cluster_state:ok``.  Fault tests may
    ``kill()`` and ``restart()`` single :attr:`nodes` and then call :meth:`wait_ok`.
    """

    #: Seconds ``start()`` allows ``redis-cli --cluster create`` and then the cluster to settle.
    startup_timeout: ClassVar[float] = 30.0

    def __init__(
        self, *, primaries: int = 3, node_timeout_ms: int = 2000, tmpdir: Path | None = None
    ) -> None:
        if primaries < 3:
            raise ValueError(f"a Redis Cluster needs at least 3 primaries, not {primaries}")
        self.tmpdir: Path = _scratch_dir("redis-cluster") if tmpdir is None else Path(tmpdir)
        self._nodes = [
            RedisClusterNode(node_timeout_ms=node_timeout_ms, tmpdir=self.tmpdir / f"node-{i}")
            for i in range(primaries)
        ]
        self._created = False

    @property
    def nodes(self) -> list[RedisClusterNode]:
        """The primaries, in the order given to ``redis-cli --cluster create``."""
        return list(self._nodes)

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/``."""
        return "redis+cluster://" + ",".join(node.address for node in self._nodes) + "/"

    def start(self) -> Self:
        """Start every node that is not running, create the cluster once, wait for ``cluster_state:ok``.

        After ``stop()`` this brings the same cluster back: the nodes still have their
        ``nodes-<port>.conf``, so they rejoin without another ``--cluster create``.
        """
        try:
            for node in self._nodes:
                if not node.running:
                    node.start()
            if not self._created:
                self._create()
                self._created = True
            self.wait_ok(self.startup_timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                _stop_each(self._nodes)
            raise
        return self

    def wait_ok(self, timeout: float = 15.0) -> None:
        """Wait until every node reports ``cluster_state:ok``, all slots assigned and all nodes known.

        E.g. after ``restart()`` of a node: a restarted primary reports ``ok`` only after about 2 s
        (redis' rejoin delay), and one that was marked failed is taken back after twice the node
        timeout.
        """
        expected = {
            "cluster_state": "ok",
            "cluster_slots_assigned": str(_CLUSTER_SLOTS),
            "cluster_known_nodes": str(len(self._nodes)),
        }

        def all_ok() -> bool:
            for node in self._nodes:
                info = node.cluster_info()
                if any(info.get(key) != value for key, value in expected.items()):
                    return False
            return True

        _wait_for("every cluster node to report cluster_state:ok", all_ok, timeout, self._describe)

    def node_for_key(self, key: str | bytes) -> RedisClusterNode:
        """The node serving ``key``'s hash slot, according to ``CLUSTER SLOTS`` on a running node."""
        asked = next((node for node in self._nodes if node.running), None)
        if asked is None:
            raise RuntimeError(f"no node of {self!r} is running")
        slot = asked.command("CLUSTER", "KEYSLOT", key)
        ranges = asked.command("CLUSTER", "SLOTS")
        if not isinstance(slot, int) or not isinstance(ranges, list):
            raise ValueError(f"unexpected CLUSTER KEYSLOT/SLOTS replies {slot!r}, {ranges!r}")
        for entry in ranges:
            match entry:
                case [int(first), int(last), [_, int(port), *_], *_] if first <= slot <= last:
                    for node in self._nodes:
                        if node.port == port:
                            return node
        raise RuntimeError(f"no node of {self!r} serves slot {slot} of {key!r}: {ranges!r}")

    def flush(self) -> None:
        """``FLUSHALL`` on every primary, e.g. between tests sharing the session cluster."""
        for node in self._nodes:
            node.flush()

    def stop(self) -> None:
        """Stop every node (idempotent); the cluster can be started again with ``start()``."""
        _stop_each(self._nodes)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._nodes!r}>"

    def _create(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError(_missing_binary_message("redis-cli"))
        addresses = [node.address for node in self._nodes]
        argv = [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        log = self.tmpdir / "redis-cli-cluster-create.log"
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.startup_timeout,
                check=False,
                preexec_fn=_child_preexec_hook(),  # only calls prctl(), which is fork-safe
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"`{shlex.join(argv)}` did not finish within {self.startup_timeout:g}s"
            ) from exc
        # redis-cli colours its cluster reports even when they do not go to a terminal.
        output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
        log.write_text(f"$ {shlex.join(argv)}\n{output}")
        if result.returncode != 0:
            raise RuntimeError(
                f"`{shlex.join(argv)}` failed with code {result.returncode}; output ({log}):\n{output}"
            )

    def _describe(self) -> str:
        lines = []
        for node in self._nodes:
            try:
                state = str(node.cluster_info())
            except (OSError, ValueError, RespError) as exc:
                state = repr(exc)
            lines.append(f"{node!r}: {state}\n  log {node.log_path}:\n{node.log_tail(5)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Redis Sentinel
# --------------------------------------------------------------------------------------------------


def _conf_quote(value: str) -> str:
    """Quote ``value`` for a redis.conf line (which is split like a shell line, with C escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RedisSentinel(_RespServer):
    """A Redis Sentinel (``redis-server <conf> --sentinel``) monitoring one primary.

    Sentinel rewrites its configuration file (its ID, the replicas it found, the current primary),
    so the file lives in ``tmpdir`` and is written from scratch only by the first ``start()``: a
    ``restart()`` keeps what the sentinel has learnt, including the outcome of a failover.
    """

    def __init__(
        self,
        *,
        monitor: RedisServer,
        service_name: str = "mymaster",
        quorum: int = 1,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        extra_args: Sequence[str] = (),
        tmpdir: Path | None = None,
    ) -> None:
        super().__init__(extra_args=extra_args, tmpdir=tmpdir)
        self.monitor: RedisServer = monitor
        self.service_name: str = service_name
        self.quorum: int = quorum
        self.down_after_ms: int = down_after_ms
        self.failover_timeout_ms: int = failover_timeout_ms

    @property
    def config_path(self) -> Path:
        """The sentinel's configuration file (sentinel rewrites it while running)."""
        return self.tmpdir / "sentinel.conf"

    def command_line(self, port: int) -> list[str]:
        """Return the argv of a sentinel on ``port``, writing its configuration on the first start."""
        if self._port is None:
            self._write_config(port)
        return [self._resolve_binary(), str(self.config_path), "--sentinel", *self.extra_args]

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:PORT/<service name>``."""
        return f"redis+sentinel://{self.host}:{self.port}/{quote(self.service_name, safe='')}"

    def primary_address(self) -> tuple[str, int]:
        """The primary's address as the sentinel reports it (``SENTINEL GET-MASTER-ADDR-BY-NAME``)."""
        reply = self.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name, timeout=2.0)
        match reply:
            case [bytes(host), bytes(port)]:
                return host.decode(), int(port)
        raise ValueError(f"the sentinel does not know {self.service_name!r}: {reply!r}")

    def primary_state(self) -> dict[str, str]:
        """``SENTINEL MASTER <service>`` as a dict (``flags``, ``num-slaves``, ...)."""
        return _field_pairs(self.command("SENTINEL", "MASTER", self.service_name, timeout=2.0))

    def replicas(self) -> list[dict[str, str]]:
        """``SENTINEL REPLICAS <service>``: one dict per replica the sentinel knows."""
        reply = self.command("SENTINEL", "REPLICAS", self.service_name, timeout=2.0)
        if not isinstance(reply, list):
            raise ValueError(f"unexpected SENTINEL REPLICAS reply {reply!r}")
        return [_field_pairs(entry) for entry in reply]

    def _write_config(self, port: int) -> None:
        primary = self.monitor
        lines = [
            f"port {port}",
            f"bind {self.host}",
            f"dir {_conf_quote(str(self.tmpdir))}",
            "daemonize no",
            f"sentinel monitor {self.service_name} {primary.host} {primary.port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.service_name} {self.down_after_ms}",
            f"sentinel failover-timeout {self.service_name} {self.failover_timeout_ms}",
        ]
        if primary.password:
            lines.append(f"sentinel auth-pass {self.service_name} {_conf_quote(primary.password)}")
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(lines) + "\n")


class RedisSentinelSet:
    """One primary, one replica and one sentinel watching them: the smallest set-up that fails over.

    Which of the two data :attr:`nodes` is the primary changes with :meth:`failover`; ask
    :meth:`primary_address` or :meth:`primary_node` rather than assuming.  Restarting a data node
    after a failover is not reconciled: the replica always restarts as a replica of the first node.
    """

    #: Seconds ``start()`` allows for replication and the sentinel to settle.
    startup_timeout: ClassVar[float] = 15.0
    #: Arguments of both data nodes.  Either may become the primary, and a Redis 7 primary waits
    #: ``repl-diskless-sync-delay`` (5 s) for more replicas before it serves a full sync.
    node_args: ClassVar[tuple[str, ...]] = ("--repl-diskless-sync-delay", "0")

    def __init__(
        self,
        *,
        service_name: str = "mymaster",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        tmpdir: Path | None = None,
    ) -> None:
        self.tmpdir: Path = _scratch_dir("redis-sentinel") if tmpdir is None else Path(tmpdir)
        self.service_name: str = service_name
        first = RedisServer(extra_args=self.node_args, tmpdir=self.tmpdir / "node-a")
        second = RedisServer(replica_of=first, extra_args=self.node_args, tmpdir=self.tmpdir / "node-b")
        self._nodes = (first, second)
        #: The sentinel process (``kill()``/``restart()`` it like any server).
        self.sentinel: RedisSentinel = RedisSentinel(
            monitor=first,
            service_name=service_name,
            down_after_ms=down_after_ms,
            failover_timeout_ms=failover_timeout_ms,
            tmpdir=self.tmpdir / "sentinel",
        )

    @property
    def nodes(self) -> tuple[RedisServer, RedisServer]:
        """The two data nodes; the first one starts as the primary."""
        return self._nodes

    @property
    def sentinel_port(self) -> int:
        """The sentinel's port."""
        return self.sentinel.port

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:SENTINELPORT/mymaster``."""
        return self.sentinel.url

    def start(self) -> Self:
        """Start what is not running and wait until replication and the sentinel are settled."""
        primary, replica = self._nodes
        try:
            for node in self._nodes:
                if not node.running:
                    node.start()
            if not self.sentinel.running:
                # The sentinel looks for replicas in the primary's INFO when it connects and then
                # only every 10 s, so on its first start it must find the replica already there
                # (when restarted, it remembers the replicas in the configuration it rewrote).
                if self.sentinel._port is None:
                    _wait_for(
                        f"{replica!r} to replicate from {primary!r}",
                        lambda: self._replicating(replica, primary),
                        self.startup_timeout,
                        self._describe,
                    )
                self.sentinel.start()
            self.wait_ready(self.startup_timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                _stop_each([*self._nodes, self.sentinel])
            raise
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until the set is ready for clients and for a :meth:`failover`.

        That is: the sentinel names one of the nodes as primary, is not failing over, and lists
        the other node as a connected replica; the primary answers ``ROLE`` as master; the other
        node replicates from it with its link up.
        """

        def ready() -> bool:
            primary = self.primary_node()
            replica = self._other(primary)
            if _role(primary) != "master" or not self._replicating(replica, primary):
                return False
            if self.sentinel.primary_state().get("flags") != "master":
                return False
            return any(
                entry.get("port") == str(replica.port) and entry.get("flags") == "slave"
                for entry in self.sentinel.replicas()
            )

        _wait_for(f"{self!r} to be ready", ready, timeout, self._describe)

    def primary_address(self) -> tuple[str, int]:
        """The primary's ``(host, port)``, asked from the sentinel."""
        return self.sentinel.primary_address()

    def primary_node(self) -> RedisServer:
        """The data node the sentinel currently reports as primary."""
        host, port = self.primary_address()
        for node in self._nodes:
            if (node.host, node.port) == (host, port):
                return node
        raise RuntimeError(f"the sentinel reports {host}:{port} as primary, which is none of {self._nodes}")

    def replica_node(self) -> RedisServer:
        """The data node that is not the primary."""
        return self._other(self.primary_node())

    def failover(self, timeout: float = 15.0) -> RedisServer:
        """Have the sentinel promote the replica (``SENTINEL FAILOVER``); return the new primary.

        Returns once the sentinel reports the new primary, which answers ``ROLE`` as master, and
        the set is ready again (:meth:`wait_ready`), so failovers can follow each other.  The old
        primary is turned into a replica here (``REPLICAOF``): the sentinel would do the same, but
        only some 8 s after it noticed the old primary, plus up to 10 s for its next poll.
        """
        old = self.primary_node()
        new = self._other(old)
        reply = self.sentinel.command("SENTINEL", "FAILOVER", self.service_name)
        if reply != "OK":
            raise RuntimeError(f"SENTINEL FAILOVER {self.service_name} answered {reply!r}")
        _wait_for(
            f"the sentinel to promote {new!r}",
            lambda: self.primary_address() == (new.host, new.port) and _role(new) == "master",
            timeout,
            self._describe,
        )
        old.command("REPLICAOF", new.host, new.port)
        self.wait_ready(timeout)
        return new

    def flush(self) -> None:
        """``FLUSHALL`` on the primary, and wait (up to 2 s) until the replica has applied it too."""
        primary = self.primary_node()
        # WAIT counts the acknowledgements of this connection's writes, so it shares the connection.
        _redis_call(primary.host, primary.port, primary.password, [("FLUSHALL",), ("WAIT", 1, 2000)], 5.0)

    def stop(self) -> None:
        """Stop the sentinel and both data nodes (idempotent)."""
        _stop_each([self.sentinel, *self._nodes])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} nodes={self._nodes!r} sentinel={self.sentinel!r}>"

    def _other(self, node: RedisServer) -> RedisServer:
        first, second = self._nodes
        return second if node is first else first

    @staticmethod
    def _replicating(replica: RedisServer, primary: RedisServer) -> bool:
        info = replica.info("replication")
        return (
            info.get("role") == "slave"
            and info.get("master_port") == str(primary.port)
            and info.get("master_link_status") == "up"
        )

    def _describe(self) -> str:
        lines = []
        for server in (*self._nodes, self.sentinel):
            try:
                if server is self.sentinel:
                    view = [self.sentinel.primary_state(), *self.sentinel.replicas()]
                    state = "; ".join(f"{d.get('name')} flags={d.get('flags')}" for d in view)
                else:
                    state = ", ".join(f"{k}={v}" for k, v in server.info("replication").items())
            except (OSError, ValueError, RespError, RuntimeError) as exc:
                state = repr(exc)
            lines.append(f"{server!r}: {state}\n  log {server.log_path}:\n{server.log_tail(8)}")
        return "\n".join(lines)


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


#: Item size limit (``-I``) of the test memcached servers: 2 MiB, so that a 1 MiB value plus the
#: library's header fits (memcached's own default is 1 MiB, header included).
DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT = 2 * 1024 * 1024


class MemcachedServer(_ServerProcess):
    """A throw-away ``memcached``: loopback only, UDP off, 64 MB of memory.

    ``item_size_limit`` is the largest item in bytes (``-I``; 2 MiB unless told otherwise).
    ``extra_args`` are appended to the command line verbatim (e.g. ``["-c", "64"]``); they may not
    set the item size, so that :attr:`item_size_limit` stays true.
    """

    binary = "memcached"

    def __init__(
        self,
        *,
        item_size_limit: int = DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT,
        extra_args: Sequence[str] = (),
        tmpdir: Path | None = None,
    ) -> None:
        super().__init__(extra_args=extra_args, tmpdir=tmpdir)
        if any(arg == "-I" or arg.startswith("--max-item-size") for arg in self.extra_args):
            raise ValueError("set the item size with item_size_limit=, not with -I in extra_args")
        #: Largest item memcached accepts, in bytes (key, flags and value together).
        self.item_size_limit: int = item_size_limit

    def command_line(self, port: int) -> list[str]:
        """Return the ``memcached`` argv for ``port``."""
        argv = [self._resolve_binary(), "-l", self.host, "-p", str(port), "-U", "0", "-m", "64"]
        argv += ["-I", str(self.item_size_limit)]
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


def memcached_url(servers: Sequence[MemcachedServer]) -> str:
    """``memcached://127.0.0.1:P1,127.0.0.1:P2,...`` for a client of several memcached nodes."""
    if not servers:
        raise ValueError("memcached_url() needs at least one server")
    return "memcached://" + ",".join(server.address for server in servers)


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

#: Password of the ``redis_password_server`` fixture.
REDIS_TEST_PASSWORD = "s3cret-pw"


class RedisServerFactory(Protocol):
    """Type of the ``redis_server_factory`` fixture: each call starts one more server."""

    def __call__(
        self, *, password: str | None = None, tls: bool = False, extra_args: Sequence[str] = ()
    ) -> RedisServer:
        """Start and return a new :class:`RedisServer`; it is stopped at test teardown."""
        ...


class MemcachedServerFactory(Protocol):
    """Type of the ``memcached_server_factory`` fixture: each call starts one more server."""

    def __call__(
        self, *, item_size_limit: int = DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT, extra_args: Sequence[str] = ()
    ) -> MemcachedServer:
        """Start and return a new :class:`MemcachedServer`; it is stopped at test teardown."""
        ...


class RedisClusterFactory(Protocol):
    """Type of the ``redis_cluster_factory`` fixture: each call starts one more cluster."""

    def __call__(self, *, primaries: int = 3) -> RedisCluster:
        """Start and return a new :class:`RedisCluster`; it is stopped at test teardown."""
        ...


class RedisSentinelFactory(Protocol):
    """Type of the ``redis_sentinel_factory`` fixture: each call starts one more sentinel set."""

    def __call__(self, *, service_name: str = "mymaster") -> RedisSentinelSet:
        """Start and return a new :class:`RedisSentinelSet`; it is stopped at test teardown."""
        ...


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One ``redis-server`` shared by the whole session (no password).

    Shared state: call ``redis_server.flush()`` where isolation matters, and never kill or stop it
    from a test; fault tests use ``redis_server_factory`` instead.  The same rules hold for every
    session fixture below.
    """
    require_binary("redis-server")
    with RedisServer(tmpdir=tmp_path_factory.mktemp("redis-session")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A session ``redis-server`` requiring :data:`REDIS_TEST_PASSWORD`; its ``url`` carries it."""
    require_binary("redis-server")
    tmpdir = tmp_path_factory.mktemp("redis-password-session")
    with RedisServer(password=REDIS_TEST_PASSWORD, tmpdir=tmpdir) as server:
        yield server


@pytest.fixture(scope="session")
def redis_trio(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RedisServer, RedisServer, RedisServer]]:
    """Three independent session ``redis-server`` processes (the sharded backend's nodes)."""
    require_binary("redis-server")
    servers = [RedisServer(tmpdir=tmp_path_factory.mktemp(f"redis-trio-{i}")) for i in range(3)]
    try:
        for server in servers:
            server.start()
        yield (servers[0], servers[1], servers[2])
    finally:
        _stop_each(servers)


@pytest.fixture(scope="session")
def redis_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A session ``redis-server`` with ``tls=True``: plain ``url`` plus ``tls_url``/``tls_port``."""
    require_binary("redis-server")
    with RedisServer(tls=True, tmpdir=tmp_path_factory.mktemp("redis-tls-session")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A session :class:`RedisCluster` of three primaries; ``redis_cluster.flush()`` empties it."""
    require_binary("redis-server")
    require_binary("redis-cli")
    with RedisCluster(tmpdir=tmp_path_factory.mktemp("redis-cluster-session")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSet]:
    """A session :class:`RedisSentinelSet` (service ``mymaster``).

    Never fail it over from a test (the next test would find the roles swapped): tests that call
    ``failover()`` or kill nodes use ``redis_sentinel_factory``.
    """
    require_binary("redis-server")
    with RedisSentinelSet(tmpdir=tmp_path_factory.mktemp("redis-sentinel-session")) as sentinel_set:
        yield sentinel_set


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemcachedServer]:
    """One ``memcached`` (2 MiB item size limit) shared by the whole session; see ``redis_server``."""
    require_binary("memcached")
    with MemcachedServer(tmpdir=tmp_path_factory.mktemp("memcached-session")) as server:
        yield server


@pytest.fixture(scope="session")
def memcached_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MemcachedServer, MemcachedServer]]:
    """Two independent session ``memcached`` nodes; ``memcached_url(memcached_pair)`` names both."""
    require_binary("memcached")
    pair = (
        MemcachedServer(tmpdir=tmp_path_factory.mktemp("memcached-pair-session")),
        MemcachedServer(tmpdir=tmp_path_factory.mktemp("memcached-pair-session")),
    )
    try:
        for server in pair:
            server.start()
        yield pair
    finally:
        _stop_each(pair)


@pytest.fixture
def redis_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerFactory]:
    """Start private ``redis-server`` processes for one test; all are stopped at its teardown."""
    require_binary("redis-server")
    started: list[RedisServer] = []

    def make(
        *, password: str | None = None, tls: bool = False, extra_args: Sequence[str] = ()
    ) -> RedisServer:
        server = RedisServer(
            password=password, tls=tls, extra_args=extra_args, tmpdir=tmp_path_factory.mktemp("redis")
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

    def make(
        *, item_size_limit: int = DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT, extra_args: Sequence[str] = ()
    ) -> MemcachedServer:
        server = MemcachedServer(
            item_size_limit=item_size_limit,
            extra_args=extra_args,
            tmpdir=tmp_path_factory.mktemp("memcached"),
        )
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        _stop_each(started)


@pytest.fixture
def redis_cluster_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterFactory]:
    """Start private :class:`RedisCluster` instances for one test (~2 s each); stopped at teardown.

    For fault tests: ``kill()``/``restart()`` a node, then ``cluster.wait_ok()``.
    """
    require_binary("redis-server")
    require_binary("redis-cli")
    started: list[RedisCluster] = []

    def make(*, primaries: int = 3) -> RedisCluster:
        cluster = RedisCluster(primaries=primaries, tmpdir=tmp_path_factory.mktemp("redis-cluster"))
        started.append(cluster)
        return cluster.start()

    try:
        yield make
    finally:
        _stop_each([node for cluster in started for node in cluster.nodes])


@pytest.fixture
def redis_sentinel_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelFactory]:
    """Start private :class:`RedisSentinelSet` instances for one test; stopped at teardown.

    For tests that call ``failover()`` or kill nodes.
    """
    require_binary("redis-server")
    started: list[RedisSentinelSet] = []

    def make(*, service_name: str = "mymaster") -> RedisSentinelSet:
        sentinel_set = RedisSentinelSet(
            service_name=service_name, tmpdir=tmp_path_factory.mktemp("redis-sentinel")
        )
        started.append(sentinel_set)
        return sentinel_set.start()

    try:
        yield make
    finally:
        _stop_each([proc for s in started for proc in (s.sentinel, *s.nodes)])

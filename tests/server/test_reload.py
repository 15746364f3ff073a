"""Changing a running server's configuration: SIGHUP re-reads --config (on a real
``stratacache serve`` process), CONFIG SET/GET of the store options, CONFIG REWRITE writing
the running configuration back to its file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from respclient import HOST, Err, RespConn

from servers import free_port
from stratacache.server import ServerThread, load_config
from stratacache.server.config import OPTIONS, ServerConfig
from stratacache.server.reload import apply_new_config, rewrite_text

# ---------------------------------------------------------------------- SIGHUP


class Served:
    """A ``stratacache serve --config FILE`` subprocess, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.config = config
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stratacache.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline()
        assert f":{self.port}" in banner, banner + log.read_text()
        self.client = redis.Redis(host=HOST, port=self.port, decode_responses=True)

    def hup_and_wait_for(self, text: str, timeout: float = 10.0) -> str:
        """Send SIGHUP, then wait until ``text`` appears in the log after it; the new log."""
        start = len(self.log.read_text())
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tail = self.log.read_text()[start:]
            if text in tail:
                return tail
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not logged after SIGHUP; log:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        self._log_file.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[str], Served]]:
    started: list[Served] = []

    def start(text: str) -> Served:
        path = tmp_path / "server.yaml"
        path.write_text(text)
        running = Served(path, tmp_path / "server.log")
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


FIRST = """\
# the first configuration
maxmemory: 8mb
maxmemory-policy: allkeys-lru
timeout: 0
stores:
  1:
    max_entries: 100
"""


def test_sighup_applies_limits_and_policies_and_reports_the_rest(served: Callable[[str], Served]) -> None:
    server = served(FIRST)
    r = server.client
    r.select(1)  # type: ignore[no-untyped-call]
    for i in range(20):
        r.set(f"k{i}", "v")
    assert r.dbsize() == 20
    assert r.config_get("maxmemory") == {"maxmemory": str(8 * 1024 * 1024)}
    server.config.write_text(
        FIRST.replace("8mb", "16mb")
        .replace("allkeys-lru", "allkeys-lfu")
        .replace("max_entries: 100", "max_entries: 5\n    policy: lfu")
        .replace("timeout: 0", "timeout: 300\ndatabases: 4\nport: 1")
    )
    log = server.hup_and_wait_for("configuration reloaded")
    assert r.config_get("maxmemory") == {"maxmemory": str(16 * 1024 * 1024)}
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lfu"}
    assert r.config_get("timeout") == {"timeout": "300"}
    info = r.info("memory")
    assert (info["maxmemory"], info["maxmemory_policy"]) == (16 * 1024 * 1024, "allkeys-lfu")
    assert r.config_get("store.1.*") == {
        "store.1.max-entries": "5",
        "store.1.max-bytes": "0",
        "store.1.policy": "lfu",
    }
    assert r.dbsize() == 5  # the store was shrunk to its new limit at once
    # Restart-only options are reported and keep their running values; the command line's
    # --port keeps precedence over the file's, as at start.
    assert "databases" in log
    assert "only take effect on a restart" in log
    assert "port" not in log.split("only take effect")[0].split("SIGHUP:")[-1]
    assert r.config_get("databases") == {"databases": "16"}
    assert r.config_get("port") == {"port": str(server.port)}
    assert r.ping()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("maxmemory: [1\n", "not valid YAML"),
        ("maxmemory: 12 parsecs\n", "maxmemory: '12 parsecs' is not a size"),
        ("stores:\n  1: {policy: nosuch}\n", "stores.1.policy: 'nosuch'"),
        ("colour: blue\n", "unknown option 'colour'"),
    ],
)
def test_sighup_with_a_bad_file_changes_nothing(
    served: Callable[[str], Served], text: str, error: str
) -> None:
    server = served(FIRST)
    r = server.client
    server.config.write_text(text)
    log = server.hup_and_wait_for("configuration not reloaded")
    assert error in log
    assert str(server.config) in log
    assert r.config_get("maxmemory") == {"maxmemory": str(8 * 1024 * 1024)}
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert r.config_get("store.1.max-entries") == {"store.1.max-entries": "100"}
    # A good file after a bad one applies.
    server.config.write_text(FIRST.replace("8mb", "9mb"))
    server.hup_and_wait_for("configuration reloaded")
    assert r.config_get("maxmemory") == {"maxmemory": str(9 * 1024 * 1024)}


def test_sighup_without_a_config_file_is_logged(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stratacache.cli", "serve", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            proc.stdout.readline()
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "nothing to reload" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert "nothing to reload" in log.read_text()
            assert proc.poll() is None  # SIGHUP's default action would have killed it
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)


def test_apply_is_all_or_nothing_when_a_store_is_missing(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(maxmemory="8mb", databases=2)
    assert running.server is not None
    new = ServerConfig(maxmemory=1 << 20, databases=2)
    new.stores = {5: new.store_for(5)}
    errors: list[Exception] = []

    def apply() -> None:
        try:
            assert running.server is not None
            apply_new_config(running.server, new)
        except Exception as exc:
            errors.append(exc)

    running.call(apply)
    assert len(errors) == 1
    assert "stores.5: no such database" in str(errors[0])
    assert running.server.config.maxmemory == 8 * 1024 * 1024


# ------------------------------------------------------------------ CONFIG SET


@pytest.fixture
def conn(server_factory: Callable[..., ServerThread]) -> Iterator[tuple[ServerThread, RespConn]]:
    running = server_factory(maxmemory="8mb", stores={3: {"type": "ttl-only"}, 4: {"type": "session"}})
    client = RespConn(running.port)
    yield running, client
    client.close()


def test_config_set_store_limits_and_policy(conn: tuple[ServerThread, RespConn]) -> None:
    running, client = conn
    assert running.server is not None
    assert client.call("CONFIG", "GET", "store.0.*") == [
        b"store.0.max-entries",
        b"0",
        b"store.0.max-bytes",
        b"0",
        b"store.0.policy",
        b"",
    ]
    for i in range(30):
        client.call("SET", f"k{i}", "v" * 10)
    assert client.call("CONFIG", "SET", "store.0.max-entries", "10", "store.0.policy", "lfu") == "OK"
    store = running.server.databases[0].store
    assert (store.max_entries, store.policy_name) == (10, "lfu")
    assert client.call("DBSIZE") == 10
    assert client.call("CONFIG", "SET", "store.0.max-bytes", "2kb", "store.0.max-entries", "0") == "OK"
    store = running.server.databases[0].store
    assert (store.max_entries, store.max_bytes) == (None, 2048)
    assert client.call("CONFIG", "GET", "store.0.max-*") == [
        b"store.0.max-entries",
        b"0",
        b"store.0.max-bytes",
        b"2048",
    ]
    assert client.call("CONFIG", "SET", "store.0.policy", "") == "OK"  # back to maxmemory-policy's
    assert running.server.databases[0].store.policy_name == "lru"
    assert client.call("CONFIG", "GET", "store.0.policy") == [b"store.0.policy", b""]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("store.99.max-entries", "5"),
            "argument 'store.99.max-entries') - no such database 99 (databases: 16)",
        ),
        (("store.0.max-bytes", "lots"), "argument 'store.0.max-bytes') - argument must be a memory value"),
        (
            ("store.0.policy", "nosuch"),
            "argument 'store.0.policy') - unknown policy 'nosuch'; valid: fifo, lfu, lru, random, tinylfu",
        ),
        (
            ("store.3.max-entries", "5"),
            "argument 'store.3.max-entries') - a ttl-only store has no size limit",
        ),
        (("store.4.policy", "lfu"), "argument 'store.4.policy') - a session store uses lru eviction"),
        (
            ("store.0.max-entries", "1", "store.0.max-entries", "2"),
            "argument 'store.0.max-entries') - duplicate parameter",
        ),
    ],
)
def test_config_set_store_errors(
    conn: tuple[ServerThread, RespConn], args: tuple[str, ...], error: str
) -> None:
    _, client = conn
    reply = client.call("CONFIG", "SET", *args)
    assert isinstance(reply, Err)
    assert reply.message == f"ERR CONFIG SET failed (possibly related to {error}"


def test_config_set_is_all_or_nothing_with_store_options(conn: tuple[ServerThread, RespConn]) -> None:
    _, client = conn
    reply = client.call("CONFIG", "SET", "maxmemory", "1mb", "store.0.max-entries", "nope")
    assert isinstance(reply, Err)
    reply = client.call("CONFIG", "SET", "store.0.max-entries", "7", "maxmemory", "nope")
    assert isinstance(reply, Err)
    assert client.call("CONFIG", "GET", "maxmemory") == [b"maxmemory", str(8 * 1024 * 1024).encode()]
    assert client.call("CONFIG", "GET", "store.0.max-entries") == [b"store.0.max-entries", b"0"]


# -------------------------------------------------------------- CONFIG REWRITE

ORIGINAL = """\
# My cache server: comments and order are mine.
port: 0
maxmemory: 8mb   # small on purpose
maxmemory_policy: allkeys-lru

timeout: 0
stores:
  1:
    max_entries: 100   # sessions
users:
  reader: {password: pw, readonly: yes}  # read-only dashboards
"""


def test_config_rewrite_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(ORIGINAL)
    with ServerThread(load_config(path)) as running:
        r = redis.Redis(host=HOST, port=running.port, decode_responses=True)
        try:
            r.config_set("maxmemory", "16mb")
            r.config_set("maxmemory-policy", "allkeys-lfu")
            r.config_set("hz", "20")
            r.config_set("store.1.max-entries", "50")
            r.config_set("store.2.policy", "fifo")
            assert r.config_rewrite()
            running_config = running.server.config if running.server else None
        finally:
            r.close()
    assert running_config is not None
    text = path.read_text()
    lines = text.splitlines()
    # Unchanged keys keep their lines (comments included); changed ones are replaced in place.
    assert lines[0] == "# My cache server: comments and order are mine."
    assert lines[1] == f"port: {running_config.port}"  # the port the OS picked for port 0
    assert lines[2] == f"maxmemory: {16 * 1024 * 1024}"
    assert lines[3] == "maxmemory_policy: allkeys-lfu"  # the user's spelling of the key
    assert lines[4:6] == ["", "timeout: 0"]
    assert "users:\n  reader: {password: pw, readonly: yes}  # read-only dashboards\n" in text
    assert text.index("stores:") < text.index("users:")
    assert "# Generated by CONFIG REWRITE\nhz: 20\n" in text
    # The file loads back to the running configuration.
    loaded = load_config(path)
    for option in OPTIONS.values():
        assert getattr(loaded, option.attr) == getattr(running_config, option.attr), option.name
    assert loaded.store_for(1).max_entries == 50
    assert loaded.store_for(2).policy == "fifo"
    assert loaded.users == running_config.users
    # Nothing left behind by the atomic write.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.yaml"]


def test_config_rewrite_keeps_the_file_when_nothing_changed(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(ORIGINAL.replace("port: 0", "port: 7379"))
    config = load_config(path)
    assert rewrite_text(path.read_text(), config) == path.read_text()


def test_config_rewrite_without_a_config_file(ours: ServerThread, client: RespConn) -> None:
    assert client.call("CONFIG", "REWRITE") == Err("ERR The server is running without a config file")


def test_config_rewrite_reports_an_unwritable_file(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("port: 0\n")
    with ServerThread(load_config(path)) as running:
        client = RespConn(running.port)
        try:
            path.unlink()
            reply: Any = client.call("CONFIG", "REWRITE")
        finally:
            client.close()
    assert isinstance(reply, Err)
    assert reply.message.startswith("ERR Rewriting config file: ")


def test_rewrite_text_replaces_a_block_value() -> None:
    config = ServerConfig(bind=("127.0.0.1",), port=7400)
    text = "bind:\n  - 127.0.0.1\n# keep me\nport: 7400\n"
    out = rewrite_text(text, config)
    assert yaml.safe_load(out)["port"] == 7400
    assert out == text  # the list means the same bind: untouched
    config.bind = ("0.0.0.0",)
    out = rewrite_text(text, config)
    assert out == "bind: 0.0.0.0\n# keep me\nport: 7400\n"

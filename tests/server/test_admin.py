"""The admin HTTP port: /metrics parsed by prometheus_client's own parser after real redis-py
traffic, /health, /ready (503 while loading), /stats JSON, and what a bad request gets, on a
server of its own (``admin-port``), through real sockets."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
import redis
from cliproc import banner, finish, serve
from prometheus_client.parser import text_string_to_metric_families
from respclient import HOST

from servers import free_port
from stratacache.server import ServerThread


@pytest.fixture
def admin(server_factory: Callable[..., ServerThread]) -> tuple[ServerThread, int]:
    """A server with its admin port (stopped by server_factory): (the server, the port)."""
    port = free_port()
    running = server_factory(admin_port=port, maxmemory="64mb")
    return running, port


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request (error statuses included)."""
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed with prometheus_client: (sample name, sorted labels) -> value."""
    status, headers, body = get(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def db(n: int) -> tuple[tuple[str, str], ...]:
    return (("db", str(n)),)


def cmd(name: str) -> tuple[tuple[str, str], ...]:
    return (("command", name),)


def test_metrics_counters_move_with_redis_traffic(admin: tuple[ServerThread, int]) -> None:
    server, port = admin
    before = scrape(port)
    assert before[("stratacache_store_hits_total", db(0))] == 0
    assert before[("stratacache_pool_limit_bytes", ())] == 64 * 1024 * 1024
    r = redis.Redis(host=HOST, port=server.port)
    r2 = redis.Redis(host=HOST, port=server.port, db=2)
    try:
        r.set("a", "1")
        r.set("b", "x" * 1000)
        for _ in range(130):  # one call in 128 is timed: at least one sample of GET
            assert r.get("a") == b"1"
        assert r.get("missing") is None
        r2.set("c", "3")
        assert r2.get("c") == b"3"
        assert r2.get("nope") is None
        assert r2.get("nope2") is None
        r.set("short", "v", px=1)
        time.sleep(0.05)
        assert r.get("short") is None  # read past its deadline: an expiration and a miss
        after = scrape(port)
        blocked_clients = after[("stratacache_blocked_clients", ())]
        connected = after[("stratacache_connected_clients", ())]
    finally:
        r.close()
        r2.close()

    def delta(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after[(name, labels)] - before.get((name, labels), 0.0)

    assert delta("stratacache_store_hits_total", db(0)) == 130
    assert delta("stratacache_store_misses_total", db(0)) == 2
    assert delta("stratacache_store_hits_total", db(2)) == 1
    assert delta("stratacache_store_misses_total", db(2)) == 2
    assert delta("stratacache_keyspace_hits_total") == 131
    assert delta("stratacache_keyspace_misses_total") == 4
    assert delta("stratacache_store_expirations_total", db(0)) == 1
    assert after[("stratacache_store_keys", db(0))] == 2
    assert after[("stratacache_store_keys", db(2))] == 1
    assert after[("stratacache_store_memory_bytes", db(0))] > 1000
    assert after[("stratacache_pool_used_bytes", ())] == sum(
        after[("stratacache_store_memory_bytes", db(i))] for i in range(16)
    )
    assert after[("stratacache_pool_pressure_level", ())] == 0
    assert delta("stratacache_commands_total", cmd("get")) == 135
    assert delta("stratacache_commands_total", cmd("set")) == 4
    assert delta("stratacache_commands_processed_total") >= 139
    assert delta("stratacache_command_latency_seconds_count", cmd("get")) >= 1
    assert (
        after[("stratacache_command_latency_seconds_bucket", (("command", "get"), ("le", "+Inf")))]
        == (after[("stratacache_command_latency_seconds_count", cmd("get"))])
    )
    assert after[("stratacache_command_latency_seconds_sum", cmd("get"))] > 0
    assert connected >= 2
    assert blocked_clients == 0
    assert delta("stratacache_connections_received_total") >= 2
    assert after[("stratacache_uptime_seconds", ())] > 0
    # INFO persistence's fields, whatever they are on this build, as gauges.
    assert after[("stratacache_persistence_loading", ())] == 0
    assert after[("stratacache_persistence_rdb_last_bgsave_status", ())] == 1  # "ok"
    assert after[("stratacache_loading", ())] == 0


def test_evictions_and_store_limits_show(admin: tuple[ServerThread, int]) -> None:
    server, port = admin
    r = redis.Redis(host=HOST, port=server.port, db=1)
    try:
        assert r.config_set("store.1.max-entries", 10)
        for i in range(25):
            r.set(f"k{i}", "v")
    finally:
        r.close()
    samples = scrape(port)
    assert samples[("stratacache_store_evictions_total", db(1))] == 15
    assert samples[("stratacache_store_keys", db(1))] == 10
    assert samples[("stratacache_store_max_entries", db(1))] == 10
    assert samples[("stratacache_store_max_entries", db(0))] == 0


def test_config_resetstat_zeroes_the_store_counters_and_latency(admin: tuple[ServerThread, int]) -> None:
    server, port = admin
    r = redis.Redis(host=HOST, port=server.port)
    try:
        r.set("a", "1")
        for _ in range(130):
            r.get("a")
        r.get("b")
        assert scrape(port)[("stratacache_store_hits_total", db(0))] == 130
        assert r.config_resetstat()
    finally:
        r.close()
    samples = scrape(port)
    assert samples[("stratacache_store_hits_total", db(0))] == 0
    assert samples[("stratacache_store_misses_total", db(0))] == 0
    assert ("stratacache_command_latency_seconds_count", cmd("get")) not in samples


def test_stats_json_has_the_same_numbers(admin: tuple[ServerThread, int]) -> None:
    server, port = admin
    r = redis.Redis(host=HOST, port=server.port)
    try:
        r.set("a", "1")
        r.get("a")
        r.get("a")
        r.get("b")
    finally:
        r.close()
    status, headers, body = get(port, "/stats")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    stats = json.loads(body)
    assert stats["keyspace"] == {"hits": 2, "misses": 1, "hit_ratio": pytest.approx(2 / 3)}
    assert stats["stores"][0]["keys"] == 1
    assert stats["stores"][0]["hits"] == 2
    assert stats["memory"]["maxmemory"] == 64 * 1024 * 1024
    assert stats["memory"]["pressure_level"] == "normal"
    assert stats["commands"]["get"]["calls"] >= 3
    assert stats["loading"] is False
    assert stats["persistence"]["loading"] == "0"
    samples = scrape(port)
    assert samples[("stratacache_keyspace_hits_total", ())] == stats["keyspace"]["hits"]


def test_health_and_ready_follow_loading(admin: tuple[ServerThread, int]) -> None:
    server, port = admin
    assert get(port, "/health")[::2] == (200, b"ok\n")
    assert get(port, "/ready")[::2] == (200, b"ready\n")
    # Loading (the persistence helpers' Server.loading): not ready, still healthy.
    server.call(lambda: setattr(server.server, "loading", True))
    try:
        assert get(port, "/ready")[::2] == (503, b"loading\n")
        assert get(port, "/health")[0] == 200
        assert scrape(port)[("stratacache_loading", ())] == 1
        assert json.loads(get(port, "/stats")[2])["loading"] is True
    finally:
        server.call(lambda: setattr(server.server, "loading", False))
    assert get(port, "/ready")[0] == 200


def test_unknown_paths_and_methods(admin: tuple[ServerThread, int]) -> None:
    _, port = admin
    assert get(port, "/nope")[0] == 404
    status, headers, _ = get(port, "/metrics", method="POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert get(port, "/stats", method="DELETE")[0] == 405
    status, headers, body = get(port, "/health", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "3")
    assert get(port, "/metrics?name=x")[0] == 200  # a query string is ignored
    status, headers, body = get(port, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'id="hit-ratio"' in body
    assert get(port, "/dashboard")[2] == body


def test_keep_alive_serves_several_requests_on_one_connection(admin: tuple[ServerThread, int]) -> None:
    _, port = admin
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for path in ("/health", "/stats", "/metrics", "/ready"):
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200
            response.read()
            assert response.getheader("Connection") == "keep-alive"
    finally:
        conn.close()


def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/2.0\r\n\r\n",
        b"GET /health\r\n\r\n",
        b"GET http://example.com/health HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nX: " + b"y" * 10000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
        b"\x00\xff\x16\x03\x01binary\r\n\r\n",
    ],
)
def test_bad_requests_get_400_and_are_closed(admin: tuple[ServerThread, int], request_bytes: bytes) -> None:
    server, port = admin
    reply = raw(port, request_bytes)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]
    assert b"Connection: close" in reply
    # The server is none the worse: both ports still answer.
    assert get(port, "/health")[0] == 200
    r = redis.Redis(host=HOST, port=server.port)
    try:
        assert r.ping()
    finally:
        r.close()


def test_too_many_admin_connections_get_503(admin: tuple[ServerThread, int]) -> None:
    from stratacache.server.admin.http import MAX_CONNECTIONS

    _, port = admin
    idle = [socket.create_connection((HOST, port), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        # Each idle one holds a connection slot (the server reads its first line).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = raw(port, b"GET /health HTTP/1.1\r\n\r\n")
            if reply.startswith(b"HTTP/1.1 503"):
                break
            time.sleep(0.05)
        assert reply.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), reply[:100]
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while get(port, "/health")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(port, "/health")[0] == 200


def test_truncated_requests_and_resets_do_not_hurt(admin: tuple[ServerThread, int]) -> None:
    server, port = admin
    for data in (b"GET /metr", b"GET /metrics HTTP/1.1\r\nHost: x\r\n", b""):
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(data)
    with socket.create_connection((HOST, port), timeout=10) as sock:
        # A reset (SO_LINGER 0) in the middle of a request.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET /stats HTTP/1.1\r\n")
    assert get(port, "/health")[0] == 200
    assert server.server is not None
    assert server.server.admin.requests >= 1


def test_admin_port_is_off_by_default(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory()
    assert running.server is not None
    assert running.server.admin is None
    assert running.server.config.get("admin-port") == "0"
    assert running.server.config.get("admin-bind") == "127.0.0.1"


def test_admin_port_taken_fails_the_start(server_factory: Callable[..., ServerThread]) -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(OSError):
            server_factory(admin_port=taken)


def test_admin_port_from_the_command_line() -> None:
    port, admin_port = free_port(), free_port()
    proc = serve("--port", str(port), "--admin-port", str(admin_port))
    try:
        banner(proc)
        assert get(admin_port, "/health")[0] == 200
        assert get(admin_port, "/ready")[0] == 200
    finally:
        finish(proc, signal.SIGTERM)

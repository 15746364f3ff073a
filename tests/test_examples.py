"""Every program in examples/ runs, against the test servers, and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# example -> (the servers it needs, lines its output must contain)
EXPECTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "quickstart_sync.py": (
        (),
        (
            "get user:1 -> {'name': 'Ada'}",
            "add lock   -> True False",
            "get_or_set -> ['report', 'report', 'report']",
        ),
    ),
    "quickstart_async.py": ((), ("10 callers got {'id': 7}; the loader ran 1 time(s)",)),
    "decorators.py": ((), ("after invalidate: [1, 1, 1]", "async: [16, 16, 16, 16, 16]")),
    "memory_policies.py": ((), ("tinylfu  hit rate",)),
    "testing_with_fake_clock.py": ((), ("after 59 s   -> user-for-abc", "after 61 s   -> <expired>")),
    "file_cache.py": ((), ("another process read -> {'written by': 'parent'}", "100000 bytes; 2 items")),
    "redis_cache.py": (("redis",), ("deleted    -> 5 keys (SCAN + UNLINK)",)),
    "memcached_cache.py": (
        ("memcached",),
        ("delete_pattern -> backend 'memcached'", "after clear -> <miss>"),
    ),
    "layered.py": (("redis",), ("in Redis    -> {'feature': True}", "layered get -> {'feature': True}")),
    "data_sources.py": (
        ("redis",),
        (
            "warm        -> loaded 20, failed 0, skipped 0",
            "source after -> {'id': 3, 'name': 'renamed 3'}",
            "refused write -> store user:7 | cached: {'id': 7, 'name': 'Grace'}",
            "after reload  -> 1.09 | background reloads: 1",
        ),
    ),
    "server_embedded.py": ((), ("stratacache get -> hello", "redis-py get    -> b'set by redis-py'")),
    "verbs_cas.py": (
        ("redis",),
        (
            "orders      -> 40 wanted, 30 sold,",
            "stock now   -> {'units': 0, 'sold': 30}",
            "second pull -> <already used>",
            "stale CAS   -> False",
        ),
    ),
    "tags.py": (
        ("redis",),
        (
            "after invalidate -> {'user:7:profile': {'name': 'Grace', 'posts': 9}}",
            "raced load       -> <miss: loaded before the update>",
            "clean load       -> {'name': 'Ada L.', 'posts': 3}",
        ),
    ),
    # The SWR round's "builds seen" depend on timing (a late caller may see the new build).
    "stampede.py": (
        ("redis",),
        (
            "cold key, lease:    loader ran 1 time(s); builds seen [1, 1, 1, 1]",
            "stale key, SWR:     loader ran 1 time(s);",
        ),
    ),
    "django_app.py": (
        ("redis",),
        (
            "catalogue   -> {'products': ['tea', 'coffee'], 'render': 1} (2 requests, view ran 1 time(s))",
            "product     -> {'sku': 'tea', 'price': 1250, 'views': 3}",
            "stratacache -> {'sku': 'tea', 'price': 1250} ttl 120",
        ),
    ),
    "fastapi_app.py": (
        ("redis",),
        (
            "GET /items/7 -> {'item': 7, 'price': 700} | X-Cache: ['MISS', 'HIT']",
            "If-None-Match -> 304",
            "no-cache     -> MISS | endpoint ran 2 time(s)",
            "GET /stats   -> [1, 2, 3] (not cached)",
        ),
    ),
    "flask_app.py": (
        ("redis",),
        (
            "(view ran 2 times for 3 requests)",
            "memoize      -> [700, 700, 800] (function ran 2 times)",
            "after delete -> 700 (function ran 3 times)",
        ),
    ),
    "otel_tracing.py": (
        ("redis",),
        (
            "span 'get otel-example'       redis  UNSET {'stratacache.cache.hit': True}",
            "span 'get_many otel-example'  redis  UNSET {'db.operation.batch.size': 3}",
            "span 'incr otel-example'      redis  ERROR {'error.type': 'WrongType'}",
            "metric stratacache.cache.lookups hit=False: 3",
        ),
    ),
    "prometheus.py": (
        ("redis",),
        (
            'stratacache_hits_total{backend="redis",cache="pages",namespace="pages"} 2.0',
            'stratacache_misses_total{backend="redis",cache="pages",namespace="pages"} 1.0',
            'stratacache_evictions_total{backend="memory",cache="sessions",namespace=""} 2.0',
            'stratacache_backend_up{backend="redis",cache="pages",namespace="pages"} 1.0',
        ),
    ),
    "rate_limit.py": (
        ("redis",),
        (
            "burst of 7  -> ['ok', 'ok', 'ok', 'ok', 'ok', '429', '429']",
            "after wait  -> True",
            "export x3   -> ['report-42.csv', 'report-42.csv', '429 (retry after",
            "after reset -> report-42.json",
        ),
    ),
    "typed.py": (
        ("redis",),
        (
            "typed get      -> User(id=1, name='Ada', address=Address(city='London', country='UK'),",
            "invalid        -> key 'user:3': the stored value is not a valid User",
            "on_invalid     -> <miss> | still stored: False",
            "pydantic check -> key 'sku:2': the stored value is not a valid Product",
        ),
    ),
}


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    servers, lines = EXPECTED[name]
    env = {**os.environ}
    if "redis" in servers:
        env["STRATACACHE_REDIS_URL"] = request.getfixturevalue("redis_server").url
    if "memcached" in servers:
        env["STRATACACHE_MEMCACHED_URL"] = request.getfixturevalue("memcached_server").url
    result: Any = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,  # anything an example leaves behind lands in the scratch directory
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for line in lines:
        assert line in result.stdout, result.stdout

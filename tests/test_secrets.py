"""No secret in any repr, str, error message, log line or stats (issue 13, defect 3).

A canary password (with the URL delimiters ``#``, ``/`` and ``?`` in it), a canary signing
key and a canary encryption key are given in every configuration form (URL, query
parameter, keyword, dict, YAML file, environment) to every backend, on success and on
failure (wrong password, unreachable server, bad parameter, malformed URL or file). Every
text a user or a log can see is searched for them: ``repr``/``str`` of the cache and its
backend, ``stats()``, ``health()``, each exception with its ``__cause__``/``__context__``
chain, and everything logged.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from servers import RedisServer, free_port
from stratacache import AsyncCache, Cache, CacheError, ConfigurationError
from stratacache._config import parse_url
from stratacache._redact import redact, redact_url

CANARY = "Canary-S3cret#/?"
WRONG = "Wrong-S3cret#/?&x=1"
SIGNING_KEY = "Canary-S3cret-signing"
AES_KEY = base64.b64encode(b"Canary-S3cret-AES-key-32-bytes!!").decode()
NUMERIC = 735301  # a non-string password, as YAML reads `password: 735301`
# Any of these in a text is a leak: the canaries, their percent-encoded forms, and the part
# in front of a delimiter (what a URL split at '#', '/' or '?' would leave behind).
MARKERS = ("S3cret", quote(CANARY, safe=""), AES_KEY, AES_KEY.rstrip("="), str(NUMERIC))
ENCODED = quote(CANARY, safe="")
FAST_FAIL = "connect_timeout=0.3&timeout=0.3&retries=0"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


def _texts(thing: Any) -> list[str]:
    if isinstance(thing, BaseException):
        return [text for e in _chain(thing) for text in (str(e), repr(e), repr(e.args))]
    return [thing] if isinstance(thing, str) else [str(thing), repr(thing)]


def assert_clean(*things: Any) -> None:
    """No marker in any text of ``things`` (strings, objects, exceptions with their chains)."""
    for thing in things:
        for text in _texts(thing):
            for marker in MARKERS:
                assert marker not in text, f"secret leaked: {text!r}"


def observe(cache: Cache) -> list[Any]:
    """Every text a cache shows: repr, backend, stats, health (or the errors they raise)."""
    seen: list[Any] = [cache, cache.backend]
    for call in (cache.stats, cache.health, cache.ping, lambda: cache.set("k", 1), lambda: cache.get("k")):
        try:
            seen.append(call())
        except CacheError as exc:
            seen.append(exc)
    return seen


@pytest.fixture(autouse=True)
def _all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever any logger (stratacache's, redis-py's, asyncio's) writes is checked too."""
    caplog.set_level(logging.DEBUG)
    yield
    assert_clean(caplog.text, *(r.getMessage() for r in caplog.records))


@pytest.fixture(scope="module")
def canary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server whose password is the canary."""
    with RedisServer(password=CANARY, tmpdir=tmp_path_factory.mktemp("redis-canary")) as server:
        yield server


def _yaml(tmp: Path, text: str) -> Path:
    path = tmp / f"{uuid.uuid4().hex}.yaml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ the helper itself


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{ENCODED}@h:1/0",
        f"redis://user:{ENCODED}@h:1/0",
        f"redis://:{CANARY}@h:1/0",  # unencoded: '#', '/' and '?' split it in the wrong place
        f"rediss://h:1/0?password={ENCODED}&db=1",
        f"redis+sentinel://h:1/m?sentinel_password={ENCODED}",
        f"memory://?signing_key={SIGNING_KEY}&serializer=pickle",
        f"memory://?encryption_keys={AES_KEY}",
        f"redis://h:1/0?password={CANARY}",  # unencoded in the query: the fragment is masked
        "redis://h:1/0?password=Canary&S3cret",  # malformed query: masked whole
        "sharded://?node=" + quote(f"redis://:{ENCODED}@h:1/0", safe="") + "&node=memory://",
        f"layered://?tier=memory://&tier=redis://:{ENCODED}@h:1/0",
        f"unix://:{ENCODED}@/run/redis.sock",
        f"file://u:{ENCODED}@host/tmp",
    ],
)
def test_redact_url_hides_every_secret(url: str) -> None:
    shown = redact_url(url)
    assert_clean(shown)
    assert shown.startswith(url.partition("://")[0] + "://")


def test_redact_leaves_urls_without_secrets_unchanged() -> None:
    for url in ("redis://h:1/0", "redis://user@h:1/0?db=2&namespace=x", "file:///tmp/a@b", "memory://"):
        assert redact_url(url) == url
    assert redact({"password": CANARY, "nodes": [f"redis://:{ENCODED}@h"], "db": 1})["db"] == 1
    assert_clean(repr(redact({"password": CANARY, "nodes": {f"redis://:{ENCODED}@h"}})))


# ------------------------------------------------------------------ redis, every form


def _forms(server: Any, password: str, tmp: Path) -> dict[str, Callable[[], Cache]]:
    where = f"{server.host}:{server.port}"
    encoded = quote(password, safe="")
    yaml_text = f"backend: redis\nhost: {server.host}\nport: {server.port}\npassword: '{password}'\n"
    return {
        "url": lambda: Cache(f"redis://:{encoded}@{where}/0?{FAST_FAIL}"),
        "query": lambda: Cache(f"redis://{where}/0?password={encoded}&{FAST_FAIL}"),
        "keyword": lambda: Cache(f"redis://{where}/0?{FAST_FAIL}", password=password),
        "dict": lambda: Cache.from_config(
            {"backend": "redis", "host": server.host, "port": server.port, "password": password}
        ),
        "yaml": lambda: Cache.from_file(_yaml(tmp, yaml_text)),
        "env": lambda: Cache.from_env(
            {"STRATACACHE_URL": f"redis://{where}/0", "STRATACACHE_PASSWORD": password}
        ),
    }


FORM_NAMES = ["url", "query", "keyword", "dict", "yaml", "env"]


@pytest.mark.parametrize("form", FORM_NAMES)
def test_redis_right_password_shows_none(form: str, canary_server: RedisServer, tmp_path: Path) -> None:
    with _forms(canary_server, CANARY, tmp_path)[form]() as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1
        assert_clean(*observe(cache))


@pytest.mark.parametrize("form", FORM_NAMES)
def test_redis_wrong_password_shows_none(form: str, canary_server: RedisServer, tmp_path: Path) -> None:
    cache = _forms(canary_server, WRONG, tmp_path)[form]()
    with cache:
        seen = observe(cache)
        assert not cache.health().healthy
    assert any(isinstance(s, CacheError) for s in seen)
    assert_clean(*seen)


@pytest.mark.parametrize("form", FORM_NAMES)
def test_redis_unreachable_shows_none(form: str, tmp_path: Path) -> None:
    cache = _forms(_Nowhere(), CANARY, tmp_path)[form]()
    with cache:
        seen = observe(cache)
        assert not cache.health().healthy
    assert_clean(*seen)


class _Nowhere:
    """Where no server listens."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = free_port()


# ------------------------------------------------------------------ bad configurations


BAD_CONFIGS: dict[str, Callable[[], Any]] = {
    "unencoded-url-password": lambda: Cache(f"redis://:{CANARY}@127.0.0.1:6379/0"),
    "slash": lambda: Cache("redis://:Canary-S3cret/x@127.0.0.1:6379/0"),
    "question-mark": lambda: Cache("redis://:Canary-S3cret?x@127.0.0.1:6379/0"),
    "hash": lambda: Cache("redis://:Canary-S3cret#x@127.0.0.1:6379/0"),
    "query-ampersand": lambda: Cache("redis://127.0.0.1:6379/0?password=Canary&S3cret"),
    "query-tail": lambda: Cache("redis://127.0.0.1:6379/0?password=Canary&S3cret=1"),
    "query-hash": lambda: Cache("redis://127.0.0.1:6379/0?password=Canary-S3cret#x"),
    "bad-db": lambda: Cache(f"redis://:{ENCODED}@127.0.0.1:6379/0?db=x"),
    "bad-port": lambda: Cache(f"redis://:{ENCODED}@127.0.0.1:99999/0"),
    "unknown-param": lambda: Cache(f"redis://:{ENCODED}@127.0.0.1:6379/0?colour=red"),
    "memory-with-host": lambda: Cache(f"memory://:{ENCODED}@host"),
    "file-with-host": lambda: Cache(f"file://u:{ENCODED}@host/tmp"),
    "memcached-password": lambda: Cache(f"memcached://:{ENCODED}@127.0.0.1:11211"),
    "not-a-url": lambda: Cache(f"redis:/:{ENCODED}@h"),
    "int-password": lambda: Cache.from_config({"backend": "redis", "password": NUMERIC}),
    "list-password": lambda: Cache.from_config({"backend": "redis", "password": [CANARY]}),
    "dict-sentinel-password": lambda: Cache.from_config(
        {"backend": "redis", "sentinel_password": {"x": CANARY}}
    ),
    "int-password-keyword": lambda: Cache("redis://127.0.0.1:1/0", password=NUMERIC),
    "int-signing-key": lambda: Cache("memory://", signing_key=NUMERIC),
    "empty-signing-key": lambda: Cache("memory://", serializer="pickle", signing_key=b""),
    "short-aes-key": lambda: Cache("memory://", encryption_keys=[AES_KEY[:-4]]),
    "bad-aes-key": lambda: Cache("memory://", encryption_keys=AES_KEY + "," + "!" + AES_KEY),
    "aes-not-list": lambda: Cache.from_config({"backend": "memory", "encryption_keys": 5}),
    "sharded-nodes-set": lambda: Cache("sharded://", nodes={f"redis://:{ENCODED}@h:1/0"}),
    "sharded-bad-node": lambda: Cache("sharded://", nodes=[f"redis://:{CANARY}@h:1/0", "memory://"]),
    "sharded-duplicate-node": lambda: Cache(
        "sharded://", nodes=[f"redis://:{ENCODED}@h:1/0", f"redis://:{ENCODED}@h:1/0"]
    ),
    "sharded-weight-unknown-node": lambda: Cache(
        "sharded://", nodes=["memory://", "null://"], weights={f"redis://:{ENCODED}@h": 2}
    ),
    "sharded-bad-weight": lambda: Cache("sharded://?weights=" + quote(f"redis://:{ENCODED}@h=x", safe="")),
    "layered-bad-tier": lambda: Cache("layered://", tiers=["memory://", f"redis://:{CANARY}@h:1/0"]),
    "layered-tiers-mapping": lambda: Cache("layered://", tiers={"a": f"redis://:{ENCODED}@h:1/0"}),
    "env-unencoded": lambda: Cache.from_env({"STRATACACHE_URL": f"redis://:{CANARY}@h:1/0"}),
    "env-bad-db": lambda: Cache.from_env(
        {"STRATACACHE_BACKEND": "redis", "STRATACACHE_PASSWORD": CANARY, "STRATACACHE_DB": "x"}
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_configuration_errors_show_no_secret(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        BAD_CONFIGS[name]().close()
    assert_clean(info.value)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f'backend: redis\npassword: "{CANARY}\nport: 1\n', id="unclosed-quote"),
        pytest.param(f"backend: redis\npassword: {CANARY}: x\n", id="mapping-in-value"),
        pytest.param(f"backend: redis\npassword: [{CANARY}\n", id="unclosed-bracket"),
        pytest.param(f"backend: redis\npassword: @{CANARY}\n", id="reserved-character"),
        pytest.param(f"backend: redis\npassword:\t{CANARY}\n\tport: 1\n", id="tab"),
        pytest.param(f"backend: redis\npassword: {NUMERIC}\n", id="numeric"),
        pytest.param(f"backend: redis\npassword: !!binary {AES_KEY}\n", id="binary"),
        pytest.param(f"backend: memory\nsigning_key: {NUMERIC}\n", id="numeric-signing-key"),
        pytest.param(f"backend: memory\nencryption_keys: {{a: {AES_KEY}}}\n", id="aes-mapping"),
    ],
)
def test_yaml_errors_show_no_secret(text: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        Cache.from_file(_yaml(tmp_path, text)).close()
    assert_clean(info.value)


# ------------------------------------------------------------------ every backend


def _codec_options() -> dict[str, Any]:
    return {"serializer": "pickle", "signing_key": SIGNING_KEY, "encryption_keys": [AES_KEY]}


def test_local_backends_show_no_key(tmp_path: Path) -> None:
    specs = [
        "memory://",
        "null://",
        f"file://{tmp_path}/files",
        f"layered://?tier=memory://&tier=file://{quote(str(tmp_path / 'tier'))}",
        "sharded://?node=memory://&node=null://",
    ]
    for spec in specs:
        with Cache(spec, **_codec_options()) as cache:
            cache.set("k", {"v": 1})
            assert_clean(*observe(cache))
    with Cache(f"memory://?signing_key={SIGNING_KEY}&serializer=pickle&encryption_keys={AES_KEY}") as cache:
        assert_clean(*observe(cache))


def test_memcached_shows_no_key(memcached_server: Any) -> None:
    with Cache(memcached_server.url, **_codec_options()) as cache:
        assert_clean(*observe(cache))
    dead = f"memcached://127.0.0.1:{free_port()}?connect_timeout=0.3&timeout=0.3"
    with Cache(dead, **_codec_options()) as cache:
        seen = observe(cache)
        assert not cache.health().healthy
    assert_clean(*seen)


def test_sharded_node_ids_carry_no_password(canary_server: RedisServer, redis_server: RedisServer) -> None:
    live = f"redis://:{ENCODED}@{canary_server.host}:{canary_server.port}/0?{FAST_FAIL}"
    dead = f"redis://:{ENCODED}@127.0.0.1:{free_port()}/0?{FAST_FAIL}"
    with Cache("sharded://", nodes=[live, dead, redis_server.url], **_codec_options()) as cache:
        for key in range(20):  # some keys route to the dead node, counting its failures
            try:
                cache.set(f"k{key}", key)
            except CacheError as exc:
                assert_clean(exc)
        seen = observe(cache)
        assert set(cache.stats().backend["nodes"]) == {redact_url(live), redact_url(dead), redis_server.url}
    assert_clean(*seen)


def test_sharded_weights_keyed_by_full_url_still_apply() -> None:
    node = f"redis://:{ENCODED}@127.0.0.1:{free_port()}/0"
    with Cache("sharded://", nodes=[node, "memory://"], weights={node: 3}) as cache:
        assert_clean(cache)


def test_layered_over_redis_shows_no_password(canary_server: RedisServer) -> None:
    tier = f"redis://:{ENCODED}@{canary_server.host}:{canary_server.port}/0"
    with Cache("layered://", tiers=["memory://", tier], **_codec_options()) as cache:
        cache.set("k", 1)
        assert_clean(*observe(cache))
    dead = f"redis://:{ENCODED}@127.0.0.1:{free_port()}/0?{FAST_FAIL}"
    with Cache("layered://", tiers=["memory://", dead]) as cache:
        seen = observe(cache)
    assert_clean(*seen)


def test_cluster_with_a_password_shows_none(redis_cluster: Any) -> None:
    url = redis_cluster.url.replace("://", f"://:{ENCODED}@", 1)
    try:
        cache = Cache(url + "?connect_timeout=0.5&timeout=0.5&retries=0")
    except CacheError as exc:  # the sync cluster client connects (and AUTHs) in its constructor
        assert_clean(exc)
        return
    with cache:
        assert_clean(*observe(cache))


def test_sentinel_with_passwords_shows_none(redis_sentinel: Any) -> None:
    url = redis_sentinel.url.replace("://", f"://:{ENCODED}@", 1)
    with Cache(f"{url}?sentinel_password={ENCODED}&{FAST_FAIL}") as cache:
        seen = observe(cache)
    assert_clean(*seen)


async def test_async_sharded_and_redis_show_none(canary_server: RedisServer) -> None:
    live = f"redis://:{ENCODED}@{canary_server.host}:{canary_server.port}/0?{FAST_FAIL}"
    dead = f"redis://:{ENCODED}@127.0.0.1:{free_port()}/0?{FAST_FAIL}"
    async with AsyncCache("sharded://", nodes=[live, dead]) as cache:
        seen: list[Any] = [cache, await cache.health(), await cache.stats()]
        for key in range(10):
            try:
                await cache.set(f"k{key}", key)
            except CacheError as exc:
                seen.append(exc)
        seen.append(await cache.health())
    assert_clean(*seen)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".json", f'{{"backend": "redis", "password": "{CANARY}}}'),
        (".json", f'{{"backend": "redis", "password": {CANARY}}}'),
        (".toml", f'backend = "redis"\npassword = "{CANARY}\n'),
        (".toml", f"backend = 'redis'\npassword = {CANARY}\n"),
        (".toml", f"backend = 'redis'\npassword = {NUMERIC}\n"),
    ],
)
def test_json_and_toml_errors_show_no_secret(suffix: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / f"config{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        Cache.from_file(path).close()
    assert_clean(info.value)


def test_parsed_config_repr_is_redacted() -> None:
    parsed = parse_url(f"redis://:{ENCODED}@h:1/0?signing_key={SIGNING_KEY}&serializer=pickle")
    assert parsed.backend_options["password"] == CANARY
    assert_clean(repr(parsed), str(parsed))
    assert "password" in repr(parsed)


@pytest.mark.parametrize("form", ["url", "keyword", "dict", "yaml", "env"])
@pytest.mark.parametrize("backend", ["memory", "null", "file"])
def test_keys_in_every_form_and_local_backend_show_none(form: str, backend: str, tmp_path: Path) -> None:
    base = f"file://{tmp_path}" if backend == "file" else f"{backend}://"
    options = {"serializer": "pickle", "signing_key": SIGNING_KEY, "encryption_keys": AES_KEY}
    yaml_text = f"url: '{base}'\n" + "".join(f"{k}: '{v}'\n" for k, v in options.items())
    build: Callable[[], Cache] = {
        "url": lambda: Cache(base + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in options.items())),
        "keyword": lambda: Cache(base, **options),
        "dict": lambda: Cache.from_config({"url": base, **options}),
        "yaml": lambda: Cache.from_file(_yaml(tmp_path, yaml_text)),
        "env": lambda: Cache.from_env(
            {"STRATACACHE_URL": base, **{f"STRATACACHE_{k.upper()}": v for k, v in options.items()}}
        ),
    }[form]
    with build() as cache:
        cache.set("k", {"v": 1})
        assert cache.get("k") == ({"v": 1} if backend != "null" else None)
        assert_clean(*observe(cache))
        cache.set("d", {"v": 2})
    if backend == "file":  # the same directory read under other keys: refused, keys not shown
        other_options = {**options, "signing_key": "Other-S3cret-signing"}
        with Cache(base, **other_options) as other, pytest.raises(CacheError) as info:
            other.get("d")
        assert_clean(info.value)

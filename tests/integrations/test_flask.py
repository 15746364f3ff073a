"""The Flask-Caching backend: its BaseCache API over memory and a real redis-server, and
Flask apps whose ``@cache.cached`` views and ``@cache.memoize`` functions run through
Flask's own test client."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("flask_caching")

from flask import Flask
from flask_caching import Cache as FlaskCache

import stratacache as sc
from stratacache._types import MAX_TTL
from stratacache.contrib.flask import StratacacheCache
from stratacache.testing import FakeClock

TYPE = "stratacache.contrib.flask.StratacacheCache"


@pytest.fixture(params=["memory", "redis"])
def flask_url(request: pytest.FixtureRequest) -> str:
    """The stratacache URL under test."""
    if request.param == "memory":
        return "memory://"
    server: Any = request.getfixturevalue("redis_server")
    url: str = server.url
    return url


def make_app(url: str, **config: Any) -> tuple[Flask, FlaskCache]:
    app = Flask("flask_cache_tests")
    settings = {
        "SECRET_KEY": "flask-tests-not-secret",
        "CACHE_TYPE": TYPE,
        "CACHE_STRATACACHE_URL": url,
        "CACHE_KEY_PREFIX": "flasktests",
    }
    app.config.update({**settings, **config})
    return app, FlaskCache(app)


def backend_of(cache: FlaskCache) -> StratacacheCache:
    backend = cache.cache
    assert isinstance(backend, StratacacheCache)
    return backend


@pytest.fixture
def app_cache(flask_url: str) -> Iterator[tuple[Flask, FlaskCache]]:
    app, cache = make_app(flask_url)
    with app.app_context():
        cache.clear()
    yield app, cache
    backend_of(cache).close()


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x

    __hash__ = None  # type: ignore[assignment]


def test_base_cache_api(app_cache: tuple[Flask, FlaskCache]) -> None:
    app, cache = app_cache
    with app.app_context():
        assert cache.get("absent") is None
        assert cache.set("k", {"a": [1, 2]}) is True
        assert cache.get("k") == {"a": [1, 2]}
        assert cache.has("k")
        assert not cache.has("absent")
        assert cache.add("k", "other") is False
        assert cache.add("new", Point(3)) is True
        assert cache.get("new") == Point(3)
        assert cache.set_many({"m1": 1, "m2": dt.date(2024, 1, 2)}) == ["m1", "m2"]
        assert cache.get_many("m1", "m2", "nope") == [1, dt.date(2024, 1, 2), None]
        assert cache.get_dict("m1", "nope") == {"m1": 1, "nope": None}
        assert cache.get_many() == []
        assert cache.delete("m1") is True
        assert cache.delete("m1") is False
        assert cache.delete_many("m2", "nope", "m2") == ["m2", "nope"]
        assert cache.get("m2") is None
        backend = backend_of(cache)
        assert backend.inc("n") == 1
        assert backend.inc("n", 5) == 6
        assert backend.dec("n", 2) == 4
        assert backend.dec("fresh") == -1
        assert cache.clear() is True
        assert cache.get("k") is None


def test_timeouts(app_cache: tuple[Flask, FlaskCache]) -> None:
    app, cache = app_cache
    store = backend_of(cache).stratacache
    with app.app_context():
        cache.set("default", 1)
        assert 0 < store.ttl("default") <= 300
        cache.set("forever", 1, timeout=0)  # Flask-Caching: 0 = never expire
        assert store.ttl("forever") is None
        cache.set("delta", 1, timeout=dt.timedelta(minutes=2))
        assert 60 < store.ttl("delta") <= 120
        cache.set("float", 1, timeout=2.5)
        assert store.ttl("float") <= 2.5
        cache.set("long", 1, timeout=MAX_TTL * 2)
        assert MAX_TTL - 60 < store.ttl("long") <= MAX_TTL
        cache.set("gone", 1)
        assert cache.set("gone", 2, timeout=-1) is True
        assert not cache.has("gone")
        assert cache.add("neg", 1, timeout=-1) is True
        assert not cache.has("neg")
        cache.set_many({"a": 1, "b": 2})
        cache.set_many({"a": 1, "b": 2}, timeout=-5)
        assert cache.get_many("a", "b") == [None, None]
        with pytest.raises(sc.InvalidTTL, match="timeout"):
            cache.set("bad", 1, timeout="soon")


def test_default_timeout_zero_never_expires() -> None:
    clock = FakeClock()
    app, cache = make_app("memory://", CACHE_DEFAULT_TIMEOUT=0, CACHE_OPTIONS={"clock": clock})
    with app.app_context():
        cache.set("k", 1)
        cache.set("short", 1, timeout=10)
        clock.advance(3600)
        assert cache.get("k") == 1
        assert cache.get("short") is None


def test_expiry_on_the_clock() -> None:
    clock = FakeClock()
    app, cache = make_app("memory://", CACHE_DEFAULT_TIMEOUT=30, CACHE_OPTIONS={"clock": clock})
    with app.app_context():
        cache.set("k", 1)
        clock.advance(29)
        assert cache.has("k")
        clock.advance(2)
        assert not cache.has("k")
        assert cache.get("k") is None


def test_key_prefix_is_a_namespace(flask_url: str) -> None:
    app_a, cache_a = make_app(flask_url, CACHE_KEY_PREFIX="app-a")
    app_b, cache_b = make_app(flask_url, CACHE_KEY_PREFIX="app-b")
    try:
        with app_a.app_context():
            cache_a.set("k", "a")
        with app_b.app_context():
            cache_b.set("k", "b")
            cache_b.clear()
            assert cache_b.get("k") is None
        with app_a.app_context():
            # Over redis, clear() of one prefix leaves the other's keys; memory:// caches
            # are separate stores anyway.
            assert cache_a.get("k") == "a"
            cache_a.clear()
    finally:
        backend_of(cache_a).close()
        backend_of(cache_b).close()


def test_cached_view_and_memoize_through_the_test_client(app_cache: tuple[Flask, FlaskCache]) -> None:
    app, cache = app_cache
    view_calls = itertools.count(1)
    square_calls: list[int] = []

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> str:
        return f"render {next(view_calls)}"

    @app.route("/search")
    @cache.cached(timeout=60, query_string=True)
    def search() -> dict[str, Any]:
        return {"call": next(view_calls)}

    @cache.memoize(timeout=60)
    def square(n: int) -> Point:
        square_calls.append(n)
        return Point(n * n)

    @app.route("/square/<int:n>")
    def square_view(n: int) -> str:
        return str(square(n).x)

    client = app.test_client()
    first = client.get("/page").get_data(as_text=True)
    assert client.get("/page").get_data(as_text=True) == first
    a1 = client.get("/search?q=a").get_json()
    assert client.get("/search?q=a").get_json() == a1
    assert client.get("/search?q=b").get_json() != a1

    assert client.get("/square/4").get_data(as_text=True) == "16"
    assert client.get("/square/4").get_data(as_text=True) == "16"
    assert client.get("/square/5").get_data(as_text=True) == "25"
    assert square_calls == [4, 5]
    with app.app_context():
        cache.delete_memoized(square, 4)
    assert client.get("/square/4").get_data(as_text=True) == "16"
    assert square_calls == [4, 5, 4]

    with app.app_context():
        cache.clear()
    assert client.get("/page").get_data(as_text=True) != first


def test_values_are_signed_pickles_over_redis(redis_server: Any) -> None:
    app, cache = make_app(redis_server.url)
    raw = sc.Cache(redis_server.url, namespace="flasktests", serializer="raw")
    try:
        with app.app_context():
            cache.set("k", Point(1))
            assert isinstance(raw.get("k"), bytes)
            raw.set("k", b"\x80\x04K\x01.")  # a bare pickle of 1, unsigned
            with pytest.raises(sc.SerializationError):
                cache.get("k")
    finally:
        raw.close()
        backend_of(cache).close()


def test_without_a_secret_key_the_cache_default_serializer_is_used() -> None:
    app = Flask("nosecret")
    app.config.update(CACHE_TYPE=TYPE, CACHE_STRATACACHE_URL="memory://")
    cache = FlaskCache(app)
    with app.app_context():
        value = {"a": 1}
        cache.set("k", value)
        assert cache.get("k") == value
    with pytest.raises(sc.ConfigurationError, match="signing_key"):
        FlaskCache(Flask("x"), config={"CACHE_TYPE": TYPE, "CACHE_OPTIONS": {"serializer": "pickle"}})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"CACHE_STRATACACHE_URL": "bogus://x"}, "bogus"),
        ({"CACHE_OPTIONS": {"no_such_option": 1}}, "no_such_option"),
        ({"CACHE_OPTIONS": {"max_entries": "many"}}, "max_entries"),
        ({"CACHE_ARGS": ["redis://x"]}, "CACHE_ARGS"),
        ({"CACHE_DEFAULT_TIMEOUT": -1}, "default_timeout"),
        ({"CACHE_STRATACACHE_URL": 42}, "CACHE_STRATACACHE_URL"),
    ],
)
def test_bad_configuration_names_the_setting(config: dict[str, Any], message: str) -> None:
    app = Flask("bad")
    app.config.update(SECRET_KEY="s", CACHE_TYPE=TYPE, **config)
    with pytest.raises(sc.ConfigurationError, match=message):
        FlaskCache(app)


def test_direct_construction() -> None:
    backend = StratacacheCache("memory://", default_timeout=dt.timedelta(seconds=90), namespace="direct")
    try:
        backend.set("k", 1)
        assert 0 < backend.stratacache.ttl("k") <= 90
        assert backend.get_many("k") == [1]
    finally:
        backend.close()

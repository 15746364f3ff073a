"""Namespaces: a string is that string in every configuration form, and the raw key layout.

Isolation of a namespace from one it prefixes ("app" and "app:b") runs on every backend in
the conformance suite (``test_namespace_that_prefixes_another_is_isolated``); this file
checks the parsing rules and the raw layout that the README documents.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servers import RedisServer
from stratacache import AsyncCache, Cache, ConfigurationError
from stratacache._async.cache import namespace_prefix

# Each builds a memory cache whose namespace is given as ``value`` in one configuration form.
FORMS: dict[str, Callable[[str, Path], Cache]] = {
    "keyword": lambda value, _: Cache("memory://", namespace=value),
    "url": lambda value, _: Cache(f"memory://?namespace={value}"),
    "dict": lambda value, _: Cache.from_config({"backend": "memory", "namespace": value}),
    "env": lambda value, _: Cache.from_env({"STRATACACHE_BACKEND": "memory", "STRATACACHE_NAMESPACE": value}),
    "yaml": lambda value, tmp: _from_yaml(tmp, f"backend: memory\nnamespace: '{value}'\n"),
}


def _from_yaml(tmp: Path, text: str) -> Cache:
    path = tmp / f"{uuid.uuid4().hex}.yaml"
    path.write_text(text)
    return Cache.from_file(path)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("word", ["none", "None", "NULL", "null"])
def test_a_namespace_string_is_that_string(form: str, word: str, tmp_path: Path) -> None:
    cache = FORMS[form](word, tmp_path)
    assert cache.namespace == word
    cache.set("k", 1)
    assert cache.backend.store.keys() == [f"{word}:k"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_empty_namespace_is_refused(form: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'namespace'"):
        FORMS[form]("", tmp_path)


def test_python_none_is_no_namespace(tmp_path: Path) -> None:
    assert Cache("memory://", namespace=None).namespace is None
    assert Cache.from_config({"backend": "memory", "namespace": None}).namespace is None
    assert _from_yaml(tmp_path, "backend: memory\nnamespace: null\n").namespace is None
    assert _from_yaml(tmp_path, "backend: memory\nnamespace:\n").namespace is None
    assert AsyncCache("memory://").namespace is None


def test_a_non_string_namespace_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'namespace'"):
        Cache.from_config({"backend": "memory", "namespace": 5})


def test_clear_of_namespace_none_on_redis_leaves_other_keys(redis_server: RedisServer) -> None:
    other = f"other-app:{uuid.uuid4().hex}"
    redis_server.command("SET", other, "precious")
    try:
        for url in (f"{redis_server.url}?namespace=none", f"{redis_server.url}?namespace=NULL"):
            with Cache(url) as cache:
                cache.set("k", 1)
                cache.clear()  # was FLUSHDB
                assert cache.get("k") is None
            assert redis_server.command("GET", other) == b"precious"
        with Cache(redis_server.url, namespace="None") as cache:
            cache.clear()
        assert redis_server.command("GET", other) == b"precious"
    finally:
        redis_server.command("DEL", other)


def test_raw_key_layout_on_redis(redis_server: RedisServer) -> None:
    """The layout the README documents: ``<namespace, '%' and ':' encoded>:<key>``."""
    namespace = f"t{uuid.uuid4().hex[:8]}:b%c"
    with Cache(redis_server.url, namespace=namespace, serializer="raw") as cache:
        cache.set("user:1", b"v")
        raw = namespace.replace("%", "%25").replace(":", "%3A") + ":user:1"
        assert redis_server.command("GET", raw) == b"v"
        assert cache.delete_pattern("user:*") == 1
    with Cache(redis_server.url, namespace="plain", serializer="raw") as cache:
        cache.set("k", b"v")
        assert redis_server.command("GET", "plain:k") == b"v"  # unchanged for plain names
        cache.clear()


@given(st.text(min_size=1), st.text(min_size=1), st.text(), st.text())
def test_namespace_prefixes_never_overlap(ns1: str, ns2: str, key1: str, key2: str) -> None:
    """The raw keys of two distinct namespaces never coincide, nor does one's prefix start
    the other's keys (so clear/delete_pattern/stats of one never reach the other)."""
    if ns1 == ns2:
        return
    p1, p2 = namespace_prefix(ns1), namespace_prefix(ns2)
    assert not (p2 + key2).startswith(p1)
    assert p1 + key1 != p2 + key2


def test_repr_shows_the_namespace() -> None:
    assert "namespace='none'" in repr(Cache("memory://", namespace="none"))
    assert "namespace" not in repr(Cache("memory://"))

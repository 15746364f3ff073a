"""Configuration: URL, dict, file and environment adapters, and the registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import stratacache as sc
from stratacache import AsyncCache, Cache, ConfigurationError
from stratacache._config import parse_mapping, parse_url
from stratacache._registry import load_backend, register_backend, scheme_backend


def test_url_with_backend_and_cache_parameters() -> None:
    cache = Cache("memory://?max_entries=100&namespace=app&default_ttl=30")
    assert cache.namespace == "app"
    assert cache.default_ttl == 30.0
    assert isinstance(cache.backend, sc.MemoryBackend)
    assert cache.backend.store.max_entries == 100
    cache.set("k", 1)
    assert cache.ttl("k") == pytest.approx(30, abs=1)


def test_keywords_override_url() -> None:
    cache = Cache("memory://?namespace=url&max_entries=5", namespace="kw", max_entries=7)
    assert cache.namespace == "kw"
    assert cache.backend.store.max_entries == 7


def test_from_url_and_backend_name() -> None:
    assert Cache.from_url("null://").backend.name == "null"
    assert Cache("null").backend.name == "null"
    assert Cache().backend.name == "memory"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://?max_entrys=10", "unknown URL parameter 'max_entrys'"),
        ("memory://?max_entries=-1", "'max_entries'"),
        ("memory://?max_entries=ten", "'max_entries'"),
        ("memory://?default_ttl=0", "default_ttl"),
        ("memory://?default_ttl=soon", "'default_ttl'"),
        ("memory://?serializer=yaml", "'serializer'"),
        ("memory://?compression=brotli", "'compression'"),
        ("memory://?namespace=a&namespace=b", "given twice"),
        ("bogus://host", "unknown URL scheme 'bogus'"),
        ("memory://somehost", "takes no host"),
        ("not a url", "unknown backend 'not a url'"),
        ("", "unknown backend"),
        ("memory://?serializer=pickle", "signing_key"),
    ],
)
def test_bad_urls_name_the_problem(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Cache(url)


def test_unknown_keyword_names_it() -> None:
    with pytest.raises(ConfigurationError, match="unknown option 'max_entrys'"):
        Cache("memory", max_entrys=3)
    with pytest.raises(ConfigurationError, match="backend options"):
        Cache(sc.MemoryBackend(), max_entries=3)
    with pytest.raises(ConfigurationError, match="backend must be"):
        Cache(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": 5}, "'namespace'"),
        ({"default_ttl": -1}, "default_ttl"),
        ({"latency_sample": 0}, "'latency_sample'"),
        ({"compression_threshold": -5}, "'compression_threshold'"),
        ({"policy": "mru"}, "unknown policy 'mru'"),
        ({"max_entries": 0}, "max_entries"),
        ({"clock": "not callable"}, "clock"),
    ],
)
def test_bad_keywords_name_the_problem(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Cache("memory", **kwargs)  # type: ignore[arg-type]


def test_from_config_dict() -> None:
    cache = Cache.from_config({"backend": "memory", "max_entries": 50, "namespace": "d", "default_ttl": 10})
    assert cache.backend.store.max_entries == 50
    assert cache.namespace == "d"
    wrapped = Cache.from_config({"stratacache": {"url": "memory://?namespace=w", "default_ttl": "none"}})
    assert wrapped.namespace == "w"
    assert wrapped.default_ttl is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "memory://", "backend": "memory"}, "not both"),
        ({"backend": "nosuch"}, "unknown backend 'nosuch'"),
        ({"backend": "memory", "colour": "red"}, "unknown configuration parameter 'colour'"),
        ({"backend": "memory", "max_entries": True}, "'max_entries'"),
        ({"backend": "memory", 3: 4}, "keys must be strings"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_config_dicts(config: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Cache.from_config(config)  # type: ignore[arg-type]


def test_from_file_yaml_json_toml(tmp_path: Path) -> None:
    yaml_file = tmp_path / "stratacache.yaml"
    yaml_file.write_text("url: memory://?max_entries=9\nnamespace: y\ndefault_ttl: 5\n")
    assert Cache.from_file(yaml_file).namespace == "y"
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps({"backend": "null"}))
    assert Cache.from_file(json_file).backend.name == "null"
    toml_file = tmp_path / "c.toml"
    toml_file.write_text('backend = "memory"\nmax_entries = 3\n')
    assert Cache.from_file(toml_file).backend.store.max_entries == 3


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        Cache.from_file(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("url: [unclosed\n")
    with pytest.raises(ConfigurationError, match="cannot parse"):
        Cache.from_file(bad)
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="mapping at the top level"):
        Cache.from_file(listy)
    other = tmp_path / "c.ini"
    other.write_text("x")
    with pytest.raises(ConfigurationError, match="unknown configuration file type"):
        Cache.from_file(other)


def test_yaml_missing_extra_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("backend: memory\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail as if not installed
    with pytest.raises(ConfigurationError, match=r"stratacache\[yaml\]"):
        Cache.from_file(yaml_file)


def test_from_env() -> None:
    env = {"STRATACACHE_URL": "memory://?max_entries=11", "STRATACACHE_NAMESPACE": "env", "OTHER": "x"}
    cache = Cache.from_env(env)
    assert cache.namespace == "env"
    assert cache.backend.store.max_entries == 11
    cache2 = Cache.from_env({"STRATACACHE_BACKEND": "memory", "STRATACACHE_DEFAULT_TTL": "2.5"})
    assert cache2.default_ttl == 2.5


def test_from_env_errors() -> None:
    with pytest.raises(ConfigurationError, match="no STRATACACHE_"):
        Cache.from_env({})
    with pytest.raises(ConfigurationError, match="'colour'"):
        Cache.from_env({"STRATACACHE_URL": "memory://", "STRATACACHE_COLOUR": "red"})


async def test_async_constructors() -> None:
    acache = AsyncCache.from_config({"url": "memory://", "namespace": "a"})
    assert isinstance(acache.backend, sc.AsyncMemoryBackend)
    await acache.set("k", 1)
    assert await acache.get("k") == 1
    with pytest.raises(ConfigurationError):
        AsyncCache("memory://?nope=1")


def test_parse_helpers() -> None:
    parsed = parse_url("memory://?max_entries=none&compression=none&compression_threshold=0")
    assert parsed.backend_options == {"max_entries": None}
    assert parsed.cache_options == {"compression": None, "compression_threshold": 0}
    assert parse_mapping({"backend": "memory", "serializer": "json"}).cache_options == {"serializer": "json"}
    assert parse_mapping({"encryption_keys": "a,b"}).cache_options == {"encryption_keys": ["a", "b"]}
    with pytest.raises(ConfigurationError, match="at least one key"):
        parse_mapping({"encryption_keys": " , "})
    with pytest.raises(ConfigurationError, match="'signing_key'"):
        parse_mapping({"signing_key": ""})
    with pytest.raises(ConfigurationError, match="malformed query"):
        parse_url("memory://?a")


def test_registry_errors_and_missing_extra() -> None:
    with pytest.raises(ConfigurationError, match="unknown backend 'nope'"):
        load_backend("nope", asynchronous=False)
    with pytest.raises(ConfigurationError, match="unknown URL scheme"):
        scheme_backend("zzz")
    register_backend(
        "needs-driver",
        "stratacache_tests_no_such_driver:Backend",
        "stratacache_tests_no_such_driver:Backend",
        extra="fancy",
        drivers=("stratacache_tests_no_such_driver",),
        schemes=("needs-driver",),
    )
    with pytest.raises(ConfigurationError, match=r"pip install 'stratacache\[fancy\]'"):
        load_backend("needs-driver", asynchronous=True)


def test_bad_serializer_value() -> None:
    with pytest.raises(ConfigurationError, match="'serializer'"):
        Cache("memory", serializer=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "password"),
    [
        ("a%2541%2B", "a%41+"),  # a literal '%41' stays '%41' (decoded once, not twice)
        ("p%26q%3Dr%23s", "p&q=r#s"),
        ("none", "none"),  # a password string is that string
    ],
)
def test_query_values_are_decoded_once(query: str, password: str) -> None:
    parsed = parse_url(f"redis://127.0.0.1:6379/0?password={query}")
    assert parsed.backend_options["password"] == password


@pytest.mark.parametrize(
    "url",
    [
        "redis://:p/w@127.0.0.1:6379/0",
        "redis://:p?w@127.0.0.1:6379/0",
        "redis://:p#w@127.0.0.1:6379/0",
        "memcached://:p/w@127.0.0.1:11211",
        "redis://127.0.0.1:6379/0?password=p#w",
    ],
)
def test_misplaced_password_delimiters_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="percent-encode"):
        parse_url(url)


def test_userinfo_password_with_every_delimiter_round_trips() -> None:
    parsed = parse_url("redis://user:p%2Fw%3Fx%23y%40z@127.0.0.1:6379/0")
    assert parsed.backend_options["password"] == "p/w?x#y@z"
    assert parsed.backend_options["username"] == "user"


@pytest.mark.parametrize("url", ["redis://[::1/0", "memcached://[::1", "redis://:pw@[::1/0"])
def test_a_url_urllib_refuses_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="not a valid URL") as info:
        parse_url(url)
    assert "pw" not in str(info.value)

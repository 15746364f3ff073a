"""Configuration adapters: URL, dict, YAML/JSON/TOML file and environment -> keyword arguments.

Constructor keyword arguments are the source of truth. Everything here only turns other
forms into those keywords, through one explicit parser per parameter (the redis-py
``URL_QUERY_ARGUMENT_PARSERS`` idea). A parser accepts the string form (URL, environment)
and the typed form (dict, YAML) alike, and raises :class:`ConfigurationError` naming the
parameter and the bad value. An unknown parameter is an error that names it: a typo must
never be silently ignored.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._exceptions import ConfigurationError, InvalidTTL
from ._redact import authority_end, is_secret, redact, redact_url
from ._registry import scheme_backend
from ._types import normalize_ttl
from .core.stampede import parse_policy

__all__ = [
    "BACKEND_PARAMS",
    "CACHE_PARAMS",
    "ParsedConfig",
    "load_file",
    "parse_env",
    "parse_mapping",
    "parse_url",
]

Parser = Callable[[str, Any], Any]

_NONE_WORDS = frozenset({"none", "null", ""})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _bad(name: str, value: Any, expected: str) -> ConfigurationError:
    # A secret parameter's value is never shown, not even its type's repr; other values
    # are redacted, since a URL or a mapping may carry a password inside.
    got = f"a {type(value).__name__} (the value is not shown)" if is_secret(name) else repr(redact(value))
    return ConfigurationError(f"parameter {name!r}: expected {expected}, got {got}")


def parse_str(name: str, value: Any) -> str:
    """A string (any non-str is refused)."""
    if not isinstance(value, str):
        raise _bad(name, value, "a string")
    return value


def parse_optional_str(name: str, value: Any) -> str | None:
    """A string, or None / "none" / "" for none."""
    if value is None or (isinstance(value, str) and value.lower() in _NONE_WORDS):
        return None
    return parse_str(name, value)


def parse_namespace(name: str, value: Any) -> str | None:
    """A namespace: a string is that string (``"none"`` is the namespace ``none``).

    Only Python ``None`` (a keyword, or null in a dict or YAML file) means no namespace; an
    empty string is refused, since "no namespace" makes ``clear()`` empty the whole backend
    and must never be reached by a typo or an unset variable.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(name, value, "a non-empty string (or None for no namespace)")
    if not value:
        raise ConfigurationError(
            f"parameter {name!r}: the empty string is not a namespace; give a name, or leave "
            "the parameter out (None) for no namespace, whose clear() empties the whole backend"
        )
    return value


def parse_optional_secret(name: str, value: Any) -> str | None:
    """A password: a string (empty: none) or None; the value is never echoed in errors."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(
            f"parameter {name!r}: expected a string, got a {type(value).__name__} "
            "(the value is not shown; quote it in YAML)"
        )
    return value


def parse_positive_int(name: str, value: Any) -> int:
    """An integer >= 1."""
    if isinstance(value, bool):
        raise _bad(name, value, "a positive integer")
    if isinstance(value, str):
        try:
            value = int(value.strip().replace("_", ""))
        except ValueError:
            raise _bad(name, value, "a positive integer") from None
    if not isinstance(value, int) or value < 1:
        raise _bad(name, value, "a positive integer")
    return value


def parse_non_negative_int(name: str, value: Any) -> int:
    """An integer >= 0."""
    if value == 0 and not isinstance(value, bool):
        return 0
    if isinstance(value, str) and value.strip() == "0":
        return 0
    return parse_positive_int(name, value)


def parse_optional_positive_int(name: str, value: Any) -> int | None:
    """A positive integer, or None / "none" for unbounded."""
    if value is None or (isinstance(value, str) and value.lower() in _NONE_WORDS):
        return None
    return parse_positive_int(name, value)


def parse_bool(name: str, value: Any) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE_WORDS:
            return True
        if lowered in _FALSE_WORDS:
            return False
    raise _bad(name, value, "a boolean (true/false)")


def parse_ttl(name: str, value: Any) -> float | None:
    """Seconds (> 0), a timedelta, or None / "none" for never."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _NONE_WORDS:
            return None
        try:
            value = float(text)
        except ValueError:
            raise _bad(name, value, "a number of seconds or 'none'") from None
    if value is not None and not isinstance(value, (int, float, timedelta)):
        raise _bad(name, value, "a number of seconds, a timedelta or none")
    try:
        return normalize_ttl(value, name=name)
    except InvalidTTL as exc:
        raise ConfigurationError(str(exc)) from exc


def parse_positive_float(name: str, value: Any) -> float:
    """A finite number > 0."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _bad(name, value, "a positive number") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _bad(name, value, "a positive number")
    return float(value)


def parse_key_list(name: str, value: Any) -> list[str | bytes]:
    """A comma-separated string or a list of keys (str or bytes)."""
    if isinstance(value, str):
        parts: list[str | bytes] = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, bytes)) for v in value):
        parts = list(value)
    else:
        raise _bad(name, value, "a comma-separated string or a list of keys")
    if not parts:
        raise ConfigurationError(f"parameter {name!r}: expected at least one key")
    return parts


def parse_secret(name: str, value: Any) -> str | bytes:
    """A non-empty str or bytes; the value is never echoed in errors."""
    if isinstance(value, (str, bytes)) and value:
        return value
    raise ConfigurationError(f"parameter {name!r}: expected a non-empty string or bytes")


def choice(*options: str) -> Parser:
    """A parser accepting one of ``options`` (case-insensitive); "none" gives None."""

    def parse(name: str, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _bad(name, value, f"one of {', '.join(options)}")
        lowered = value.strip().lower()
        if lowered in _NONE_WORDS:
            return None
        if lowered not in options:
            raise _bad(name, value, f"one of {', '.join(options)}")
        return lowered

    return parse


def _serializer(name: str, value: Any) -> Any:
    # A Serializer object (from a dict config) is passed through; strings are checked here.
    if value is None or isinstance(value, str):
        return choice("msgpack", "json", "pickle", "raw")(name, value)
    if hasattr(value, "dumps") and hasattr(value, "loads"):
        return value
    raise _bad(name, value, "one of msgpack, json, pickle, raw, or a serializer object")


# Cache-level (facade) parameters, valid with every backend.
CACHE_PARAMS: dict[str, Parser] = {
    "namespace": parse_namespace,
    "default_ttl": parse_ttl,
    "serializer": _serializer,
    "signing_key": parse_secret,
    "compression": choice("zlib", "lz4", "zstd"),
    "compression_threshold": parse_non_negative_int,
    "encryption_keys": parse_key_list,
    "accept_unbound_values": parse_bool,
    "latency_sample": parse_positive_int,
    "stampede": parse_policy,  # stampede control (core/stampede.py)
}

# Backend parameters, one table per backend. Later backends add their own tables.
BACKEND_PARAMS: dict[str, dict[str, Parser]] = {
    "memory": {
        "max_entries": parse_optional_positive_int,
        "max_bytes": parse_optional_positive_int,
        "policy": parse_str,
        "expire_after_access": parse_ttl,
        "snapshot": parse_optional_str,
        "snapshot_interval": parse_ttl,
    },
    "null": {},
}

# Parameters that a dict/file/env may give but a URL may not (objects, not strings).
_OBJECT_PARAMS = frozenset({"clock", "weigher", "pool", "store"})


@dataclass(repr=False)
class ParsedConfig:
    """A configuration turned into keywords: the backend, its options, the cache's options."""

    backend: str
    backend_options: dict[str, Any] = field(default_factory=dict)
    cache_options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Options hold passwords and keys: shown redacted, like every described option.
        return (
            f"ParsedConfig(backend={self.backend!r}, backend_options={redact(self.backend_options)!r}, "
            f"cache_options={redact(self.cache_options)!r})"
        )


def _assign(config: ParsedConfig, name: str, value: Any, source: str) -> None:
    """Parse one parameter into the right bucket, or fail naming it."""
    if name in CACHE_PARAMS:
        config.cache_options[name] = CACHE_PARAMS[name](name, value)
        return
    table = BACKEND_PARAMS.get(config.backend, {})
    if name in table:
        config.backend_options[name] = table[name](name, value)
        return
    if name in _OBJECT_PARAMS and source != "URL":
        config.backend_options[name] = value
        return
    valid = sorted(set(CACHE_PARAMS) | set(table))
    raise ConfigurationError(
        f"unknown {source} parameter {name!r} for backend {config.backend!r}; valid: {', '.join(valid)}"
    )


def parse_address(name: str, value: Any, default_port: int | None = None) -> tuple[str, int]:
    """``"host:port"``, ``"[::1]:port"`` or a ``(host, port)`` pair; the port may default."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        host, port = value
        if isinstance(host, str) and host:
            return host, parse_port(name, port)
        raise _bad(name, value, "a (host, port) pair")
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, value, "'host:port'")
    text = value.strip()
    if text.startswith("["):  # IPv6 literal
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port_text is None:
            raise _bad(name, value, "'[ipv6]:port'")
    else:
        host, sep, port_text_raw = text.rpartition(":")
        if not sep:
            host, port_text = text, None
        else:
            port_text = port_text_raw
    if not host:
        raise _bad(name, value, "'host:port' with a host")
    if port_text is None or port_text == "":
        if default_port is None:
            raise _bad(name, value, "'host:port' with a port")
        return host, default_port
    return host, parse_port(name, port_text)


def parse_port(name: str, value: Any) -> int:
    """A TCP port, 1..65535."""
    port = parse_positive_int(name, value)
    if port > 65535:
        raise _bad(name, value, "a port number (1-65535)")
    return port


def parse_address_list(name: str, value: Any) -> list[tuple[str, int]]:
    """Several addresses: a comma-separated string or a list of ``"host:port"``/pairs."""
    items: list[Any]
    if isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _bad(name, value, "a list of 'host:port' addresses")
    if not items:
        raise ConfigurationError(f"parameter {name!r}: expected at least one 'host:port' address")
    return [parse_address(name, item) for item in items]


def parse_non_negative_float(name: str, value: Any) -> float:
    """A finite number >= 0."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    if isinstance(value, str) and value.strip() in ("0", "0.0"):
        return 0.0
    return parse_positive_float(name, value)


def parse_optional_path(name: str, value: Any) -> str | None:
    """A filesystem path (str or PathLike), or None."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    return parse_optional_str(name, value)


_REDIS_PARAMS: dict[str, Parser] = {
    "host": parse_str,
    "port": parse_port,
    "db": parse_non_negative_int,
    "username": parse_optional_str,
    "password": parse_optional_secret,
    "unix_socket_path": parse_optional_path,
    "ssl": parse_bool,
    "ssl_ca_certs": parse_optional_path,
    "ssl_certfile": parse_optional_path,
    "ssl_keyfile": parse_optional_path,
    "ssl_cert_reqs": choice("required", "optional", "none"),
    "ssl_check_hostname": parse_bool,
    "pool_size": parse_positive_int,
    "connect_timeout": parse_positive_float,
    "timeout": parse_positive_float,
    "retries": parse_non_negative_int,
    "retry_backoff": parse_positive_float,
    "health_check_interval": parse_non_negative_float,
    "client_name": parse_optional_str,
    "scan_count": parse_positive_int,
    "mode": choice("standalone", "cluster", "sentinel"),
    "nodes": parse_address_list,
    "sentinels": parse_address_list,
    "service_name": parse_optional_str,
    "sentinel_username": parse_optional_str,
    "sentinel_password": parse_optional_secret,
}

_MEMCACHED_PARAMS: dict[str, Parser] = {
    "servers": parse_address_list,
    "pool_size": parse_positive_int,
    "connect_timeout": parse_positive_float,
    "timeout": parse_positive_float,
    "dead_retry": parse_positive_float,
    "failure_threshold": parse_positive_int,
    "max_value_size": parse_positive_int,
}

BACKEND_PARAMS["redis"] = _REDIS_PARAMS
BACKEND_PARAMS["memcached"] = _MEMCACHED_PARAMS


def parse_file_mode(name: str, value: Any) -> int:
    """Permission bits: an int (``0o600``) or an octal string (``"600"``, ``"0o600"``, ``"0600"``)."""
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        try:
            value = int(text, 8)
        except ValueError:
            raise _bad(name, value, "octal permission bits like 600") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise _bad(name, value, "octal permission bits like 600")
    return value


BACKEND_PARAMS["file"] = {
    "directory": parse_optional_path,
    "file_mode": parse_file_mode,
    "dir_mode": parse_file_mode,
    "prefix": parse_str,
    "max_bytes": parse_optional_positive_int,
    "policy": choice("lru", "lfu", "fifo"),
    "janitor_interval": parse_ttl,
    "inline_threshold": parse_non_negative_int,
    "sync": choice("normal", "full"),
    "timeout": parse_positive_float,
}


def parse_tiers(name: str, value: Any) -> list[Any]:
    """The layered backend's tiers: a list of URLs, backend names, mappings or backend objects.

    A string holds whitespace-separated tier URLs (the environment form); in a URL each
    tier is its own repeated ``tier=`` parameter. The tiers themselves are checked when the
    backend builds them, with errors naming the tier.
    """
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)):
        raise _bad(name, value, "a list of tiers (URLs, backend names, mappings or backends)")
    if len(value) < 2:
        raise ConfigurationError(
            f"parameter {name!r}: a layered backend needs at least two tiers, got {len(value)}"
        )
    return list(value)


def parse_nodes(name: str, value: Any) -> list[Any] | dict[str, Any]:
    """The sharded backend's nodes: a list of backends (URLs, names, mappings, objects), a
    mapping ``{node_id: backend}``, or whitespace-separated URLs (the environment form)."""
    if isinstance(value, str):
        value = value.split()
    nodes: list[Any] | dict[str, Any]
    if isinstance(value, Mapping):
        nodes = {str(node_id): spec for node_id, spec in value.items()}
    elif isinstance(value, (list, tuple)):
        nodes = list(value)
    else:
        raise _bad(name, value, "a list or mapping of nodes (URLs, backend names, mappings or backends)")
    if len(nodes) < 2:
        raise ConfigurationError(
            f"parameter {name!r}: a sharded backend needs at least two nodes, got {len(nodes)}"
        )
    return nodes


def parse_weights(name: str, value: Any) -> dict[str, int]:
    """``{node_id: weight}``; in a URL or the environment, ``id=weight`` pairs separated by commas."""
    if isinstance(value, str):
        pairs = [item.rpartition("=") for item in value.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise _bad(name, value, "comma-separated 'node_id=weight' pairs")
        value = {node_id.strip(): weight for node_id, _, weight in pairs}
    if not isinstance(value, Mapping):
        raise _bad(name, value, "a mapping of node id to weight")
    return {
        str(node_id): parse_positive_int(f"{name}[{redact_url(str(node_id))}]", weight)
        for node_id, weight in value.items()
    }


BACKEND_PARAMS["sharded"] = {
    "nodes": parse_nodes,
    "weights": parse_weights,
    "failure_threshold": parse_positive_int,
    "dead_retry": parse_positive_float,
}

# Backends whose URL repeats one parameter: backend -> (repeated name, the list parameter).
_REPEATED_PARAMS: dict[str, tuple[str, str]] = {"layered": ("tier", "tiers"), "sharded": ("node", "nodes")}

BACKEND_PARAMS["layered"] = {
    "tiers": parse_tiers,
    "l1_ttl": parse_ttl,
    "channel": parse_optional_str,
    "on_write_failure": choice("raise", "degrade"),
    "failure_threshold": parse_positive_int,
    "reset_timeout": parse_positive_float,
}

_REDIS_PORT = 6379
_SENTINEL_PORT = 26379
_MEMCACHED_PORT = 11211


def _split_netloc(netloc: str) -> tuple[str | None, str | None, str]:
    """``user:password@hosts`` -> (user, password, hosts); user and password URL-decoded."""
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return None, None, netloc
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None), hosts


def _parse_hosts(config: ParsedConfig, scheme: str, netloc: str, path: str) -> None:
    """Turn the host and path part of a URL into backend keywords (each backend its own form)."""
    backend = config.backend
    if backend in ("memory", "null", "layered", "sharded"):
        if netloc or path.strip("/"):
            shown = redact_url(f"{scheme}://{netloc}{path}")
            raise ConfigurationError(
                f"a {backend}:// URL takes no host or path, got {shown!r}; use e.g. {backend}://?param=value"
            )
        return
    if backend == "file":
        # RFC 8089: file:///abs/path, or file://localhost/abs/path; no other host.
        if netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"a file:// URL takes an absolute path and no host, got host "
                f"{redact_url(f'file://{netloc}').removeprefix('file://')!r}; "
                "use file:///path/to/dir"
            )
        if path.strip("/"):
            config.backend_options["directory"] = unquote(path)
        return
    user, password, hosts = _split_netloc(netloc)
    opts = config.backend_options
    if backend == "memcached":
        if user or password:
            raise ConfigurationError("a memcached:// URL takes no user or password")
        if path.strip("/"):
            raise ConfigurationError(f"a memcached:// URL takes no path, got {path!r}")
        opts["servers"] = [parse_address("servers", h, _MEMCACHED_PORT) for h in _host_items(hosts, scheme)]
        return
    if backend != "redis":
        return
    if user:
        opts["username"] = user
    if password is not None:
        opts["password"] = password
    if scheme.startswith("rediss"):
        opts["ssl"] = True
    segments = [segment for segment in path.split("/") if segment]
    if scheme == "unix":
        if not path or path == "/":
            raise ConfigurationError(
                "a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock?db=0"
            )
        opts["unix_socket_path"] = unquote(path)
        return
    if scheme.endswith("+sentinel"):
        opts["mode"] = "sentinel"
        items = _host_items(hosts, scheme)
        opts["sentinels"] = [parse_address("sentinels", h, _SENTINEL_PORT) for h in items]
        if not segments:
            raise ConfigurationError(
                f"a {scheme}:// URL needs the service name as its path, e.g. {scheme}://h:26379/mymaster"
            )
        opts["service_name"] = unquote(segments[0])
        segments = segments[1:]
    elif scheme.endswith("+cluster"):
        opts["mode"] = "cluster"
        opts["nodes"] = [parse_address("nodes", h, _REDIS_PORT) for h in _host_items(hosts, scheme)]
        if segments:
            raise ConfigurationError(f"a {scheme}:// URL takes no database: Redis Cluster has only db 0")
    else:
        items = _host_items(hosts, scheme) if hosts else []
        if len(items) > 1:
            raise ConfigurationError(
                f"a {scheme}:// URL names one server; for several use redis+cluster:// or redis+sentinel://"
            )
        if items:
            opts["host"], opts["port"] = parse_address("host", items[0], _REDIS_PORT)
    if len(segments) > 1:
        raise ConfigurationError(f"unexpected URL path {path!r}: expected /<db number>")
    if segments:
        opts["db"] = parse_non_negative_int("db", segments[0])


def _host_items(hosts: str, scheme: str) -> list[str]:
    items = [item for item in hosts.split(",") if item.strip()]
    if not items:
        raise ConfigurationError(f"a {scheme}:// URL needs at least one host:port")
    return items


# Backends whose URLs carry no userinfo: an '@' after their host part is a path's or a
# nested URL's, not a sign of a misplaced password.
_NO_USERINFO_BACKENDS = frozenset({"memory", "null", "file", "layered", "sharded"})


def _check_url_shape(url: str, scheme: str, backend: str) -> None:
    """Refuse, without echoing the URL, the shapes that put a password where it is shown.

    A password holding an unencoded ``/``, ``?`` or ``#`` ends the host part early, so the
    rest of the password would land in the path, the query or the fragment, and from there
    in an error message. A ``#fragment`` has no meaning in a cache URL and is most often
    such a password (or a query value) cut short.
    """
    rest = url.partition("://")[2]
    if backend not in _NO_USERINFO_BACKENDS and "@" in rest[authority_end(rest) :]:
        raise ConfigurationError(
            f"a {scheme}:// URL has an '@' after its host part: a user name or password holding "
            "'/', '?', '#' or '@' must be percent-encoded (%2F, %3F, %23, %40); "
            "the URL is not shown since it may hold a password"
        )
    if "#" in rest:
        raise ConfigurationError(
            f"a {scheme}:// URL takes no '#fragment': percent-encode '#' as %23 in a password "
            "or a parameter's value; the URL is not shown since it may hold a password"
        )


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's name=value pairs; a malformed query is refused without being echoed."""
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        pass  # raised below, outside this block: the ValueError quotes the query
    raise ConfigurationError(
        "malformed query string in URL: every parameter must be name=value, joined by '&'; "
        "percent-encode '&', '=', '#', '+' and '%' inside a value (the query is not shown "
        "since it may hold a password)"
    )


def parse_url(url: str) -> ParsedConfig:
    """Parse a cache URL such as ``memory://?max_entries=100&namespace=app``.

    No error message shows a password: the URL is redacted wherever it is echoed, and a URL
    whose password is misplaced (an unencoded ``/``, ``?``, ``#``, ``&``) is refused with a
    message that says how to encode it, without showing it.
    """
    if not isinstance(url, str) or "://" not in url:
        shown = repr(redact_url(url)) if isinstance(url, str) else f"a {type(url).__name__}"
        raise ConfigurationError(f"not a cache URL (expected scheme://...): {shown}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # urllib's own complaint, e.g. "Invalid IPv6 URL" for "[::1"
        raise ConfigurationError(f"not a valid URL ({exc}): {redact_url(url)!r}") from exc
    scheme = parts.scheme.lower()
    config = ParsedConfig(backend=scheme_backend(scheme))
    _check_url_shape(url, scheme, config.backend)
    _parse_hosts(config, scheme, parts.netloc, parts.path)
    seen: set[str] = set()
    pairs = _query_pairs(parts.query)
    repeated = _REPEATED_PARAMS.get(config.backend)
    parts_list: list[str] = []
    after_secret: str | None = None
    for name, value in pairs:
        if repeated is not None and name == repeated[0]:
            # The one repeatable parameter (layered's tier=, sharded's node=): each is a
            # percent-encoded backend URL, which parse_qsl has already decoded once (a second
            # unquote would corrupt the inner URL's own escapes, such as a password's %40).
            parts_list.append(value)
            after_secret = None
            continue
        try:
            if name in seen:
                raise ConfigurationError(f"URL parameter {name!r} is given twice")
            seen.add(name)
            # parse_qsl has decoded the value once already; a second unquote would turn a
            # password's literal "%41" into "A".
            _assign(config, name, value, "URL")
        except ConfigurationError:
            if after_secret is None:
                raise
            # The parameter after a secret may be the secret's own tail, cut at an unencoded
            # '&': its name and value are not shown.
            failed_after = after_secret
        else:
            after_secret = name if is_secret(name) else None
            continue
        raise ConfigurationError(
            f"the URL parameter after {failed_after!r} is invalid; if the {failed_after} holds "
            "'&', '=', '#', '+' or '%', percent-encode it (the parameter is not shown)"
        )
    if repeated is not None and parts_list:
        single, plural = repeated
        if plural in seen:
            raise ConfigurationError(
                f"give a {config.backend} URL's {plural} as repeated {single!r} parameters "
                f"or as {plural!r}, not both"
            )
        _assign(config, plural, parts_list, "URL")
    return config


def parse_mapping(mapping: Mapping[str, Any]) -> ParsedConfig:
    """Parse a dict (from code, YAML, JSON or TOML): ``url`` or ``backend`` plus parameters.

    ``{"url": "memory://", "namespace": "app"}`` and ``{"backend": "memory",
    "max_entries": 100}`` are both accepted; values given beside a URL override the URL's.
    A mapping wrapped as ``{"stratacache": {...}}`` is unwrapped.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigurationError(f"configuration must be a mapping, got {type(mapping).__name__}")
    if set(mapping) == {"stratacache"} and isinstance(mapping["stratacache"], Mapping):
        mapping = mapping["stratacache"]
    rest = dict(mapping)
    url = rest.pop("url", None)
    backend = rest.pop("backend", None)
    if url is not None and backend is not None:
        raise ConfigurationError("give either 'url' or 'backend' in a configuration, not both")
    if url is not None:
        config = parse_url(parse_str("url", url))
    else:
        name = parse_str("backend", backend) if backend is not None else "memory"
        # A backend name, or a URL scheme standing for one ("rediss" -> "redis").
        # The error is raised outside the except block so that no exception in its
        # context repeats the name unredacted (a URL with a password given as a name).
        found: str | None = None
        with contextlib.suppress(ConfigurationError):
            found = name if name in BACKEND_PARAMS else scheme_backend(name)
        if found is None:
            known = ", ".join(sorted(BACKEND_PARAMS))
            raise ConfigurationError(f"unknown backend {redact(name)!r}; known backends: {known}")
        config = ParsedConfig(backend=found)
    for name, value in rest.items():
        if not isinstance(name, str):
            raise ConfigurationError(f"configuration keys must be strings, got {name!r}")
        _assign(config, name, value, "configuration")
    return config


ENV_PREFIX = "STRATACACHE_"


def parse_env(environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX) -> ParsedConfig:
    """Parse ``STRATACACHE_URL`` and ``STRATACACHE_<PARAMETER>`` variables.

    ``STRATACACHE_BACKEND`` may name the backend instead of a URL. Any other variable with
    the prefix must name a known parameter, so a misspelt one fails loudly.
    """
    env = os.environ if environ is None else environ
    mapping: dict[str, Any] = {}
    for var, value in env.items():
        if var.startswith(prefix):
            mapping[var[len(prefix) :].lower()] = value
    if not mapping:
        raise ConfigurationError(f"no {prefix}* environment variables are set (e.g. {prefix}URL=memory://)")
    try:
        return parse_mapping(mapping)
    except ConfigurationError as exc:
        raise ConfigurationError(f"in environment variables {prefix}*: {exc}") from exc


def _load_yaml(yaml: Any, text: str, file: Path) -> Any:
    """``yaml.safe_load(text)``; a syntax error is re-raised as a ConfigurationError that
    gives the line, column and problem but never the offending line's text, which may be
    the password's line (PyYAML's own message quotes it, so it is not chained either)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    # Quoted text in the problem ("found character '%' ...") is part of the line: drop it.
    problem = re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", str(problem))
    raise ConfigurationError(
        f"cannot parse configuration file {str(file)!r}: YAML syntax error{where}: {problem} "
        "(the line is not shown since it may hold a password)"
    )


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (needs ``stratacache[yaml]``), JSON or TOML configuration file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read configuration file {str(file)!r}: {exc.strerror}") from exc
    suffix = file.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError as exc:
                raise ConfigurationError(
                    f"reading {file.name} needs PyYAML: pip install 'stratacache[yaml]'"
                ) from exc
            data = _load_yaml(yaml, text, file)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigurationError(
                f"unknown configuration file type {suffix!r} for {file.name}; use .yaml, .yml, .json or .toml"
            )
    except ConfigurationError:
        raise
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError
        raise ConfigurationError(f"cannot parse configuration file {str(file)!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"configuration file {str(file)!r} must hold a mapping at the top level")
    return data

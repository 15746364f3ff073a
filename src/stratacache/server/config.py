"""The server's configuration: defaults, a YAML file, command-line overrides, CONFIG GET/SET.

Every option has one entry in :data:`OPTIONS` (its Redis-style name, the field, a parser
and whether CONFIG SET may change it at run time), so the YAML loader, the command line and
CONFIG GET/SET share one table and one set of checks. Errors name the file, the key and the
value: ``ConfigurationError: server.yaml: maxmemory: '12 parsecs' is not a size (e.g. 256mb)``.

YAML keys are Redis's names (``maxmemory-policy``); underscores are accepted too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from .cluster import ClusterLayout

__all__ = [
    "DEFAULT_MAXMEMORY",
    "DEFAULT_PORT",
    "MAXMEMORY_POLICIES",
    "OPTIONS",
    "Option",
    "ServerConfig",
    "StoreConfig",
    "UserConfig",
    "load_config",
    "parse_size",
]

DEFAULT_PORT = 7379
"""``stratacache serve``'s port: Redis's 6379 plus 1000, so it never takes a local Redis's."""
DEFAULT_MAXMEMORY = 512 * 1024 * 1024
"""The memory limit without configuration: 512 MiB."""
MAXMEMORY_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
STORE_TYPES = ("general", "session", "ttl-only")
_POLICY_FOR = {
    "noeviction": "lru",
    "allkeys-lru": "lru",
    "allkeys-lfu": "tinylfu",
    "allkeys-random": "random",
    "volatile-lru": "lru",
    "volatile-lfu": "tinylfu",
    "volatile-random": "random",
    "volatile-ttl": "lru",
}

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def parse_size(value: Any) -> int:
    """A memory size as Redis reads it: an int, or digits with k/kb/m/mb/g/gb (case-insensitive)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size (e.g. 256mb)")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is not a size (e.g. 256mb)")
        return value
    if isinstance(value, (str, bytes)):
        text = value.decode() if isinstance(value, bytes) else value
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
        if match and match.group(2).lower() in _UNITS:
            return int(match.group(1)) * _UNITS[match.group(2).lower()]
    raise ValueError(f"{value!r} is not a size (e.g. 256mb)")


def _int(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not an integer")
        try:
            number = int(value.decode() if isinstance(value, bytes) else value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not an integer") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range [{low}, {high}]")
        return number

    return parse


def _str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    text = _str(value)
    return text or None


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _str(value).lower()
        if text not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _str(value).lower()
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off"):
        return False
    raise ValueError(f"{value!r} is not yes/no")


def _filename(value: Any) -> str:
    text = _str(value)
    if not text or "/" in text or text in (".", ".."):
        raise ValueError(f"{text!r} is not a plain file name (the directory is 'dir')")
    return text


def _save(value: Any) -> str:
    from .snapshot import parse_save

    return parse_save(value)


def _fsync_policy(value: Any) -> str:
    # YAML reads a bare ``appendfsync: no`` as False.
    return _choice("always", "everysec", "no")("no" if value is False else value)


def _bind(value: Any) -> tuple[str, ...]:
    hosts = tuple(_str(v) for v in value) if isinstance(value, (list, tuple)) else tuple(_str(value).split())
    if not hosts:
        raise ValueError("bind needs at least one address")
    return hosts


def _optional_bind(value: Any) -> tuple[str, ...] | None:
    if value is None or value in ("", b""):
        return None
    return _bind(value)


def _show_bind(value: Any) -> str:
    return "" if value is None else " ".join(value)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The store behind one database: its type and policy, optional limits of its own."""

    type: str = "general"
    policy: str | None = None
    max_entries: int | None = None
    max_bytes: int | None = None
    expire_after_access: float | None = None


@dataclass(frozen=True, slots=True)
class UserConfig:
    """A named user (AUTH name password): read-only, or limited to a list of commands."""

    name: str
    password: str | None
    readonly: bool = False
    commands: frozenset[str] | None = None
    enabled: bool = True


@dataclass(slots=True)
class ServerConfig:
    """Everything ``stratacache serve`` reads; see docs/server.md for each option."""

    bind: tuple[str, ...] = ("127.0.0.1",)
    port: int = DEFAULT_PORT
    databases: int = 16
    maxmemory: int = DEFAULT_MAXMEMORY
    maxmemory_policy: str = "allkeys-lru"
    maxclients: int = 10000
    timeout: int = 0
    tcp_keepalive: int = 300
    proto_max_bulk_len: int = 512 * 1024 * 1024
    client_query_buffer_limit: int = 1024 * 1024 * 1024
    client_output_buffer_limit_normal: int = 0
    client_output_buffer_limit_pubsub: int = 32 * 1024 * 1024
    requirepass: str | None = None
    hz: int = 10
    loglevel: str = "notice"
    logfile: str = ""
    tls_port: int = 0
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_cert_file: str | None = None
    tls_auth_clients: str = "no"
    lua_time_limit: int = 5000
    dir: str = "."
    dbfilename: str = "dump.scs"
    save: str = "3600 1 300 100 60 10000"
    appendonly: bool = False
    appendfilename: str = "appendonly.aof"
    appendfsync: str = "everysec"
    aof_load_truncated: bool = True
    auto_aof_rewrite_percentage: int = 100
    auto_aof_rewrite_min_size: int = 64 * 1024 * 1024
    admin_port: int = 0
    admin_bind: str = "127.0.0.1"
    memcached_port: int = 0
    memcached_bind: tuple[str, ...] | None = None
    memcached_db: int = 0
    memcached_max_item_size: int = 1024 * 1024
    cluster_enabled: bool = False
    cluster: ClusterLayout | None = None
    stores: dict[int, StoreConfig] = field(default_factory=dict)
    users: dict[str, UserConfig] = field(default_factory=dict)
    source: str = "<defaults>"
    # Options given on the command line (Redis names -> values as given): a reload re-applies
    # them over the file, so they keep precedence as they had at start (see reload.py).
    overrides: dict[str, Any] = field(default_factory=dict)

    def store_for(self, index: int) -> StoreConfig:
        """The store configuration of database ``index`` (a general store by default)."""
        return self.stores.get(index, StoreConfig())

    def policy_for(self, index: int) -> str:
        """The eviction policy of database ``index``: its own, else maxmemory-policy's."""
        own = self.store_for(index).policy
        return own if own is not None else _POLICY_FOR[self.maxmemory_policy]

    def get(self, name: str) -> str:
        """An option's value as CONFIG GET shows it."""
        option = OPTIONS[name]
        return option.show(getattr(self, option.attr))

    def set(self, name: str, value: Any, *, where: str = "CONFIG SET") -> None:
        """Parse and set an option by its Redis name; ConfigurationError names it and the value."""
        option = OPTIONS.get(name.lower().replace("_", "-"))
        if option is None:
            raise ConfigurationError(f"{where}: unknown option {name!r}")
        try:
            parsed = option.parse(value)
        except ValueError as exc:
            raise ConfigurationError(f"{where}: {option.name}: {exc}") from None
        setattr(self, option.attr, parsed)


@dataclass(frozen=True, slots=True)
class Option:
    """One configuration option: Redis name, field, parser, printer, changeable at run time."""

    name: str
    attr: str
    parse: Callable[[Any], Any]
    show: Callable[[Any], str] = str
    mutable: bool = True


def _show_bool(value: Any) -> str:
    return "yes" if value else "no"


def _show_optional(value: Any) -> str:
    return "" if value is None else str(value)


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("bind", "bind", _bind, " ".join, mutable=False),
        Option("port", "port", _int(0, 65535), mutable=False),
        Option("databases", "databases", _int(1, 1024), mutable=False),
        Option("maxmemory", "maxmemory", parse_size),
        Option("maxmemory-policy", "maxmemory_policy", _choice(*MAXMEMORY_POLICIES)),
        Option("maxclients", "maxclients", _int(1, 1_000_000)),
        Option("timeout", "timeout", _int(0, 2**31 - 1)),
        Option("tcp-keepalive", "tcp_keepalive", _int(0, 2**31 - 1)),
        Option("proto-max-bulk-len", "proto_max_bulk_len", parse_size),
        Option("client-query-buffer-limit", "client_query_buffer_limit", parse_size),
        Option("client-output-buffer-limit-normal", "client_output_buffer_limit_normal", parse_size),
        Option("client-output-buffer-limit-pubsub", "client_output_buffer_limit_pubsub", parse_size),
        Option("requirepass", "requirepass", _optional_str, _show_optional),
        Option("hz", "hz", _int(1, 500)),
        Option("loglevel", "loglevel", _choice("debug", "verbose", "notice", "warning", "nothing")),
        Option("logfile", "logfile", _str, mutable=False),
        Option("tls-port", "tls_port", _int(0, 65535), mutable=False),
        Option("tls-cert-file", "tls_cert_file", _optional_str, _show_optional, mutable=False),
        Option("tls-key-file", "tls_key_file", _optional_str, _show_optional, mutable=False),
        Option("tls-ca-cert-file", "tls_ca_cert_file", _optional_str, _show_optional, mutable=False),
        Option("tls-auth-clients", "tls_auth_clients", _choice("yes", "no", "optional"), mutable=False),
        Option("lua-time-limit", "lua_time_limit", _int(0, 2**31 - 1)),
        Option("dir", "dir", _str),
        Option("dbfilename", "dbfilename", _filename),
        Option("save", "save", _save),
        Option("appendonly", "appendonly", _bool, _show_bool),
        Option("appendfilename", "appendfilename", _str, mutable=False),
        Option("appendfsync", "appendfsync", _fsync_policy),
        Option("aof-load-truncated", "aof_load_truncated", _bool, _show_bool),
        Option("auto-aof-rewrite-percentage", "auto_aof_rewrite_percentage", _int(0, 2**31 - 1)),
        Option("auto-aof-rewrite-min-size", "auto_aof_rewrite_min_size", parse_size),
        Option("admin-port", "admin_port", _int(0, 65535), mutable=False),
        Option("admin-bind", "admin_bind", _str, mutable=False),
        Option("memcached-port", "memcached_port", _int(0, 65535), mutable=False),
        Option("memcached-bind", "memcached_bind", _optional_bind, _show_bind, mutable=False),
        Option("memcached-db", "memcached_db", _int(0, 1023), mutable=False),
        Option("memcached-max-item-size", "memcached_max_item_size", parse_size, mutable=False),
        Option("cluster-enabled", "cluster_enabled", _bool, _show_bool, mutable=False),
    )
}


def _stores(value: Any, where: str) -> dict[int, StoreConfig]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{where}: stores: expected a mapping of database number to store, got {value!r}"
        )
    stores: dict[int, StoreConfig] = {}
    known = {f.name for f in dataclasses.fields(StoreConfig)}
    for db, options in value.items():
        label = f"{where}: stores.{db}"
        try:
            index = int(db)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{label}: {db!r} is not a database number") from None
        if not isinstance(options, Mapping):
            raise ConfigurationError(f"{label}: expected a mapping, got {options!r}")
        unknown = set(options) - known
        if unknown:
            raise ConfigurationError(f"{label}: unknown key(s) {sorted(unknown)}; valid: {sorted(known)}")
        kind = options.get("type", "general")
        if kind not in STORE_TYPES:
            raise ConfigurationError(f"{label}.type: {kind!r} is not one of {', '.join(STORE_TYPES)}")
        policy = options.get("policy")
        if policy is not None:
            from ..core.policies import make_policy

            try:
                make_policy(policy, 1)
            except Exception as exc:
                raise ConfigurationError(f"{label}.policy: {policy!r}: {exc}") from None
        limits: dict[str, Any] = {}
        for name in ("max_entries", "max_bytes"):
            if options.get(name) is not None:
                try:
                    limits[name] = parse_size(options[name])
                except ValueError as exc:
                    raise ConfigurationError(f"{label}.{name}: {exc}") from None
        eaa = options.get("expire_after_access")
        if eaa is not None and (isinstance(eaa, bool) or not isinstance(eaa, (int, float)) or eaa <= 0):
            raise ConfigurationError(
                f"{label}.expire_after_access: {eaa!r} is not a positive number of seconds"
            )
        stores[index] = StoreConfig(type=kind, policy=policy, expire_after_access=eaa, **limits)
    return stores


def _users(value: Any, where: str) -> dict[str, UserConfig]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{where}: users: expected a mapping of user name to settings, got {value!r}"
        )
    users: dict[str, UserConfig] = {}
    for name, options in value.items():
        label = f"{where}: users.{name}"
        if not isinstance(options, Mapping):
            raise ConfigurationError(f"{label}: expected a mapping, got {options!r}")
        unknown = set(options) - {"password", "readonly", "commands", "enabled"}
        if unknown:
            raise ConfigurationError(
                f"{label}: unknown key(s) {sorted(unknown)}; valid: commands, enabled, password, readonly"
            )
        password = options.get("password")
        if password is not None and not isinstance(password, str):
            raise ConfigurationError(f"{label}.password: expected a string")
        commands = options.get("commands")
        if commands is not None:
            if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
                raise ConfigurationError(
                    f"{label}.commands: expected a list of command names, got {commands!r}"
                )
            commands = frozenset(c.lower() for c in commands)
        try:
            readonly = _bool(options.get("readonly", False))
            enabled = _bool(options.get("enabled", True))
        except ValueError as exc:
            raise ConfigurationError(f"{label}: {exc}") from None
        users[str(name)] = UserConfig(str(name), password, readonly, commands, enabled)
    return users


def config_from_mapping(data: Mapping[str, Any], where: str = "<config>") -> ServerConfig:
    """A :class:`ServerConfig` from a mapping (a parsed YAML file); errors name ``where``."""
    config = ServerConfig(source=where)
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigurationError(f"{where}: {key!r} is not an option name")
        name = key.lower().replace("_", "-")
        if name == "stores":
            config.stores = _stores(value, where)
        elif name == "users":
            config.users = _users(value, where)
        elif name == "cluster":
            from .cluster import parse_layout

            config.cluster = parse_layout(value, where)
        elif name in OPTIONS:
            config.set(name, value, where=where)
        else:
            raise ConfigurationError(f"{where}: unknown option {key!r} (value {value!r})")
    if config.cluster_enabled and "databases" not in data:
        config.databases = 1  # cluster mode has database 0 only (see server/cluster.py)
    for index in config.stores:
        if not 0 <= index < config.databases:
            raise ConfigurationError(
                f"{where}: stores.{index}: no such database (databases: {config.databases})"
            )
    return config


def load_config(path: str | Path) -> ServerConfig:
    """Read a YAML configuration file (needs PyYAML: ``pip install 'stratacache[server]'``)."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML is part of the server extra
        raise ConfigurationError("a config file needs PyYAML: pip install 'stratacache[server]'") from exc
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read the config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{where}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{where}: expected a mapping of options at the top level")
    return config_from_mapping(data, where)

"""Changing a running server's configuration: SIGHUP reload, store options of CONFIG SET/GET,
CONFIG REWRITE.

* **Reload** (:func:`reload_from_file`, on SIGHUP): the file given with ``--config`` is read
  again, the command-line options are applied over it as at start, and every option that can
  change at run time and differs is applied (:func:`apply_new_config`): the mutable options of
  :data:`~.config.OPTIONS` (``maxmemory`` resizes the pool, ``maxmemory-policy`` switches
  eviction, ...) and each database's ``policy``, ``max_entries`` and ``max_bytes``. Options
  that need a restart (``port``, ``bind``, ``databases``, a store's ``type`` or
  ``expire_after_access``, ``users``, ...) are logged and keep their running values. A file
  that does not load (bad YAML, a bad value) is logged with its error and changes nothing.
* **Store options** (:data:`STORE_OPTION`): ``store.<db>.max-entries``,
  ``store.<db>.max-bytes`` (0: no limit of its own) and ``store.<db>.policy`` (an engine policy
  name, or "" to follow ``maxmemory-policy``), for CONFIG GET and CONFIG SET.
* **Rewrite** (:func:`rewrite_config`): the current configuration written back to the file it
  was read from, keeping the file's lines (order, comments, spelling of keys) wherever the value
  did not change; see docs/operations.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from .config import OPTIONS, ServerConfig, StoreConfig, config_from_mapping, load_config, parse_size

if TYPE_CHECKING:
    from .app import Server

__all__ = [
    "STORE_OPTION",
    "apply_new_config",
    "apply_stores",
    "get_store_option",
    "parse_store_option",
    "reload_from_file",
    "rewrite_config",
    "store_option_names",
]

logger = logging.getLogger("stratacache.server")

STORE_OPTION = re.compile(r"store\.(\d+)\.(max-entries|max-bytes|policy)")
"""CONFIG GET/SET names of a database's store options."""
_STORE_FIELDS = {"max-entries": "max_entries", "max-bytes": "max_bytes", "policy": "policy"}


# --------------------------------------------------------------------- store options


def store_option_names(config: ServerConfig) -> list[str]:
    """Every store option name, database by database."""
    return [f"store.{index}.{name}" for index in range(config.databases) for name in _STORE_FIELDS]


def get_store_option(config: ServerConfig, name: str) -> str:
    """CONFIG GET's value of a store option ("0" for no limit, "" for no policy of its own)."""
    match = STORE_OPTION.fullmatch(name)
    assert match is not None
    value = getattr(config.store_for(int(match.group(1))), _STORE_FIELDS[match.group(2)])
    if value is None:
        return "" if match.group(2) == "policy" else "0"
    return str(value)


def parse_store_option(
    config: ServerConfig, stores: Mapping[int, StoreConfig], name: str, value: Any
) -> dict[int, StoreConfig]:
    """``stores`` with store option ``name`` set to ``value``; ValueError says why not."""
    match = STORE_OPTION.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown store option {name!r}")
    index = int(match.group(1))
    if index >= config.databases:
        raise ValueError(f"no such database {index} (databases: {config.databases})")
    current = stores.get(index, StoreConfig())
    field = _STORE_FIELDS[match.group(2)]
    text = value.decode() if isinstance(value, bytes) else str(value)
    parsed: Any
    if field == "policy":
        parsed = text.strip().lower() or None
        if parsed is not None:
            from ..core.policies import make_policy

            try:
                make_policy(parsed, 1)
            except Exception as exc:
                raise ValueError(str(exc)) from None  # "unknown policy 'x'; valid: ..."
            if current.type == "session" and parsed != "lru":
                raise ValueError("a session store uses lru eviction")
    else:
        parsed = parse_size(text) or None  # raises ValueError: "... is not a size"
        if parsed is not None and current.type == "ttl-only":
            raise ValueError("a ttl-only store has no size limit")
    updated = dict(stores)
    updated[index] = dataclasses.replace(current, **{field: parsed})
    return updated


def apply_stores(server: Server) -> None:
    """Bring every database's store in line with ``server.config`` (its policy, its limits):
    a store whose eviction policy changes is rebuilt (entries kept with their expiry), the
    others are resized in place; then the pool is relieved if it is over its budget."""
    server._switch_policies()
    for db in server.databases:
        wanted = server.config.store_for(db.index)
        store = db.store
        if (store.max_entries, store.max_bytes) != (wanted.max_entries, wanted.max_bytes):
            store.resize(max_entries=wanted.max_entries, max_bytes=wanted.max_bytes)
    server.pool.relieve()


# -------------------------------------------------------------------------- reload


def apply_new_config(server: Server, new: ServerConfig) -> tuple[list[str], list[str]]:
    """Apply what may change at run time from ``new`` to the running server, all or nothing.

    Returns (names applied, names that need a restart and were left as they are). Raises
    ConfigurationError (and changes nothing) when ``new`` cannot apply to this server.
    """
    config = server.config
    applied: list[str] = []
    restart: list[str] = []
    for name, option in OPTIONS.items():
        if getattr(config, option.attr) == getattr(new, option.attr):
            continue
        (applied if option.mutable else restart).append(name)
    for index in new.stores:
        if index >= len(server.databases):
            raise ConfigurationError(
                f"{new.source}: stores.{index}: no such database (running with {len(server.databases)})"
            )
    stores = dict(config.stores)
    for index in sorted(set(config.stores) | set(new.stores)):
        old, wanted = config.store_for(index), new.store_for(index)
        for field in ("type", "expire_after_access"):
            if getattr(old, field) != getattr(wanted, field):
                restart.append(f"stores.{index}.{field}")
        live = {f: getattr(wanted, f) for f in ("policy", "max_entries", "max_bytes")}
        if old.type != wanted.type:
            # The running store keeps its type: its limits must still suit it.
            if old.type == "ttl-only":
                live["max_entries"] = live["max_bytes"] = None
            if old.type == "session":
                live["policy"] = old.policy
        changed = [f for f, v in live.items() if getattr(old, f) != v]
        if changed:
            stores[index] = dataclasses.replace(old, **live)
            applied += [f"stores.{index}.{f}" for f in changed]
    if config.users != new.users:
        restart.append("users")
    names = {n for n in applied if n in OPTIONS}
    previous = {n: getattr(config, OPTIONS[n].attr) for n in names}
    previous_stores = config.stores
    for name in names:
        setattr(config, OPTIONS[name].attr, getattr(new, OPTIONS[name].attr))
    config.stores = stores
    try:
        server.apply_config(names)
        apply_stores(server)
    except ConfigurationError:
        for name, value in previous.items():
            setattr(config, OPTIONS[name].attr, value)
        config.stores = previous_stores
        server.apply_config(names)
        apply_stores(server)
        raise
    return applied, restart


def reload_from_file(server: Server) -> tuple[list[str], list[str]] | None:
    """SIGHUP: read the config file again and apply it (see the module docstring); logs what
    changed, what needs a restart, or why nothing changed. None when nothing was applied."""
    source = server.config.source
    if source.startswith("<"):
        logger.warning("SIGHUP: the server runs without a config file (--config): nothing to reload")
        return None
    try:
        new = load_config(source)
        for name, value in server.config.overrides.items():
            new.set(name, value, where="command line")
        applied, restart = apply_new_config(server, new)
    except ConfigurationError as exc:
        logger.error("SIGHUP: configuration not reloaded, nothing changed: %s", exc)
        return None
    if restart:
        logger.warning(
            "SIGHUP: %s changed in %s but only take effect on a restart; kept as they are",
            ", ".join(restart),
            source,
        )
    logger.warning(
        "SIGHUP: configuration reloaded from %s: %s", source, ", ".join(applied) if applied else "no change"
    )
    return applied, restart


# ------------------------------------------------------------------------- rewrite

_TOP_KEY = re.compile(r"([A-Za-z_][\w.-]*)\s*:")


def _blocks(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Top-level key (normalized) -> (first line, end line) of its block in a YAML file: the
    key's line and the lines after it that are indented or list items (blank lines and
    comments at column 0 that end the block are not part of it)."""
    found: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(lines):
        match = _TOP_KEY.match(lines[i])
        if match is None:
            i += 1
            continue
        start = i
        end = i + 1
        j = i + 1
        while j < len(lines):
            line = lines[j]
            if line.strip() == "" or (line.startswith("#")):
                j += 1
                continue
            if line[0] in " \t-":
                j += 1
                end = j
                continue
            break
        found[match.group(1).lower().replace("_", "-")] = (start, end)
        i = end
    return found


def _scalar(text: str) -> str:
    """A value as YAML: plain digits stay plain, anything else is a quoted-if-needed string."""
    import yaml

    if re.fullmatch(r"\d+", text):
        return text
    dumped: str = yaml.safe_dump({"v": text}, width=1 << 20)  # "v: <value>\n"
    return dumped[3:].rstrip("\n")


def _stores_yaml(key: str, stores: Mapping[int, StoreConfig]) -> list[str]:
    import yaml

    data: dict[int, dict[str, Any]] = {}
    for index in sorted(stores):
        fields = {
            f.name: getattr(stores[index], f.name)
            for f in dataclasses.fields(StoreConfig)
            if getattr(stores[index], f.name) != f.default
        }
        data[index] = fields
    if not data:
        return [f"{key}: {{}}"]
    text: str = yaml.safe_dump({key: data}, sort_keys=False, default_flow_style=False)
    return text.rstrip("\n").split("\n")


def _same(config: ServerConfig, other: ServerConfig) -> bool:
    return all(getattr(config, o.attr) == getattr(other, o.attr) for o in OPTIONS.values()) and {
        i: s for i, s in config.stores.items() if s != StoreConfig()
    } == {i: s for i, s in other.stores.items() if s != StoreConfig()}


def rewrite_text(text: str, config: ServerConfig) -> str:
    """The config file ``text`` updated to ``config``: a key whose value is unchanged keeps its
    lines; a changed one gets one new line (or block, for ``stores``) in its place; options the
    file lacks and that differ from the defaults are appended; other keys (``users``, options
    this server does not know) are kept as they are."""
    import yaml

    data = yaml.safe_load(text) if text.strip() else {}
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{config.source}: expected a mapping of options at the top level")
    written = config_from_mapping(data, config.source)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blocks = _blocks(lines)
    spelled = {str(k).lower().replace("_", "-"): str(k) for k in data}
    replace: dict[int, tuple[int, list[str]]] = {}
    append: list[str] = []
    defaults = ServerConfig()
    for name, option in OPTIONS.items():
        current = getattr(config, option.attr)
        if name in blocks and name in spelled:
            if getattr(written, option.attr) != current:
                start, end = blocks[name]
                replace[start] = (end, [f"{spelled[name]}: {_scalar(option.show(current))}"])
        elif current != getattr(defaults, option.attr):
            append.append(f"{name}: {_scalar(option.show(current))}")
    stores = {i: s for i, s in config.stores.items() if s != StoreConfig()}
    if {i: s for i, s in written.stores.items() if s != StoreConfig()} != stores:
        if "stores" in blocks and "stores" in spelled:
            start, end = blocks["stores"]
            replace[start] = (end, _stores_yaml(spelled["stores"], stores))
        else:
            append += _stores_yaml("stores", stores)
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i in replace:
            end, new_lines = replace[i]
            out += new_lines
            i = end
        else:
            out.append(lines[i])
            i += 1
    if append:
        out += ["", "# Generated by CONFIG REWRITE", *append]
    result = "\n".join(out) + "\n"
    # The file must load back to the running configuration, or it is not written.
    check = yaml.safe_load(result) or {}
    if not _same(config, config_from_mapping(check, config.source)):
        raise ConfigurationError(f"{config.source}: the rewritten file would not load back the same values")
    return result


def rewrite_config(config: ServerConfig) -> Path:
    """CONFIG REWRITE: write ``config`` back to its file (atomically: a temporary file in the
    same directory, fsync, rename, fsync of the directory). Raises ConfigurationError when the
    server has no config file, OSError when the file cannot be written."""
    if config.source.startswith("<") or not config.source:
        raise ConfigurationError("The server is running without a config file")
    path = Path(config.source)
    text = path.read_text(encoding="utf-8")
    mode = path.stat().st_mode & 0o7777
    new_text = rewrite_text(text, config)
    if new_text == text:
        return path
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path

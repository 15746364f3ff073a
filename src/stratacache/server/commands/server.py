"""Server commands: INFO COMMAND CONFIG DBSIZE FLUSHDB FLUSHALL TIME MEMORY SHUTDOWN ROLE.

INFO reports what clients read (``redis_version``, ``arch_bits``, ``cluster_enabled``, memory,
stats, keyspace) from the server's own state: ``used_memory`` is the memory pool's ledger
(what the stores weigh their entries at), evictions and expirations are the stores'
counters. CONFIG GET/SET go through :mod:`stratacache.server.config`'s table; what CONFIG SET
changes takes effect at once (``maxmemory`` resizes the pool, ``maxmemory-policy`` turns
eviction on or off).
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import platform
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

from ..._exceptions import ConfigurationError, SnapshotError
from .. import app, snapshot
from ..admin import latency
from ..aof import aof_info
from ..config import OPTIONS, ServerConfig
from ..connection import Deferred
from ..errors import NOT_INTEGER, SYNTAX
from ..keyspace import server_weigher, skey
from ..reload import STORE_OPTION, apply_stores, get_store_option, parse_store_option, store_option_names
from ..resp import ErrorReply, Verbatim
from . import COMMANDS, Command, command, run_subcommand, subcommand

if TYPE_CHECKING:
    from ..app import Server
    from ..connection import Client

__all__ = ["bytes_to_human", "info_text"]


# ------------------------------------------------------------------------------ INFO


def bytes_to_human(n: int) -> str:
    """Redis's ``bytesToHuman``: ``512B``, ``1.50K``, ``2.00M``, ``1.00G``..."""
    if n < 1024:
        return f"{n}B"
    for unit in "KMGTP":
        n_unit = n / 1024
        if n_unit < 1024 or unit == "P":
            return f"{n_unit:.2f}{unit}"
        n = int(n_unit)
    return f"{n}B"  # pragma: no cover - the loop always returns


def _memory_state(server: Server) -> dict[str, Any]:
    state: dict[str, Any] = server.extra.setdefault("info", {"peak": 0})
    return state


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the peak RSS instead
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _keyspace_line(server: Server, index: int) -> str | None:
    db = server.databases[index]
    keys = db.keys()
    if not keys:
        return None
    # Counting expiring keys reads every entry's metadata: exact up to 10,000 keys, an
    # estimate from the first 10,000 beyond (INFO must not stall the loop on a big keyspace).
    sample = keys[:10_000]
    now = time.time()
    expiring = 0
    ttl_total = 0.0
    for key in sample:
        deadline = db.deadline(key)
        if deadline is not None:
            expiring += 1
            ttl_total += max(0.0, deadline - now)
    expires = expiring if len(sample) == len(keys) else round(expiring * len(keys) / len(sample))
    avg_ttl = int(ttl_total * 1000 / expiring) if expiring else 0
    return f"db{index}:keys={len(keys)},expires={expires},avg_ttl={avg_ttl}"


def _ops_per_sec(server: Server) -> int:
    samples = server.ops_samples
    if len(samples) < 2:
        return 0
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    return int((c1 - c0) / (t1 - t0)) if t1 > t0 else 0


def _section(server: Server, name: str) -> list[str]:
    config = server.config
    now = time.time()
    if name == "server":
        uname = platform.uname()
        uptime = int(now - server.started)
        loop = asyncio.get_running_loop()
        return [
            f"redis_version:{app.VERSION}",
            "redis_git_sha1:00000000",
            "redis_git_dirty:0",
            "redis_build_id:0",
            f"redis_mode:{'standalone' if server.cluster is None else 'cluster'}",
            f"os:{uname.system} {uname.release} {uname.machine}",
            f"arch_bits:{64 if sys.maxsize > 2**32 else 32}",
            "monotonic_clock:POSIX clock_gettime",
            f"multiplexing_api:{'uvloop' if type(loop).__module__.startswith('uvloop') else 'asyncio'}",
            "atomicvar_api:python",
            "gcc_version:0.0.0",
            f"process_id:{os.getpid()}",
            "process_supervised:no",
            f"run_id:{server.run_id}",
            f"tcp_port:{config.port}",
            f"server_time_usec:{int(now * 1_000_000)}",
            f"uptime_in_seconds:{uptime}",
            f"uptime_in_days:{uptime // 86400}",
            f"hz:{config.hz}",
            f"configured_hz:{config.hz}",
            f"lru_clock:{int(now) & 0xFFFFFF}",
            f"executable:{sys.executable}",
            f"config_file:{'' if config.source.startswith('<') else config.source}",
            "io_threads_active:0",
            f"python_version:{platform.python_version()}",
        ]
    if name == "clients":
        clients = list(server.clients.values())
        return [
            f"connected_clients:{len(clients)}",
            "cluster_connections:0",
            f"maxclients:{config.maxclients}",
            f"client_recent_max_input_buffer:{max((c.parser.buffered for c in clients), default=0)}",
            "client_recent_max_output_buffer:0",
            f"blocked_clients:{sum(1 for c in clients if c.blocked is not None)}",
            f"tracking_clients:{sum(1 for c in clients if c.extra.get('tracking'))}",
            "clients_in_timeout_table:0",
        ]
    if name == "memory":
        used = server.pool.used
        state = _memory_state(server)
        state["peak"] = peak = max(state["peak"], used)
        rss = _rss()
        pool = server.pool
        return [
            f"used_memory:{used}",
            f"used_memory_human:{bytes_to_human(used)}",
            f"used_memory_rss:{rss}",
            f"used_memory_rss_human:{bytes_to_human(rss)}",
            f"used_memory_peak:{peak}",
            f"used_memory_peak_human:{bytes_to_human(peak)}",
            f"used_memory_dataset:{used}",
            f"maxmemory:{config.maxmemory}",
            f"maxmemory_human:{bytes_to_human(config.maxmemory)}",
            f"maxmemory_policy:{config.maxmemory_policy}",
            f"mem_fragmentation_ratio:{rss / used if used else 0:.2f}",
            "mem_allocator:pymalloc",
            "lazyfree_pending_objects:0",
            f"pool_pressure_level:{pool.level.name.lower()}",
            f"pool_relief_runs:{pool.stats().relief_runs}",
        ]
    if name == "persistence":
        return [
            *snapshot.info_lines(server),
            *aof_info(server),
        ]
    if name == "stats":
        stores = [db.store for db in server.databases]
        return [
            f"total_connections_received:{server.connections_received}",
            f"total_commands_processed:{server.commands_processed}",
            f"instantaneous_ops_per_sec:{_ops_per_sec(server)}",
            f"rejected_connections:{server.rejected_connections}",
            f"expired_keys:{sum(s.expirations for s in stores)}",
            f"evicted_keys:{sum(s.evictions for s in stores)}",
            f"keyspace_hits:{server.keyspace_hits}",
            f"keyspace_misses:{server.keyspace_misses}",
            f"pubsub_channels:{len({ch for c in server.clients.values() for ch in c.channels})}",
            f"pubsub_patterns:{len({p for c in server.clients.values() for p in c.patterns})}",
            f"total_error_replies:{sum(c.failed for c in COMMANDS.values())}",
            f"total_protocol_errors:{server.protocol_errors}",
        ]
    if name == "replication":
        return [
            "role:master",
            "connected_slaves:0",
            "master_failover_state:no-failover",
            f"master_replid:{server.run_id}",
            f"master_replid2:{'0' * 40}",
            "master_repl_offset:0",
            "second_repl_offset:-1",
            "repl_backlog_active:0",
            "repl_backlog_size:1048576",
            "repl_backlog_first_byte_offset:0",
            "repl_backlog_histlen:0",
        ]
    if name == "cpu":
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return [
            f"used_cpu_sys:{usage.ru_stime:.6f}",
            f"used_cpu_user:{usage.ru_utime:.6f}",
            f"used_cpu_sys_children:{children.ru_stime:.6f}",
            f"used_cpu_user_children:{children.ru_utime:.6f}",
        ]
    if name in ("modules", "errorstats", "latencystats"):
        return []
    if name == "commandstats":
        lines = []
        for cmd in sorted(COMMANDS.values(), key=lambda c: c.name):
            if cmd.calls or cmd.failed:
                lines.append(
                    f"cmdstat_{cmd.name}:calls={cmd.calls},usec=0,usec_per_call=0.00,"
                    f"rejected_calls=0,failed_calls={cmd.failed}"
                )
        return lines
    if name == "cluster":
        return [f"cluster_enabled:{int(server.config.cluster_enabled)}"]
    if name == "keyspace":
        return [line for i in range(len(server.databases)) if (line := _keyspace_line(server, i))]
    raise KeyError(name)


_DEFAULT = (
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
)
_ALL = (*_DEFAULT[:8], "commandstats", "errorstats", "latencystats", "cluster", "keyspace")
_TITLES = {"cpu": "CPU"}


def info_text(server: Server, names: list[str]) -> str:
    """INFO's text for section names (``default``, ``all``, ``everything`` or sections)."""
    wanted: list[str] = []
    for raw in names or ["default"]:
        name = raw.lower()
        group = {"default": _DEFAULT, "all": _ALL, "everything": _ALL}.get(name, (name,))
        for section in group:
            if section not in wanted:
                wanted.append(section)
    parts = []
    for section in _ALL:  # Redis's order, whatever the request's
        if section in wanted:
            title = _TITLES.get(section, section.capitalize())
            parts.append("\r\n".join([f"# {title}", *_section(server, section)]) + "\r\n")
    return "\r\n".join(parts)


@command("info", arity=-1, flags="loading stale", group="server")
def info(client: Client, args: list[bytes]) -> Any:
    """Get information and statistics about the server."""
    return Verbatim(info_text(client.server, [a.decode("latin-1") for a in args[1:]]).encode())


# --------------------------------------------------------------------------- COMMAND


def _categories(cmd: Command) -> list[str]:
    flags = cmd.flags
    cats = []
    if "write" in flags:
        cats.append("@write")
    if "readonly" in flags:
        cats.append("@read")
    if cmd.group in ("string", "list", "set", "hash", "sortedset", "bitmap", "hyperloglog", "geo", "stream"):
        cats.append(f"@{cmd.group}")
    elif cmd.group == "generic":
        cats.append("@keyspace")
    if "admin" in flags:
        cats += ["@admin", "@dangerous"]
    cats.append("@fast" if "fast" in flags else "@slow")
    if "blocking" in flags:
        cats.append("@blocking")
    if cmd.group in ("connection", "transactions", "pubsub", "scripting"):
        cats.append("@" + {"transactions": "transaction"}.get(cmd.group, cmd.group))
    return cats


def _key_specs(cmd: Command) -> list[Any]:
    if cmd.first_key <= 0:
        return []
    flags = ["RW"] if cmd.write else ["RO"]
    last = cmd.last_key - cmd.first_key if cmd.last_key >= 0 else cmd.last_key
    return [
        {
            b"flags": flags,
            b"begin_search": {b"type": b"index", b"spec": {b"index": cmd.first_key}},
            b"find_keys": {
                b"type": b"range",
                b"spec": {b"lastkey": last, b"keystep": cmd.step, b"limit": 0},
            },
        }
    ]


# Redis lists a command's flags in this order (its CMD_* bit order).
_FLAG_ORDER = {
    flag: i
    for i, flag in enumerate(
        [
            "write",
            "readonly",
            "denyoom",
            "module",
            "admin",
            "pubsub",
            "noscript",
            "blocking",
            "loading",
            "stale",
            "skip_monitor",
            "skip_slowlog",
            "asking",
            "fast",
            "no_auth",
            "may_replicate",
            "sentinel",
            "only_sentinel",
            "no_mandatory_keys",
            "protected",
            "movablekeys",
            "no_async_loading",
            "no_multi",
            "allow_busy",
        ]
    )
}


def command_info(cmd: Command, resp3: bool = False) -> list[Any]:
    """COMMAND INFO's entry for ``cmd``: name, arity, flags, first, last, step, ACL
    categories, tips, key specs, subcommands. Flags and categories are sets in RESP3, and
    arrays in Redis's order in RESP2."""
    flags = sorted(cmd.flags, key=lambda f: _FLAG_ORDER.get(f, len(_FLAG_ORDER)))
    categories = _categories(cmd)
    return [
        cmd.name.encode(),
        cmd.arity,
        set(flags) if resp3 else flags,
        cmd.first_key,
        cmd.last_key,
        cmd.step,
        set(categories) if resp3 else categories,
        [],
        _key_specs(cmd),
        [command_info(sub, resp3) for sub in cmd.subcommands.values()],
    ]


def _docs(cmd: Command) -> dict[bytes, Any]:
    docs: dict[bytes, Any] = {
        b"summary": cmd.summary.encode(),
        b"since": cmd.since.encode(),
        b"group": cmd.group.encode(),
    }
    if cmd.subcommands:
        docs[b"subcommands"] = {sub.name.encode(): _docs(sub) for sub in cmd.subcommands.values()}
    return docs


def _lookup(name: bytes) -> Command | None:
    """A command or a ``parent|sub`` subcommand by name."""
    text = name.decode("latin-1").lower()
    parent, _, sub = text.partition("|")
    cmd = COMMANDS.get(parent.encode("latin-1"))
    if cmd is None or not sub:
        return cmd
    return cmd.subcommands.get(sub)


@command("command", arity=-1, flags="loading stale", group="server")
def command_(client: Client, args: list[bytes]) -> Any:
    """Get array of Redis command details."""
    if len(args) == 1:
        return [command_info(cmd, client.resp3) for cmd in COMMANDS.values()]
    return run_subcommand(client, args)


@subcommand("command", "count", arity=2, flags="loading stale")
def command_count(client: Client, args: list[bytes]) -> Any:
    """Get total number of Redis commands."""
    return len(COMMANDS)


@subcommand("command", "info", arity=-2, flags="loading stale")
def command_info_(client: Client, args: list[bytes]) -> Any:
    """Get array of specific Redis command details, or all when no argument is given."""
    if len(args) == 2:
        return [command_info(cmd, client.resp3) for cmd in COMMANDS.values()]
    result: list[Any] = []
    for name in args[2:]:
        cmd = _lookup(name)
        result.append(None if cmd is None else command_info(cmd, client.resp3))
    return result


@subcommand("command", "docs", arity=-2, flags="loading stale")
def command_docs(client: Client, args: list[bytes]) -> Any:
    """Get array of specific Redis command documentation."""
    if len(args) == 2:
        return {cmd.name.encode(): _docs(cmd) for cmd in COMMANDS.values()}
    docs: dict[bytes, Any] = {}
    for name in args[2:]:
        cmd = _lookup(name)
        if cmd is not None:
            docs[cmd.name.encode()] = _docs(cmd)
    return docs


@subcommand("command", "list", arity=-2, flags="loading stale")
def command_list(client: Client, args: list[bytes]) -> Any:
    """Get an array of Redis command names (FILTERBY MODULE, ACLCAT or PATTERN)."""
    names = []
    for cmd in COMMANDS.values():
        names.append(cmd.name)
        names += [sub.name for sub in cmd.subcommands.values()]
    if len(args) == 2:
        return [n.encode() for n in names]
    if len(args) != 5 or args[2].lower() != b"filterby":
        raise ErrorReply(SYNTAX)
    kind, value = args[3].lower(), args[4].decode("latin-1")
    if kind == b"module":
        return []
    if kind == b"pattern":
        return [n.encode() for n in names if fnmatch.fnmatchcase(n, value.lower())]
    if kind == b"aclcat":
        wanted = "@" + value.lower()
        return [n.encode() for n in names if (c := _lookup(n.encode())) and wanted in _categories(c)]
    raise ErrorReply(SYNTAX)


@subcommand("command", "getkeys", arity=-3, flags="loading stale")
def command_getkeys(client: Client, args: list[bytes]) -> Any:
    """Extract keys given a full Redis command."""
    cmd = COMMANDS.get(args[2].lower())
    if cmd is None:
        raise ErrorReply("ERR Invalid command specified")
    rest = args[2:]
    if (cmd.arity > 0 and len(rest) != cmd.arity) or len(rest) < -cmd.arity:
        raise ErrorReply("ERR Invalid number of arguments specified for command")
    positions = cmd.key_positions(rest)
    if not positions:
        raise ErrorReply("ERR The command has no key arguments")
    return [rest[i] for i in positions]


@subcommand("command", "help", arity=2, flags="loading stale")
def command_help(client: Client, args: list[bytes]) -> Any:
    """Show helpful text about the different subcommands."""
    return [
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.",
        "HELP",
        "    Print this help.",
    ]


# ---------------------------------------------------------------------------- CONFIG

# Options clients commonly read that have one fixed value here (no persistence, no modules).
_FIXED = {
    "maxmemory-samples": "5",
    "notify-keyspace-events": "",
}


@command("config", arity=-2, flags="", group="server")
def config_(client: Client, args: list[bytes]) -> Any:
    """A container for server configuration commands."""
    return run_subcommand(client, args)


@subcommand("config", "get", arity=-3, flags="admin noscript loading stale")
def config_get(client: Client, args: list[bytes]) -> Any:
    """Get the values of configuration parameters (glob patterns)."""
    config = client.server.config
    result: dict[bytes, bytes] = {}
    for raw in args[2:]:
        pattern = raw.decode("latin-1").lower()
        for name in OPTIONS:
            if fnmatch.fnmatchcase(name, pattern):
                result[name.encode()] = config.get(name).encode()
        for name, value in _FIXED.items():
            if fnmatch.fnmatchcase(name, pattern):
                result[name.encode()] = value.encode()
        for name in store_option_names(config):
            if fnmatch.fnmatchcase(name, pattern):
                result[name.encode()] = get_store_option(config, name).encode()
    return result


_REDIS_POLICY_ORDER = (
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
)


def _redis_reason(message: str) -> str:
    """Our parser's reason as Redis words it."""
    if "is not a size" in message:
        return "argument must be a memory value"
    if "is out of range [" in message:
        low, high = message.rsplit("[", 1)[1].rstrip("]").split(", ")
        return f"argument must be between {low} and {high} inclusive"
    if "is not an integer" in message:
        return "argument couldn't be parsed into an integer"
    if "is not yes/no" in message:
        return "argument must be 'yes' or 'no'"
    if "is not one of " in message:
        choices = message.split("is not one of ", 1)[1]
        if set(choices.split(", ")) == set(_REDIS_POLICY_ORDER):
            choices = ", ".join(_REDIS_POLICY_ORDER)
        return f"argument(s) must be one of the following: {choices}"
    return message


def _failed(name: str, reason: str) -> ErrorReply:
    return ErrorReply(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")


@subcommand("config", "set", arity=-4, flags="admin noscript loading stale")
def config_set(client: Client, args: list[bytes]) -> Any:
    """Set configuration parameters (several name/value pairs, all or none)."""
    if len(args) % 2:
        raise ErrorReply(SYNTAX)
    server = client.server
    config = server.config
    pairs: dict[str, bytes] = {}
    store_pairs: dict[str, bytes] = {}  # store.<db>.<option> (reload.py)
    for i in range(2, len(args), 2):
        raw = args[i].decode("latin-1")
        name = raw.lower()
        option = OPTIONS.get(name)
        if option is None and STORE_OPTION.fullmatch(name):
            if name in store_pairs:
                raise _failed(raw, "duplicate parameter")
            store_pairs[name] = args[i + 1]
            continue
        if option is None:
            raise ErrorReply(f"ERR Unknown option or number of arguments for CONFIG SET - '{raw}'")
        if name in pairs:
            raise _failed(raw, "duplicate parameter")
        if not option.mutable:
            raise _failed(raw, "can't set immutable config")
        pairs[name] = args[i + 1]
    # Parse every value on a copy first: a CONFIG SET changes all its options or none.
    trial = ServerConfig(**{f: getattr(config, f) for f in config.__slots__})
    for name, value in pairs.items():
        try:
            trial.set(name, value)
        except ConfigurationError as exc:
            reason = str(exc).split(": ", 2)[-1]
            raise _failed(name, _redis_reason(reason)) from None
    stores = config.stores
    for name, value in store_pairs.items():
        try:
            stores = parse_store_option(config, stores, name, value)
        except ValueError as exc:
            raise _failed(name, _redis_reason(str(exc))) from None
    old = {name: getattr(config, OPTIONS[name].attr) for name in pairs}
    for name in pairs:
        setattr(config, OPTIONS[name].attr, getattr(trial, OPTIONS[name].attr))
    try:
        server.apply_config(set(pairs))
    except ConfigurationError as exc:
        for name, value in old.items():
            setattr(config, OPTIONS[name].attr, value)
        server.apply_config(set(pairs))
        raise _failed(next(iter(pairs)), str(exc)) from None
    if store_pairs:
        config.stores = stores
        apply_stores(server)
    return "OK"


@subcommand("config", "resetstat", arity=2, flags="admin noscript loading stale")
def config_resetstat(client: Client, args: list[bytes]) -> Any:
    """Reset the stats returned by INFO."""
    server = client.server
    for db in server.databases:  # first: keyspace_hits/misses are their sums
        db.hits = db.misses = 0
    server.commands_processed = 0
    server.connections_received = 0
    server.rejected_connections = 0
    server.keyspace_hits = 0
    server.keyspace_misses = 0
    server.protocol_errors = 0
    server.ops_samples.clear()
    for db in server.databases:
        db.store.evictions = 0
        db.store.expirations = 0
    latency.reset()
    for cmd in COMMANDS.values():
        cmd.calls = cmd.failed = cmd.usec = 0
        for sub in cmd.subcommands.values():
            sub.calls = sub.failed = sub.usec = 0
    _memory_state(server)["peak"] = server.pool.used
    return "OK"


@subcommand("config", "help", arity=2, flags="loading stale")
def config_help(client: Client, args: list[bytes]) -> Any:
    """Show helpful text about the different subcommands."""
    return [
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "REWRITE",
        "    Rewrite the configuration file.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "HELP",
        "    Print this help.",
    ]


# ---------------------------------------------------------------- keyspace and misc


@command("dbsize", arity=1, flags="readonly fast", group="server")
def dbsize(client: Client, args: list[bytes]) -> Any:
    """Return the number of keys in the selected database."""
    return len(client.db)


def _flush_mode(args: list[bytes]) -> None:
    if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"async", b"sync")):
        raise ErrorReply(SYNTAX)


@command("flushdb", arity=-1, flags="write", group="server")
def flushdb(client: Client, args: list[bytes]) -> Any:
    """Remove all keys from the current database (ASYNC and SYNC both free at once)."""
    _flush_mode(args)
    client.db.flush()
    return "OK"


@command("flushall", arity=-1, flags="write", group="server")
def flushall(client: Client, args: list[bytes]) -> Any:
    """Remove all keys from all databases (ASYNC and SYNC both free at once)."""
    _flush_mode(args)
    for db in client.server.databases:
        db.flush()
    return "OK"


@command("time", arity=1, flags="loading stale fast", group="server")
def time_(client: Client, args: list[bytes]) -> Any:
    """Return the current server time."""
    now = time.time_ns() // 1000
    return [str(now // 1_000_000).encode(), str(now % 1_000_000).encode()]


@command("role", arity=1, flags="noscript loading stale fast", group="server")
def role(client: Client, args: list[bytes]) -> Any:
    """Return the role of the instance in the context of replication."""
    return [b"master", 0, []]


@command("shutdown", arity=-1, flags="admin noscript loading stale no_multi allow_busy", group="server")
def shutdown(client: Client, args: list[bytes]) -> Any:
    """Shut the server down gracefully, as SIGTERM does: saving the snapshot when a ``save``
    schedule is set or SAVE is given, not with NOSAVE (a failed save refuses the shutdown,
    as in Redis). Like Redis, no reply: the connection closes."""
    seen: set[bytes] = set()
    for arg in args[1:]:
        option = arg.lower()
        if option not in (b"nosave", b"save", b"now", b"force", b"abort") or option in seen:
            raise ErrorReply(SYNTAX)
        seen.add(option)
    if {b"nosave", b"save"} <= seen:
        raise ErrorReply(SYNTAX)
    if b"abort" in seen:
        if len(seen) > 1:
            raise ErrorReply(SYNTAX)
        raise ErrorReply("ERR No shutdown in progress.")
    snapshot_state = snapshot.state(client.server)
    if b"nosave" in seen:
        snapshot_state.shutdown_mode = "nosave"
    elif b"save" in seen or snapshot.save_points(client.server):
        snapshot.kill_child(client.server)
        try:
            snapshot.save(client.server)
        except SnapshotError:  # logged by save()
            if b"force" not in seen:
                raise ErrorReply("ERR Errors trying to SHUTDOWN. Check logs.") from None
        snapshot_state.saved_for_shutdown = True
    asyncio.get_running_loop().create_task(client.server.shutdown())
    # A reply that never comes: the replies before it in the batch go out, then the
    # shutdown closes the connection (what redis-py's shutdown() waits for).
    return Deferred()


# ---------------------------------------------------------------------------- MEMORY


@command("memory", arity=-2, flags="", group="server")
def memory(client: Client, args: list[bytes]) -> Any:
    """A container for memory diagnostics commands."""
    return run_subcommand(client, args)


@subcommand("memory", "usage", arity=-3, flags="readonly", keys=(2, 2, 1))
def memory_usage(client: Client, args: list[bytes]) -> Any:
    """Estimate the memory usage of a key (the weight the store charges for it; SAMPLES is
    accepted and ignored: collections keep their size up to date)."""
    i = 3
    while i < len(args):
        if args[i].lower() == b"samples" and i + 1 < len(args):
            try:
                samples = int(args[i + 1])
            except ValueError:
                raise ErrorReply(NOT_INTEGER) from None
            if samples < 0:
                raise ErrorReply(NOT_INTEGER)
            i += 2
        else:
            raise ErrorReply(SYNTAX)
    key = skey(args[2])
    value = client.db.get(key)
    if value is None:
        return None
    return server_weigher(key, value)


@subcommand("memory", "stats", arity=2, flags="")
def memory_stats(client: Client, args: list[bytes]) -> Any:
    """Show memory usage details (the pool's ledger, per database)."""
    server = client.server
    stats = server.pool.stats()
    used = stats.used
    result: dict[bytes, Any] = {
        b"peak.allocated": max(_memory_state(server)["peak"], used),
        b"total.allocated": used,
        b"dataset.bytes": used,
        b"keys.count": sum(len(db) for db in server.databases),
        b"pool.capacity": stats.capacity,
        b"pool.level": stats.level.name.lower().encode(),
    }
    for db in server.databases:
        if db.store.pool_bytes:
            result[f"db.{db.index}".encode()] = {b"bytes": db.store.pool_bytes, b"keys": len(db)}
    return result


@subcommand("memory", "help", arity=2, flags="loading stale")
def memory_help(client: Client, args: list[bytes]) -> Any:
    """Show helpful text about the different subcommands."""
    return [
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "STATS",
        "    Return information about the memory usage of the server.",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
        "HELP",
        "    Print this help.",
    ]

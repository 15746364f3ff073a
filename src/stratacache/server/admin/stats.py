"""One snapshot of the server's numbers, read from live state when asked for.

``/stats`` serves it as JSON and the ``/metrics`` collector turns it into metric families, so
both always agree. Everything is O(databases + commands): key counts are the stores' map sizes
(entries past their deadline but not yet purged are included, as in Redis's DBSIZE), and the
persistence fields are INFO's own lines (whoever adds fields to INFO persistence adds them here).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..commands import COMMANDS
from .latency import HISTOGRAMS, SAMPLE_EVERY

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["info_fields", "snapshot"]


def info_fields(server: Server, section: str) -> dict[str, str]:
    """INFO ``section``'s ``name:value`` lines as a dict (empty when the section is unknown)."""
    from ..commands.server import info_text

    try:
        text = info_text(server, [section])
    except KeyError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, sep, value = line.partition(":")
            if sep:
                fields[name] = value
    return fields


def _ops_per_sec(server: Server) -> float:
    samples = server.ops_samples
    if len(samples) < 2:
        return 0.0
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def snapshot(server: Server) -> dict[str, Any]:
    """The server's numbers now (see docs/operations.md for each)."""
    config = server.config
    pool = server.pool
    clients = list(server.clients.values())
    stores = []
    for db in server.databases:
        store = db.store
        stores.append(
            {
                "db": db.index,
                "type": db.kind,
                "policy": store.policy_name,
                "keys": len(store),
                "bytes": store.pool_bytes,
                "hits": db.hits,
                "misses": db.misses,
                "evictions": store.evictions,
                "expirations": store.expirations,
                "max_entries": store.max_entries,
                "max_bytes": store.max_bytes,
            }
        )
    hits = server.keyspace_hits
    misses = server.keyspace_misses
    commands: dict[str, Any] = {}
    for cmd in COMMANDS.values():
        if cmd.calls or cmd.failed:
            entry: dict[str, Any] = {"calls": cmd.calls, "failed": cmd.failed}
            histogram = HISTOGRAMS.get(cmd.name)
            if histogram is not None:
                entry["latency"] = {
                    "samples": histogram.count,
                    "sum_seconds": histogram.sum_ns / 1e9,
                    "buckets": histogram.cumulative(),
                }
            commands[cmd.name] = entry
    level = pool.level
    return {
        "time": time.time(),
        "uptime_seconds": time.time() - server.started,
        "loading": bool(getattr(server, "loading", False)),
        "commands_processed": server.commands_processed,
        "ops_per_sec": _ops_per_sec(server),
        "keyspace": {
            "hits": hits,
            "misses": misses,
            "hit_ratio": hits / (hits + misses) if hits + misses else None,
        },
        "clients": {
            "connected": len(clients),
            "blocked": sum(1 for c in clients if c.blocked is not None),
            "connections_received": server.connections_received,
            "rejected_connections": server.rejected_connections,
        },
        "memory": {
            "used": pool.used,
            "maxmemory": config.maxmemory,
            "pool_capacity": pool.capacity,
            "pressure_level": level.name.lower(),
            "pressure_level_value": int(level),
            "policy": config.maxmemory_policy,
        },
        "stores": stores,
        "commands": commands,
        "latency_sample_every": SAMPLE_EVERY,
        "persistence": info_fields(server, "persistence"),
    }

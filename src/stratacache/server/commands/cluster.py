"""Cluster mode's commands: CLUSTER (SHARDS SLOTS NODES INFO KEYSLOT MYID MYSHARDID
COUNTKEYSINSLOT GETKEYSINSLOT HELP), READONLY, READWRITE, ASKING.

The layout is static (see :mod:`stratacache.server.cluster`): the subcommands that change it
in Redis (ADDSLOTS, MEET, SETSLOT, FAILOVER, ...) answer that they are not supported. With
``cluster-enabled no`` every one of these answers Redis's "cluster support disabled" error,
after the arity and subcommand checks (Redis checks those first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..cluster import DISABLED, SLOTS, ClusterState, keyslot
from ..errors import NOT_INTEGER
from ..keyspace import bkey
from ..resp import ErrorReply
from . import command, run_subcommand, subcommand

if TYPE_CHECKING:
    from ..connection import Client

_HELP = [
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "HELP",
    "    Print this help.",
]

# Redis's subcommands that change the layout or manage replicas and failover: the layout
# here is the configuration's, so they are refused with a message saying so.
_STATIC = (
    "addslots",
    "addslotsrange",
    "delslots",
    "delslotsrange",
    "flushslots",
    "meet",
    "forget",
    "replicate",
    "replicas",
    "slaves",
    "setslot",
    "failover",
    "reset",
    "saveconfig",
    "set-config-epoch",
    "bumpepoch",
    "count-failure-reports",
    "links",
)


def _state(client: Client) -> ClusterState:
    """The server's cluster state, or Redis's error when cluster mode is off."""
    state = client.server.cluster
    if state is None:
        raise ErrorReply(DISABLED)
    return state


def _int(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        raise ErrorReply(NOT_INTEGER) from None


@command("cluster", arity=-2, flags="", group="cluster", since="3.0.0")
def cluster(client: Client, args: list[bytes]) -> Any:
    """A container for Redis Cluster commands."""
    return run_subcommand(client, args)


@subcommand("cluster", "info", arity=2, flags="stale", since="3.0.0")
def cluster_info(client: Client, args: list[bytes]) -> Any:
    """Return information about the state of the cluster."""
    return _state(client).info()


@subcommand("cluster", "nodes", arity=2, flags="stale", since="3.0.0")
def cluster_nodes(client: Client, args: list[bytes]) -> Any:
    """Return the cluster configuration seen by this node."""
    return _state(client).nodes_text()


@subcommand("cluster", "slots", arity=2, flags="loading stale", since="3.0.0")
def cluster_slots(client: Client, args: list[bytes]) -> Any:
    """Return the mapping of hash slot ranges to nodes."""
    return _state(client).slots()


@subcommand("cluster", "shards", arity=2, flags="loading stale", since="7.0.0")
def cluster_shards(client: Client, args: list[bytes]) -> Any:
    """Return the mapping of cluster slots to shards."""
    return _state(client).shards()


@subcommand("cluster", "myid", arity=2, flags="loading stale", since="3.0.0")
def cluster_myid(client: Client, args: list[bytes]) -> Any:
    """Return this node's id."""
    return _state(client).myself.id.encode()


@subcommand("cluster", "myshardid", arity=2, flags="loading stale", since="7.2.0")
def cluster_myshardid(client: Client, args: list[bytes]) -> Any:
    """Return this node's shard id."""
    return _state(client).myself.shard_id.encode()


@subcommand("cluster", "keyslot", arity=3, flags="stale", since="3.0.0")
def cluster_keyslot(client: Client, args: list[bytes]) -> Any:
    """Return the hash slot of a key."""
    _state(client)
    return keyslot(args[2])


@subcommand("cluster", "countkeysinslot", arity=3, flags="stale", since="3.0.0")
def cluster_countkeysinslot(client: Client, args: list[bytes]) -> Any:
    """Return the number of keys of this node in a hash slot (a scan of the keys: there is
    no per-slot index, see docs/cluster.md)."""
    _state(client)
    slot = _int(args[2])
    if not 0 <= slot < SLOTS:
        raise ErrorReply("ERR Invalid slot")
    keys = client.db.keys()  # a snapshot list
    return sum(1 for key in keys if keyslot(bkey(key)) == slot)


@subcommand("cluster", "getkeysinslot", arity=4, flags="stale", since="3.0.0")
def cluster_getkeysinslot(client: Client, args: list[bytes]) -> Any:
    """Return up to ``count`` keys of this node in a hash slot."""
    _state(client)
    slot, count = _int(args[2]), _int(args[3])
    if not 0 <= slot < SLOTS or count < 0:
        raise ErrorReply("ERR Invalid slot or number of keys")
    found: list[bytes] = []
    if count:
        keys = client.db.keys()  # a snapshot list
        for key in keys:
            raw = bkey(key)
            if keyslot(raw) == slot:
                found.append(raw)
                if len(found) == count:
                    break
    return found


@subcommand("cluster", "help", arity=2, flags="loading stale", since="5.0.0")
def cluster_help(client: Client, args: list[bytes]) -> Any:
    """Show helpful text about the different subcommands."""
    _state(client)
    return _HELP


def _refuse_static(client: Client, args: list[bytes]) -> Any:
    """A layout-changing subcommand: not supported (the layout is the configuration's)."""
    _state(client)
    name = args[1].decode("latin-1").upper()
    raise ErrorReply(
        f"ERR CLUSTER {name} is not supported: the cluster layout is static "
        "(the 'cluster' mapping of the configuration)"
    )


for _name in _STATIC:
    subcommand("cluster", _name, arity=-2, flags="admin stale")(_refuse_static)


@command("readonly", arity=1, flags="loading stale fast", group="cluster", since="3.0.0")
def readonly(client: Client, args: list[bytes]) -> Any:
    """Enable read queries for a connection to a replica node (accepted; there are no replicas)."""
    _state(client)
    return "OK"


@command("readwrite", arity=1, flags="loading stale fast", group="cluster", since="3.0.0")
def readwrite(client: Client, args: list[bytes]) -> Any:
    """Disable read queries for a connection to a replica node (accepted; a no-op)."""
    _state(client)
    return "OK"


@command("asking", arity=1, flags="fast", group="cluster", since="3.0.0")
def asking(client: Client, args: list[bytes]) -> Any:
    """Signal a redirected command to a slot being imported (accepted; slots never move here)."""
    _state(client)
    return "OK"

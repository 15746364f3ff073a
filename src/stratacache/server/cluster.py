"""Cluster mode: Redis Cluster's client protocol over a static layout (no gossip, no failover).

Every node of a cluster reads the same ``cluster`` mapping (the node list and each node's
hash slots) and knows which entry is itself; it serves the keys of its own slots and answers
``-MOVED <slot> <host>:<port>`` for the others, ``-CROSSSLOT`` for a command whose keys span
slots, and the CLUSTER commands clients use to learn the layout (SLOTS, SHARDS, NODES).
Failure detection is the client's, as with Redis Cluster: a node that is down is simply not
answering, and nothing moves its slots elsewhere.

This module is the pure part: the key-to-slot function (CRC16 with hash tags, exactly
Redis's), the layout parsed and checked from the configuration, the slot table, the key
positions of a command (movable keys included) and the replies built from the layout.
:mod:`.commands.cluster` holds the commands; the connection calls :meth:`ClusterState.redirect`.
"""

from __future__ import annotations

import hashlib
import re
import time
from binascii import crc_hqx
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from .resp import ErrorReply, Verbatim

if TYPE_CHECKING:
    from .commands import Command
    from .config import ServerConfig
    from .connection import Client

__all__ = [
    "CROSSSLOT",
    "SLOTS",
    "ClusterLayout",
    "ClusterNode",
    "ClusterState",
    "command_keys",
    "keyslot",
    "make_cluster",
    "node_id_for",
    "parse_layout",
]

SLOTS = 16384
"""Hash slots of a Redis Cluster."""
CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"
DISABLED = "ERR This instance has cluster support disabled"

_ID = re.compile(r"[0-9a-f]{40}")


def keyslot(key: bytes) -> int:
    """The hash slot of ``key``: CRC16 (XModem, as ``binascii.crc_hqx`` with 0) modulo 16384,
    of the part between the first ``{`` and the next ``}`` when that part is not empty
    (a hash tag), else of the whole key (Redis's ``keyHashSlot``)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return crc_hqx(key[start + 1 : end], 0) & 0x3FFF
    return crc_hqx(key, 0) & 0x3FFF


def node_id_for(host: str, port: int) -> str:
    """A node id derived from its address (40 hex characters, the same on every node)."""
    return hashlib.sha1(f"{host}:{port}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """One node of the layout: its id, address and slot ranges (inclusive pairs)."""

    id: str
    host: str
    port: int
    ranges: tuple[tuple[int, int], ...]
    epoch: int = 0

    @property
    def address(self) -> str:
        """``host:port``, as MOVED names it."""
        return f"{self.host}:{self.port}"

    @property
    def shard_id(self) -> str:
        """CLUSTER MYSHARDID: one shard per node (no replicas), an id derived from the node's."""
        return hashlib.sha1(f"shard:{self.id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    """The ``cluster`` mapping of the configuration, checked: nodes in the order given, and
    which one is this server (``myself``: an id, or None to match the ``port`` option)."""

    nodes: tuple[ClusterNode, ...]
    myself: str | None = None


def _parse_ranges(value: Any, label: str) -> list[tuple[int, int]]:
    """``"0-5460"``, ``5461``, ``"0-10 20-30"``, or a list of those, as inclusive pairs."""
    if isinstance(value, (list, tuple)):
        items: list[Any] = list(value)
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        items = str(value).replace(",", " ").split()
    else:
        raise ConfigurationError(f"{label}: expected slot ranges like '0-5460', got {value!r}")
    ranges = []
    for item in items:
        text = str(item).strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", text)
        if match is None or isinstance(item, bool):
            raise ConfigurationError(f"{label}: {item!r} is not a slot or a range like '0-5460'")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if not 0 <= first <= last < SLOTS:
            raise ConfigurationError(
                f"{label}: {text!r} is not a range of slots within 0-{SLOTS - 1} (first <= last)"
            )
        ranges.append((first, last))
    if not ranges:
        raise ConfigurationError(f"{label}: no slots given")
    return ranges


def parse_layout(value: Any, where: str) -> ClusterLayout:
    """The ``cluster`` mapping checked (ConfigurationError naming the entry at fault):
    ``nodes`` (each with ``host``, ``port``, ``slots`` and an optional 40-hex ``id``,
    else derived from host:port), ids and addresses unique, every slot covered exactly
    once, and an optional ``myself`` naming one of the ids."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}: cluster: expected a mapping with 'nodes', got {value!r}")
    unknown = set(value) - {"nodes", "myself"}
    if unknown:
        raise ConfigurationError(f"{where}: cluster: unknown key(s) {sorted(unknown)}; valid: myself, nodes")
    raw_nodes = value.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigurationError(f"{where}: cluster.nodes: expected a non-empty list of nodes")
    nodes: list[ClusterNode] = []
    owner: list[int] = [-1] * SLOTS
    seen_ids: dict[str, int] = {}
    seen_addresses: dict[tuple[str, int], int] = {}
    for index, entry in enumerate(raw_nodes):
        label = f"{where}: cluster.nodes[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{label}: expected a mapping with host, port and slots, got {entry!r}")
        unknown = set(entry) - {"id", "host", "port", "slots"}
        if unknown:
            raise ConfigurationError(
                f"{label}: unknown key(s) {sorted(unknown)}; valid: host, id, port, slots"
            )
        host = entry.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host:
            raise ConfigurationError(f"{label}.host: expected a host name or address, got {host!r}")
        port = entry.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigurationError(f"{label}.port: expected a port number 1-65535, got {port!r}")
        node_id = entry.get("id")
        if node_id is None:
            node_id = node_id_for(host, port)
        elif not isinstance(node_id, str) or not _ID.fullmatch(node_id):
            raise ConfigurationError(f"{label}.id: {node_id!r} is not 40 lower-case hex characters")
        if (host, port) in seen_addresses:
            raise ConfigurationError(
                f"{label}: {host}:{port} is also the address of cluster.nodes[{seen_addresses[host, port]}]"
            )
        if node_id in seen_ids:
            raise ConfigurationError(
                f"{label}.id: {node_id} is also the id of cluster.nodes[{seen_ids[node_id]}]"
            )
        seen_ids[node_id] = index
        seen_addresses[host, port] = index
        if "slots" not in entry:
            raise ConfigurationError(f"{label}.slots: missing (e.g. slots: '0-5460')")
        ranges = _parse_ranges(entry["slots"], f"{label}.slots")
        for first, last in ranges:
            for slot in range(first, last + 1):
                if owner[slot] != -1:
                    raise ConfigurationError(
                        f"{label}.slots: slot {slot} is also assigned to cluster.nodes[{owner[slot]}] "
                        "(every slot must belong to exactly one node)"
                    )
                owner[slot] = index
        nodes.append(ClusterNode(node_id, host, port, tuple(_merge(ranges)), epoch=index + 1))
    gaps = _ranges(slot for slot in range(SLOTS) if owner[slot] == -1)
    if gaps:
        shown = ", ".join(_range_text(first, last) for first, last in gaps[:5])
        more = f" and {len(gaps) - 5} more ranges" if len(gaps) > 5 else ""
        raise ConfigurationError(
            f"{where}: cluster.nodes: slots {shown}{more} are assigned to no node "
            f"(every slot 0-{SLOTS - 1} must belong to exactly one node)"
        )
    myself = value.get("myself")
    if myself is not None and myself not in seen_ids:
        raise ConfigurationError(
            f"{where}: cluster.myself: {myself!r} is not the id of any node of cluster.nodes"
        )
    return ClusterLayout(tuple(nodes), myself)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return _ranges(slot for first, last in sorted(ranges) for slot in range(first, last + 1))


def _ranges(slots: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive slots as inclusive (first, last) pairs."""
    result: list[tuple[int, int]] = []
    for slot in slots:
        if result and result[-1][1] == slot - 1:
            result[-1] = (result[-1][0], slot)
        else:
            result.append((slot, slot))
    return result


def _range_text(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


# ------------------------------------------------------------------------ key positions


def _numkeys_at(args: list[bytes], at: int) -> list[int]:
    """Positions of ``numkeys`` keys whose count is ``args[at]`` (none when it is not a valid
    count: the command's own check answers then, as in Redis)."""
    try:
        count = int(args[at])
    except (IndexError, ValueError):
        return []
    if count <= 0 or at + count >= len(args):
        return []
    return list(range(at + 1, at + 1 + count))


# Commands whose keys (or some of them) follow a numkeys argument: name -> index of numkeys,
# and the fixed key positions before it (the destination of ZUNIONSTORE, ...).
_MOVABLE: dict[bytes, tuple[int, tuple[int, ...]]] = {
    b"eval": (2, ()),
    b"evalsha": (2, ()),
    b"eval_ro": (2, ()),
    b"evalsha_ro": (2, ()),
    b"fcall": (2, ()),
    b"fcall_ro": (2, ()),
    b"lmpop": (1, ()),
    b"zmpop": (1, ()),
    b"sintercard": (1, ()),
    b"zintercard": (1, ()),
    b"zunion": (1, ()),
    b"zinter": (1, ()),
    b"zdiff": (1, ()),
    b"blmpop": (2, ()),
    b"bzmpop": (2, ()),
    b"zunionstore": (2, (1,)),
    b"zinterstore": (2, (1,)),
    b"zdiffstore": (2, (1,)),
}


def command_keys(cmd: Command, args: list[bytes]) -> list[bytes]:
    """The keys of a call of ``cmd``: from its key spec (first, last, step), from its
    numkeys argument for the commands with movable keys, from the subcommand's spec for a
    container (MEMORY USAGE)."""
    movable = _MOVABLE.get(cmd.name.encode())
    if movable is not None:
        at, fixed = movable
        positions = [i for i in fixed if i < len(args)] + _numkeys_at(args, at)
        return [args[i] for i in positions]
    if cmd.subcommands and len(args) > 1:
        sub = cmd.subcommands.get(args[1].decode("latin-1").lower())
        if sub is not None:
            return [args[i] for i in sub.key_positions(args)]
        return []
    if cmd.first_key <= 0:
        return []
    return [args[i] for i in cmd.key_positions(args)]


# ------------------------------------------------------------------------------ state


class ClusterState:
    """A server's view of the cluster: the layout, the slot table and which node it is."""

    def __init__(self, layout: ClusterLayout, myself: ClusterNode) -> None:
        self.layout = layout
        self.nodes = layout.nodes
        self.myself = myself
        self.owner: list[ClusterNode] = [myself] * SLOTS
        for node in layout.nodes:
            for first, last in node.ranges:
                for slot in range(first, last + 1):
                    self.owner[slot] = node
        # The error reply for each other node's slot is built on first use.
        self._moved: dict[int, ErrorReply] = {}
        # The connection's fast path table in cluster mode (see learn_fast).
        self.fast: dict[bytes, Command] = {}

    # ------------------------------------------------------------- redirects

    def redirect(self, client: Client, cmd: Command, args: list[bytes]) -> ErrorReply | None:
        """Redis's ``getNodeByQuery``: None when this node serves the call's keys (or it has
        none), else the CROSSSLOT or MOVED error. EXEC checks the keys of the whole queued
        transaction together (they must share one slot, as in Redis)."""
        if cmd.name == "exec":
            queue = client.multi
            if queue is None:
                return None
            from .commands import COMMANDS

            keys: list[bytes] = []
            for queued in queue:
                queued_cmd = COMMANDS.get(queued[0].lower())
                if queued_cmd is not None:
                    keys += command_keys(queued_cmd, queued)
        else:
            keys = command_keys(cmd, args)
        if not keys:
            return None
        first = keys[0]
        slot = keyslot(first)
        for key in keys[1:]:
            if key != first and keyslot(key) != slot:
                return ErrorReply(CROSSSLOT)
        if self.owner[slot] is self.myself:
            return None
        return self.moved(slot)

    def learn_fast(self, name: bytes, cmd: Command) -> None:
        """Add ``cmd`` to :attr:`fast` (the connection's fast path in cluster mode, by the
        name as spelled): a copy whose handler checks the slots first, answering the
        redirect instead of running (a single-key command with one CRC16 and one lookup).
        The copy counts its calls and failures on the table's entry, as INFO reads them."""
        handler = cmd.handler
        owner, myself, moved = self.owner, self.myself, self.moved
        if cmd.first_key == 1 and cmd.last_key == 1 and cmd.name.encode() not in _MOVABLE:

            def checked(client: Client, args: list[bytes]) -> Any:
                key = args[1]
                slot = keyslot(key) if b"{" in key else crc_hqx(key, 0) & 0x3FFF
                if owner[slot] is not myself:
                    return moved(slot)
                cmd.calls += 1
                try:
                    return handler(client, args)
                except ErrorReply:
                    cmd.failed += 1
                    raise

        else:
            redirect = self.redirect

            def checked(client: Client, args: list[bytes]) -> Any:
                refused = redirect(client, cmd, args)
                if refused is not None:
                    return refused
                cmd.calls += 1
                try:
                    return handler(client, args)
                except ErrorReply:
                    cmd.failed += 1
                    raise

        self.fast[name] = replace(cmd, handler=checked)

    def moved(self, slot: int) -> ErrorReply:
        """``MOVED <slot> <host>:<port>`` for a slot of another node."""
        reply = self._moved.get(slot)
        if reply is None:
            reply = self._moved[slot] = ErrorReply(f"MOVED {slot} {self.owner[slot].address}")
        return reply

    # --------------------------------------------------------------- replies

    def info(self) -> Verbatim:
        """CLUSTER INFO (Redis's fields; the bus counters are 0: there is no bus)."""
        count = len(self.nodes)
        fields = [
            ("cluster_state", "ok"),
            ("cluster_slots_assigned", SLOTS),
            ("cluster_slots_ok", SLOTS),
            ("cluster_slots_pfail", 0),
            ("cluster_slots_fail", 0),
            ("cluster_known_nodes", count),
            ("cluster_size", sum(1 for node in self.nodes if node.ranges)),
            ("cluster_current_epoch", max(node.epoch for node in self.nodes)),
            ("cluster_my_epoch", self.myself.epoch),
            ("cluster_stats_messages_sent", 0),
            ("cluster_stats_messages_received", 0),
            ("total_cluster_links_buffer_limit_exceeded", 0),
        ]
        return Verbatim("".join(f"{name}:{value}\r\n" for name, value in fields).encode())

    def nodes_text(self) -> Verbatim:
        """CLUSTER NODES: one line per node in Redis's format (``id ip:port@cport flags
        master ping-sent pong-recv config-epoch link-state slot...``); the bus port is 0
        (there is no bus), every node reported connected (no failure detection here)."""
        now_ms = int(time.time() * 1000)
        lines = []
        for node in self.nodes:
            me = node is self.myself
            slots = " ".join(_range_text(first, last) for first, last in node.ranges)
            lines.append(
                f"{node.id} {node.address}@0 {'myself,master' if me else 'master'} - 0 "
                f"{0 if me else now_ms} {node.epoch} connected{' ' + slots if slots else ''}\n"
            )
        return Verbatim("".join(lines).encode())

    def _node_entry(self, node: ClusterNode) -> list[Any]:
        return [node.host.encode(), node.port, node.id.encode(), {}]

    def slots(self) -> list[Any]:
        """CLUSTER SLOTS: [first, last, [host, port, id, {}]] per range, in slot order."""
        entries = [(first, last, node) for node in self.nodes for first, last in node.ranges]
        entries.sort(key=lambda entry: entry[0])
        return [[first, last, self._node_entry(node)] for first, last, node in entries]

    def shards(self) -> list[Any]:
        """CLUSTER SHARDS: one shard per node (no replicas), its slots flat and the node."""
        result = []
        for node in self.nodes:
            flat: list[int] = []
            for first, last in node.ranges:
                flat += (first, last)
            result.append(
                {
                    b"slots": flat,
                    b"nodes": [
                        {
                            b"id": node.id.encode(),
                            b"port": node.port,
                            b"ip": node.host.encode(),
                            b"endpoint": node.host.encode(),
                            b"role": b"master",
                            b"replication-offset": 0,
                            b"health": b"online",
                        }
                    ],
                }
            )
        return result


def make_cluster(config: ServerConfig) -> ClusterState | None:
    """The server's cluster state from its configuration (None when cluster mode is off):
    this node is ``cluster.myself`` when given, else the one node whose port is ``port``."""
    if not config.cluster_enabled:
        if config.cluster is not None:
            raise ConfigurationError(f"{config.source}: cluster: given but cluster-enabled is no")
        return None
    layout = config.cluster
    if layout is None:
        raise ConfigurationError(
            f"{config.source}: cluster-enabled yes needs a 'cluster' mapping (nodes with host, port, slots)"
        )
    if config.databases != 1:
        raise ConfigurationError(
            f"{config.source}: databases: cluster mode has one database "
            f"(databases: 1), not {config.databases}"
        )
    if layout.myself is not None:
        myself = next(node for node in layout.nodes if node.id == layout.myself)
    else:
        matches = [node for node in layout.nodes if node.port == config.port]
        if len(matches) != 1:
            found = "no node" if not matches else f"{len(matches)} nodes"
            raise ConfigurationError(
                f"{config.source}: cluster: {found} of cluster.nodes has port {config.port}; "
                "set cluster.myself to this node's id"
            )
        myself = matches[0]
    return ClusterState(layout, myself)

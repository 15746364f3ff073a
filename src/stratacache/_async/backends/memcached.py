"""The Memcached backend: one or more servers, consistent hashing, failover, namespaces in O(1).

URL (parsed in ``_config.py``): ``memcached://h1:p1,h2:p2?pool_size=8&timeout=1``.

* **Nodes.** Keys are placed on a ketama ring (:mod:`stratacache.core.hashring`) of the
  servers. A node that fails ``failure_threshold`` times in a row is marked dead
  (:mod:`stratacache.core.health`): its keys go to the next node on the ring until
  ``dead_retry`` seconds have passed, then it is tried again. Until a node is marked dead,
  operations on its keys raise :class:`BackendUnavailable` (or :class:`CacheTimeout`),
  naming it; they never hang longer than ``connect_timeout``/``timeout``.
* **Keys** go through :func:`stratacache.core.memcached_keys.wire_key`: safe keys unchanged,
  anything else (spaces, ``\\r\\n``, unicode, over 250 bytes) as a readable prefix plus a
  SHA-256, so no key can break the text protocol or inject a command.
* **Namespaces.** The facade attaches every namespace prefix (``attach_namespace``); a key
  under one is stored as ``<prefix>~<generation>~<rest>``, where the generation is a number
  kept in memcached itself and read on every operation (one more round trip for namespaced
  caches only: caching it would hide another process's ``clear()``). Every node keeps its
  own generation, next to the keys it governs, so no node is a single point of failure;
  generations only move forward (created from the clock in microseconds, then
  incremented), and a node this client saw die has its generation bumped when it comes
  back, so nothing written before the outage is served after it. ``clear()`` of a
  namespace increments the generation on every node: O(1) per node, and every old key
  becomes unreachable and ages out. ``clear()`` without a namespace is ``flush_all``.
* **Counters.** Values are the facade codec's bytes; integers are ASCII decimal, which
  memcached's own ``incr`` understands, so ``incr`` is native (created from 0 with ``add``
  when missing). Memcached's counters are unsigned, ours are signed 64-bit: a negative delta,
  or a stored negative value such as ``b"-5"``, takes a compare-and-swap loop instead.
* **Lists, sets, hashes** are one msgpack value each, marked by the item's memcached
  *flags* (and a magic prefix that keeps ``incr`` away), updated by ``gets``/``cas`` loops
  that retry with jittered backoff, so concurrent writers never lose an update.
* ``ttl()`` uses the meta command ``mg <key> t`` (memcached >= 1.6).

Driver and socket errors are translated by the node adapters (``stratacache._drivers``)
and here, at the boundary, with the original chained.
"""

from __future__ import annotations

import asyncio  # unasync: remove
import builtins
import functools
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar

import msgpack

from ..._config import parse_address
from ..._drivers.memcached_async import AsyncMemcachedNode, gather
from ..._exceptions import (
    BackendUnavailable,
    CacheTimeout,
    ConfigurationError,
    InvalidArgument,
    InvalidTTL,
    ProtocolError,
    SerializationError,
    UnsupportedOperation,
    ValueTooLarge,
    WrongType,
)
from ..._redact import redact
from ..._types import MISSING, Item, Missing
from ...core.hashring import HashRing
from ...core.health import NodeHealth
from ...core.memcached_keys import (
    fallback_generation_key,
    generation_key,
    namespaced_key,
    wire_key,
    wire_keys,
)
from ...core.memcached_protocol import MemcachedReplyError, exptime
from .base import AsyncBackend, BackendCounters, Capabilities

__all__ = ["AsyncMemcachedBackend"]

_IS_ASYNC = True
_DEFAULT_PORT = 11211
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# Memcached parses exptime as a signed 32-bit number: absolute times end on 2038-01-19.
_EXPTIME_MAX = 2**31 - 1

# Item flags marking a collection ("SC" in the high bytes, so a value written by another
# memcached client with its own small flags is never mistaken for one of ours). Plain
# values are stored with flags 0; foreign flags are read as plain values.
_LIST = 0x5343_0001
_SET = 0x5343_0002
_HASH = 0x5343_0003
_KIND = {_LIST: "a list", _SET: "a set", _HASH: "a hash"}
# Every collection payload starts with this: never a digit or "-", so memcached's incr
# refuses it even though incr ignores flags.
_MAGIC = b"\xfcSC1"
_DECIMAL = re.compile(rb"-?[0-9]{1,20}").fullmatch

# Compare-and-swap loops: attempts before giving up, and the cap of the jittered backoff.
_CAS_ATTEMPTS = 200
# CAS uniques are unsigned 64-bit and never 0 (0 means "no cas" in the meta protocol).
_CAS_MAX = 2**64
_BACKOFF_CAP = 0.02
# Native incr racing its own "add" (another client created the counter in between).
_CREATE_RACES = 10


class _Unchanged:
    """Marker: a compare-and-swap step that needs no write."""


_UNCHANGED = _Unchanged()
_Change = tuple["bytes | None | _Unchanged", int, Any]


def _clock_generation() -> int:
    # The clock in microseconds: a generation re-created after its key was lost (evicted,
    # node restarted) is above every value the lost one reached (it only grew by one per
    # clear, far slower than a microsecond clock), so it never resurrects old keys.
    return time.time_ns() // 1000


def _expiry(operation: str, key: str | None, ttl: float | None) -> int:
    """The exptime field for ``ttl``; InvalidTTL past what memcached can store (2038-01-19)."""
    expiry = exptime(ttl, time.time())
    if expiry > _EXPTIME_MAX:
        about = f" on key {key!r}" if key is not None else ""
        raise InvalidTTL(
            f"memcached: {operation}{about}: ttl {ttl!r} is past the latest expiry memcached can "
            "store (an absolute unix time in 32 bits, 2038-01-19); see stratacache MAX_TTL"
        )
    return expiry


def _lrange(items: list[Any], start: int, stop: int) -> list[Any]:
    """Redis LRANGE indexing: inclusive, negative from the end, out of range clipped."""
    size = len(items)
    if start < 0:
        start = max(size + start, 0)
    if stop < 0:
        stop = size + stop
    if start >= size or start > stop:
        return []
    return items[start : min(stop, size - 1) + 1]


def _decimal(data: bytes) -> int | None:
    """The integer in ASCII decimal ``data`` (memcached's decr may leave trailing spaces)."""
    text = data.rstrip(b" ")
    return int(text) if _DECIMAL(text) is not None else None


def _subtract(key: str, delta: int, data: bytes | None, flags: int) -> _Change:
    """Compare-and-swap step undoing an increment that went past 2**63-1."""
    number = None if data is None else _decimal(data)
    if number is None:  # deleted or replaced meanwhile: nothing of ours left to undo
        return _UNCHANGED, 0, None
    return b"%d" % (number - delta), flags, None


class AsyncMemcachedBackend(AsyncBackend):
    """A cache on one or more memcached servers (1.6 or later: ``ttl()`` uses meta commands).

    ``servers``: ``(host, port)`` pairs or ``"host:port"`` strings (port 11211 by default);
    ``pool_size`` connections per server; ``connect_timeout`` and ``timeout`` (per reply) in
    seconds; a server failing ``failure_threshold`` times in a row is skipped for
    ``dead_retry`` seconds (its keys go to the next server on the ring); ``max_value_size``
    is the servers' item size limit (memcached ``-I``, 1 MiB by default): larger values
    raise :class:`ValueTooLarge` before anything is sent.
    """

    name: ClassVar[str] = "memcached"
    capabilities: ClassVar[Capabilities] = Capabilities(
        stores_objects=False, delete_pattern=False, collections=True, ttl_resolution=1.0, versions=True
    )

    def __init__(
        self,
        servers: Sequence[tuple[str, int] | str],
        *,
        pool_size: int = 8,
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        dead_retry: float = 5.0,
        failure_threshold: int = 2,
        max_value_size: int = 1048576,
    ) -> None:
        if isinstance(servers, (str, bytes)) or not isinstance(servers, Sequence) or not servers:
            raise ConfigurationError(
                "parameter 'servers': expected a non-empty list of 'host:port' or (host, port), "
                f"got {redact(servers)!r}"
            )
        for name, number in (
            ("pool_size", pool_size),
            ("failure_threshold", failure_threshold),
            ("max_value_size", max_value_size),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ConfigurationError(f"parameter {name!r}: expected a positive integer, got {number!r}")
        for name, seconds in (
            ("connect_timeout", connect_timeout),
            ("timeout", timeout),
            ("dead_retry", dead_retry),
        ):
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
                raise ConfigurationError(f"parameter {name!r}: expected a positive number, got {seconds!r}")
        addresses: list[tuple[str, int]] = []
        for server in servers:
            address = parse_address("servers", server, _DEFAULT_PORT)
            if address in addresses:
                raise ConfigurationError(f"parameter 'servers': {address[0]}:{address[1]} is listed twice")
            addresses.append(address)
        self.max_value_size = max_value_size
        self._nodes: dict[str, AsyncMemcachedNode] = {}
        for host, port in addresses:
            node = AsyncMemcachedNode(
                host,
                port,
                pool_size=pool_size,
                connect_timeout=float(connect_timeout),
                timeout=float(timeout),
                max_value_size=max_value_size,
            )
            self._nodes[node.address] = node
        self._ring = HashRing(list(self._nodes))
        self._health = NodeHealth(failure_threshold, float(dead_retry))
        # One server: no ring lookup (no MD5) on the hot path.
        self._single: AsyncMemcachedNode | None = node if len(self._nodes) == 1 else None
        # Attached namespace prefixes, shortest first (see _locate).
        self._prefixes: tuple[str, ...] = ()
        # Generation bookkeeping (see _generations): node -> outages this client has seen
        # (alive -> dead transitions); (generation key, holder node) -> the outage count its
        # last bump covered; generations that must be bumped before their next use (a clear()
        # that failed on their node); the highest generation seen, a floor for re-creation.
        self._outages: dict[str, int] = {}
        self._settled: dict[tuple[bytes, str], int] = {}
        self._pending: set[tuple[bytes, str]] = set()
        self._floor: dict[tuple[bytes, str], int] = {}

    # ------------------------------------------------------------------ plumbing

    def describe(self) -> str:
        """The servers (memcached has no credentials)."""
        return "memcached " + ",".join(self._nodes)

    @property
    def nodes(self) -> list[str]:
        """The servers, as ``host:port``."""
        return list(self._nodes)

    def node_state(self, address: str) -> str:
        """``alive``, ``suspect``, ``dead`` or ``probation`` (dead, due for a retry)."""
        return self._health.state(address)

    def node_for(self, key: str) -> str:
        """The server that owns ``key`` (the full key, namespace prefix included) when all are alive."""
        return self._ring.node_for(wire_key(key))

    def attach_namespace(self, prefix: str) -> None:
        """Keys starting with ``prefix`` are stored under its generation (see the module doc)."""
        if prefix and prefix not in self._prefixes:
            self._prefixes = tuple(sorted({*self._prefixes, prefix}, key=len))

    def _pick(self, wk: bytes) -> AsyncMemcachedNode:
        """The node for wire key ``wk``: its ring owner, or the next live one when it is dead."""
        single = self._single
        if single is not None and not self._health.dead_until:
            return single
        health = self._health
        if single is not None:
            if health.available(single.address):
                return single
            raise self._all_dead()
        owner = self._ring.node_for(wk)
        if not health.dead_until or health.available(owner):
            return self._nodes[owner]
        for name in self._ring.candidates(wk):
            if health.available(name):
                return self._nodes[name]
        raise self._all_dead()

    def _place(self, key: str) -> tuple[str, AsyncMemcachedNode]:
        """``(owner, node)`` of namespaced ``key``: its ring owner and the node that serves it now.

        Placement hashes the key without its generation, so the node (and hence the
        generation that governs the key, which lives on that node) is known first.
        """
        pk = wire_key(key)
        single = self._single
        if single is not None:
            return single.address, self._pick(pk)
        owner = self._ring.node_for(pk)
        health = self._health
        if not health.dead_until or health.available(owner):
            return owner, self._nodes[owner]
        for name in self._ring.candidates(pk):
            if health.available(name):
                return owner, self._nodes[name]
        raise self._all_dead()

    def _failed(self, address: str) -> None:
        """Count a failure of ``address``; an alive -> dead transition is one more outage."""
        health = self._health
        was_dead = health.is_dead(address)
        if health.record_failure(address) and not was_dead:
            self._outages[address] = self._outages.get(address, 0) + 1

    def _all_dead(self) -> BackendUnavailable:
        health = self._health
        soonest = min(health.retry_in(name) for name in self._nodes)
        return BackendUnavailable(
            f"{self.describe()}: every server is marked dead after repeated failures; "
            f"the next retry is in {soonest:.1f}s"
        )

    async def _guard(
        self,
        node: AsyncMemcachedNode,
        operation: str,
        key: str | None,
        method: Callable[..., Any],
        *args: Any,
    ) -> Any:
        """Run one node command with health accounting and reply-error translation."""
        try:
            result = await method(*args)
        except (BackendUnavailable, CacheTimeout, ProtocolError):
            self._failed(node.address)
            raise
        except MemcachedReplyError as exc:
            raise self._reply_error(exc, operation, key, node) from exc
        if self._health.failures:
            self._health.record_success(node.address)
        return result

    def _reply_error(
        self, exc: MemcachedReplyError, operation: str, key: str | None, node: AsyncMemcachedNode
    ) -> Exception:
        """The stratacache error for a server error line."""
        text = exc.message.lower()
        about = f" on key {key!r}" if key is not None else ""
        if "too large" in text:
            return self._too_large(key, None, exc.message)
        if "non-numeric" in text:
            return WrongType(f"{operation}{about}: the value is not an integer")
        if "out of memory" in text:
            return BackendUnavailable(f"memcached node {node.address}: {operation}{about}: {exc}")
        return ProtocolError(f"memcached node {node.address}: {operation}{about}: {exc}")

    def _too_large(self, key: str | None, size: int | None, server_said: str = "") -> ValueTooLarge:
        what = f"{size}-byte value" if size is not None else "value"
        detail = f" (server: {server_said})" if server_said else ""
        return ValueTooLarge(
            f"memcached: the {what} for key {key!r} is over the server's item size limit of "
            f"{self.max_value_size} bytes (max_value_size; memcached -I){detail}"
        )

    def _check_size(self, key: str, value: bytes) -> None:
        if len(value) > self.max_value_size:
            raise self._too_large(key, len(value))

    async def _bump(self, node: AsyncMemcachedNode, gk: bytes, prefix: str) -> None:
        """Move generation ``gk`` on ``node`` forward (created from the clock when missing)."""
        for _ in range(_CREATE_RACES):
            try:
                if await self._guard(node, "clear", prefix, node.incr, gk, 1) is not None:
                    return
            except WrongType:  # overwritten by someone else with a non-number: start afresh
                await self._guard(node, "clear", prefix, node.set, gk, self._fresh(node, gk), 0, 0)
                return
            if await self._guard(node, "clear", prefix, node.add, gk, self._fresh(node, gk), 0, 0):
                return
        raise CacheTimeout(f"memcached: could not move the generation of namespace {prefix!r} forward")

    def _fresh(self, node: AsyncMemcachedNode, gk: bytes) -> bytes:
        """A new generation for ``gk``: the clock, and above any value this client has seen."""
        return b"%d" % max(_clock_generation(), self._floor.get((gk, node.address), 0) + 1)

    async def _generations(self, node: AsyncMemcachedNode, owner: str, prefixes: list[str]) -> str:
        """The generation segment of a key owned by ``owner``, served by ``node``, under ``prefixes``.

        Every node keeps the generation of each namespace next to the keys it governs
        (``<prefix>~gen``), so losing one node loses only its own keys. A node standing in
        for a dead ``owner`` also keeps ``<prefix>~gen~<owner>`` for the keys it holds in
        the owner's place. When this client sees a node die, both move forward before their
        next use: the dead node's own generation when it is back (whatever it held may have
        been deleted or overwritten meanwhile), and the stand-in's generation for it at each
        new outage (what it held for a previous outage is stale). One ``get`` of all the
        keys needed, on ``node``.
        """
        holder = node.address
        # (generation key, the node whose outages move it, namespace)
        wanted: list[tuple[bytes, str, str]] = []
        for prefix in prefixes:
            wanted.append((generation_key(prefix), holder, prefix))
            if owner != holder:
                wanted.append((fallback_generation_key(prefix, owner), owner, prefix))
        if self._outages or self._pending:
            for gk, watched, prefix in wanted:
                slot = (gk, holder)
                seen = self._outages.get(watched, 0)
                if slot in self._pending or self._settled.get(slot, 0) < seen:
                    await self._bump(node, gk, prefix)
                    self._settled[slot] = seen
                    self._pending.discard(slot)
        found = await self._guard(node, "get", None, node.get_many, [gk for gk, _, _ in wanted])
        values: list[str] = []
        for gk, _, _ in wanted:
            item = found.get(gk)
            for _ in range(_CREATE_RACES):
                if item is not None and item[0].isdigit():
                    break
                fresh = self._fresh(node, gk)
                if item is not None:  # not a number (overwritten by someone else): start afresh
                    await self._guard(node, "set", None, node.set, gk, fresh, 0, 0)
                    item = (fresh, 0)
                elif await self._guard(node, "add", None, node.add, gk, fresh, 0, 0):
                    item = (fresh, 0)
                else:  # another client created it first: use theirs
                    item = await self._guard(node, "get", None, node.get, gk)
            if item is None or not item[0].isdigit():
                raise CacheTimeout(f"memcached node {holder}: could not read a namespace generation")
            value = int(item[0])
            if value > self._floor.get((gk, holder), 0):
                self._floor[(gk, holder)] = value
            values.append(item[0].decode("ascii"))
        if owner == holder:
            return ".".join(values)
        # Own generation and fallback generation per prefix, nested prefixes dot-joined.
        return ".".join(f"{values[i]}_{values[i + 1]}" for i in range(0, len(values), 2))

    async def _locate(self, key: str) -> tuple[bytes, AsyncMemcachedNode]:
        """The wire key of ``key`` and the node to send it to."""
        prefixes = self._prefixes
        if not (prefixes and key.startswith(prefixes)):
            wk = wire_key(key)
            return wk, self._pick(wk)
        owner, node = self._place(key)
        # Nested namespaces ("a:" and "a:b:") each contribute their generation, so clearing
        # the outer one also clears the inner one, as a prefix delete would on Redis.
        matching = [prefix for prefix in prefixes if key.startswith(prefix)]
        longest = matching[-1]
        generation = await self._generations(node, owner, matching)
        return namespaced_key(longest, generation, key[len(longest) :]), node

    async def _by_node(self, keys: Sequence[str]) -> dict[str, dict[bytes, str]]:
        """Group keys by node: node address -> {wire key: key}; generations read once per node."""
        groups: dict[str, dict[bytes, str]] = {}
        prefixes = self._prefixes
        known: dict[tuple[str, str, str], str] = {}
        for key in keys:
            if not (prefixes and key.startswith(prefixes)):
                wk = wire_key(key)
                groups.setdefault(self._pick(wk).address, {})[wk] = key
                continue
            owner, node = self._place(key)
            matching = [prefix for prefix in prefixes if key.startswith(prefix)]
            longest = matching[-1]
            slot = (node.address, owner, longest)
            generation = known.get(slot)
            if generation is None:
                generation = known[slot] = await self._generations(node, owner, matching)
            groups.setdefault(node.address, {})[namespaced_key(longest, generation, key[len(longest) :])] = (
                key
            )
        return groups

    def _collection(self, kind: int, operation: str, key: str, data: bytes, flags: int) -> Any:
        """Decode a stored collection of ``kind``; WrongType when the key holds something else."""
        if flags != kind:
            held = _KIND.get(flags, "a plain value")
            raise WrongType(f"{operation} on key {key!r}: the key holds {held}, not {_KIND[kind]}")
        if not data.startswith(_MAGIC):
            raise SerializationError(f"{operation} on key {key!r}: corrupt {_KIND[kind]} (bad header)")
        try:
            return msgpack.unpackb(data[len(_MAGIC) :], raw=False)
        except Exception as exc:
            raise SerializationError(f"{operation} on key {key!r}: corrupt {_KIND[kind]}: {exc}") from exc

    @staticmethod
    def _pack(value: Any) -> bytes:
        packed: bytes = msgpack.packb(value, use_bin_type=True)
        return _MAGIC + packed

    async def _read(self, kind: int, operation: str, key: str) -> Any:
        """The collection at ``key`` (None when absent), for read-only operations."""
        wk, node = await self._locate(key)
        item = await self._guard(node, operation, key, node.get, wk)
        if item is None:
            return None
        return self._collection(kind, operation, key, item[0], item[1])

    async def _update(self, operation: str, key: str, change: Callable[[bytes | None, int], _Change]) -> Any:
        """Apply ``change`` by compare-and-swap until it wins.

        ``change(data, flags)`` gets the stored bytes (None when absent) and returns
        ``(new bytes | None to delete | _UNCHANGED, new flags, result)``. The item keeps its
        remaining ttl (memcached's ``cas`` needs one, so the one read with the value is
        written back; a concurrent ``touch`` is not seen by ``cas`` and may be undone).
        """
        wk, node = await self._locate(key)
        for attempt in range(_CAS_ATTEMPTS):
            item = await self._guard(node, operation, key, node.get_for_update, wk)
            if item is None:
                new, flags, result = change(None, 0)
                if new is None or isinstance(new, _Unchanged):
                    return result
                self._check_size(key, new)
                if await self._guard(node, operation, key, node.add, wk, new, 0, flags):
                    return result
            else:
                data, old_flags, cas, remaining = item
                new, flags, result = change(data, old_flags)
                if isinstance(new, _Unchanged):
                    return result
                if new is None:
                    if await self._guard(node, operation, key, node.delete_cas, wk, cas):
                        return result
                else:
                    self._check_size(key, new)
                    expiry = exptime(None if remaining < 0 else max(remaining, 1), time.time())
                    if await self._guard(node, operation, key, node.cas, wk, new, expiry, flags, cas):
                        return result
            # Lost a race: back off a random, growing moment so contenders spread out.
            await asyncio.sleep(random.random() * min(_BACKOFF_CAP, 0.0005 * 2**attempt))
        raise CacheTimeout(
            f"memcached: {operation} on key {key!r} gave up after {_CAS_ATTEMPTS} "
            "compare-and-swap attempts under contention"
        )

    # ------------------------------------------------------------------ plain values

    async def get(self, key: str) -> Any:
        """``get``; WrongType on a collection."""
        prefixes = self._prefixes
        health = self._health
        if prefixes and key.startswith(prefixes):
            wk, node = await self._locate(key)
        else:
            wk = wire_key(key)
            single = self._single
            node = self._pick(wk) if single is None or health.dead_until else single
        # _guard inlined: this is the hot path.
        try:
            item = await node.get(wk)
        except (BackendUnavailable, CacheTimeout, ProtocolError):
            self._failed(node.address)
            raise
        except MemcachedReplyError as exc:
            raise self._reply_error(exc, "get", key, node) from exc
        if health.failures:
            health.record_success(node.address)
        if item is None:
            return MISSING
        if item[1] in _KIND:
            raise WrongType(f"get on key {key!r}: the key holds {_KIND[item[1]]}, not a plain value")
        return item[0]

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """One ``get k1 k2 ...`` per node (concurrently in the async flavour)."""
        if not keys:
            return {}
        single = self._single
        if single is not None and not self._prefixes and not self._health.dead_until:
            # The common case in one pass: one server, no namespace to resolve.
            wire = dict(zip(wire_keys(keys), keys, strict=True))
            hits = await self._guard(single, "get_many", None, single.get_many, list(wire))
            return {wire[wk]: data for wk, (data, flags) in hits.items() if flags not in _KIND}
        groups = await self._by_node(keys)
        calls = [
            functools.partial(
                self._guard, self._nodes[address], "get_many", None, self._nodes[address].get_many, list(wire)
            )
            for address, wire in groups.items()
        ]
        found: dict[str, Any] = {}
        for wire, hits in zip(groups.values(), await gather(calls), strict=True):
            for wk, (data, flags) in hits.items():
                if flags not in _KIND:  # collections are skipped, as Redis MGET and memory do
                    found[wire[wk]] = data
        return found

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        """``set``."""
        self._check_size(key, value)
        wk, node = await self._locate(key)
        await self._guard(node, "set", key, node.set, wk, value, _expiry("set", key, ttl), 0)

    async def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        """Pipelined ``set`` per node, every reply checked."""
        if not items:
            return
        for key, value in items.items():
            self._check_size(key, value)
        groups = await self._by_node(list(items))
        expiry = _expiry("set_many", None, ttl)
        calls = [
            functools.partial(
                self._guard,
                self._nodes[address],
                "set_many",
                None,
                self._nodes[address].set_many,
                [(wk, items[key]) for wk, key in wire.items()],
                expiry,
            )
            for address, wire in groups.items()
        ]
        await gather(calls)

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """``add``."""
        self._check_size(key, value)
        wk, node = await self._locate(key)
        return bool(await self._guard(node, "add", key, node.add, wk, value, _expiry("add", key, ttl), 0))

    async def delete(self, key: str) -> bool:
        """``delete``."""
        wk, node = await self._locate(key)
        return bool(await self._guard(node, "delete", key, node.delete, wk))

    async def delete_many(self, keys: list[str]) -> int:
        """Pipelined ``delete`` per node."""
        if not keys:
            return 0
        groups = await self._by_node(list(dict.fromkeys(keys)))
        calls = [
            functools.partial(
                self._guard,
                self._nodes[address],
                "delete_many",
                None,
                self._nodes[address].delete_many,
                list(wire),
            )
            for address, wire in groups.items()
        ]
        return sum(await gather(calls))

    # ------------------------------------------------------------------ verbs

    async def get_item(self, key: str) -> Item | Missing:
        """``mg <key> v f c t``: the value, its CAS unique (the version) and its ttl at once."""
        wk, node = await self._locate(key)
        item = await self._guard(node, "get_item", key, node.get_for_update, wk)
        if item is None:
            return MISSING
        data, flags, cas, remaining = item
        if flags in _KIND:
            raise WrongType(f"get_item on key {key!r}: the key holds {_KIND[flags]}, not a plain value")
        expires_at = None if remaining < 0 else time.time() + remaining
        return Item(key, data, cas, None, expires_at, (), len(data))

    async def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        """``cas`` with the version as the CAS unique: NOT_FOUND and EXISTS both answer False."""
        if type(version) is not int or not 0 < version < _CAS_MAX:
            return False  # no item has that CAS unique
        self._check_size(key, value)
        wk, node = await self._locate(key)
        expiry = _expiry("set", key, ttl)
        return bool(await self._guard(node, "set_if_version", key, node.cas, wk, value, expiry, 0, version))

    async def delete_if_version(self, key: str, version: int | str) -> bool:
        """``md <key> C<version>``: deleted only while the CAS unique is still ``version``."""
        if type(version) is not int or not 0 < version < _CAS_MAX:
            return False
        wk, node = await self._locate(key)
        return bool(await self._guard(node, "delete_if_version", key, node.delete_cas, wk, version))

    async def pull(self, key: str) -> Any:
        """Read with the CAS unique, then ``md`` with it: the one caller whose delete wins gets
        the value; a caller that loses to a change reads again (bounded, with backoff)."""
        wk, node = await self._locate(key)
        for attempt in range(_CAS_ATTEMPTS):
            item = await self._guard(node, "pull", key, node.get_for_update, wk)
            if item is None:
                return MISSING
            data, flags, cas, _ = item
            if flags in _KIND:
                raise WrongType(f"pull on key {key!r}: the key holds {_KIND[flags]}, not a plain value")
            if await self._guard(node, "pull", key, node.delete_cas, wk, cas):
                return data
            await asyncio.sleep(random.random() * min(_BACKOFF_CAP, 0.0005 * 2**attempt))
        raise CacheTimeout(
            f"memcached: pull on key {key!r} gave up after {_CAS_ATTEMPTS} attempts under contention"
        )

    async def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        """``replace``: stored only if the key exists (a collection included, as Redis SET XX)."""
        self._check_size(key, value)
        wk, node = await self._locate(key)
        expiry = _expiry("replace", key, ttl)
        return bool(await self._guard(node, "replace", key, node.replace, wk, value, expiry, 0))

    async def exists(self, key: str) -> bool:
        """``mg <key>``: presence without fetching the value."""
        wk, node = await self._locate(key)
        return bool(await self._guard(node, "exists", key, node.exists, wk))

    async def incr(self, key: str, delta: int) -> int:
        """Native ``incr`` (``add`` when missing); a compare-and-swap loop for negative numbers."""
        if delta >= 0:
            wk, node = await self._locate(key)
            for _ in range(_CREATE_RACES):
                try:
                    native = await self._guard(node, "incr", key, node.incr, wk, delta)
                except WrongType:
                    break  # "-5", or not a number: the decimal-text path below decides
                if native is None:
                    if await self._guard(node, "incr", key, node.add, wk, b"%d" % delta, 0, 0):
                        return delta
                    continue  # another client created it first: increment theirs
                if native > _INT64_MAX:
                    # memcached counts up to 2**64-1, ours stop at 2**63-1 (like Redis): undo,
                    # by compare-and-swap (memcached's own decr would space-pad the number).
                    await self._update("incr", key, functools.partial(_subtract, key, delta))
                    raise InvalidArgument(
                        f"incr on key {key!r}: the result would overflow a signed 64-bit integer"
                    )
                return int(native)

        def change(data: bytes | None, flags: int) -> _Change:
            if data is None:
                return b"%d" % delta, 0, delta
            if flags in _KIND:
                raise WrongType(f"incr on key {key!r}: the key holds {_KIND[flags]}, not an integer")
            number = _decimal(data)
            if number is None:
                raise WrongType(f"incr on key {key!r}: the value is not an integer")
            new = number + delta
            if not _INT64_MIN <= new <= _INT64_MAX:
                raise InvalidArgument(
                    f"incr on key {key!r}: the result would overflow a signed 64-bit integer"
                )
            return b"%d" % new, flags, new

        result: int = await self._update("incr", key, change)
        return result

    async def expire(self, key: str, ttl: float | None) -> bool:
        """``touch`` (with 0 to persist)."""
        wk, node = await self._locate(key)
        return bool(await self._guard(node, "expire", key, node.touch, wk, _expiry("expire", key, ttl)))

    async def ttl(self, key: str) -> float | Missing | None:
        """Meta ``mg <key> t``: whole seconds left, -1 for none."""
        wk, node = await self._locate(key)
        remaining = await self._guard(node, "ttl", key, node.meta_ttl, wk)
        if remaining is None:
            return MISSING
        if remaining < 0:
            return None
        return float(remaining)

    def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """Not possible: memcached cannot list its keys."""
        raise UnsupportedOperation(
            "memcached",
            "iter_keys",
            "Memcached cannot enumerate its keys (it has no SCAN or KEYS); keep an index of the "
            "keys you need to list in a key of its own, or use a backend that can (redis, file)",
        )

    async def delete_pattern(self, pattern: str) -> int:
        """Not possible: memcached cannot list its keys."""
        raise UnsupportedOperation(
            "memcached",
            "delete_pattern",
            "Memcached cannot enumerate its keys (it has no SCAN or KEYS), so it cannot find the "
            "keys a pattern matches; use a namespace and clear() to drop a group of keys",
        )

    async def clear(self, prefix: str | None) -> None:
        """A namespace: bump its generation (O(1)). Everything: ``flush_all`` on every server."""
        if prefix is None:
            calls = [
                functools.partial(self._guard, node, "clear", None, node.flush_all)
                for node in self._nodes.values()
            ]
            await gather(calls)
            return
        self.attach_namespace(prefix)
        gk = generation_key(prefix)
        health = self._health

        async def bump(node: AsyncMemcachedNode) -> BaseException | None:
            try:
                await self._bump(node, gk, prefix)
            except (BackendUnavailable, CacheTimeout, ProtocolError) as exc:
                # Moved forward before this client's next use of that node.
                self._pending.add((gk, node.address))
                return exc
            return None

        # A node marked dead is skipped: this client bumps it when it is back (an outage).
        live = [node for address, node in self._nodes.items() if health.available(address)]
        if not live:
            raise self._all_dead()
        errors = await gather([functools.partial(bump, node) for node in live])
        for error in errors:
            if error is not None:
                raise error

    # ------------------------------------------------------------------ lists

    async def push(self, key: str, values: list[Any], left: bool) -> int:
        """LPUSH/RPUSH by compare-and-swap."""

        def change(data: bytes | None, flags: int) -> _Change:
            items = [] if data is None else self._collection(_LIST, "push", key, data, flags)
            items = [*reversed(values), *items] if left else [*items, *values]
            return self._pack(items), _LIST, len(items)

        result: int = await self._update("push", key, change)
        return result

    async def pop(self, key: str, left: bool) -> Any:
        """LPOP/RPOP by compare-and-swap; the emptied list is deleted."""

        def change(data: bytes | None, flags: int) -> _Change:
            if data is None:
                return _UNCHANGED, 0, MISSING
            items = self._collection(_LIST, "pop", key, data, flags)
            if not items:
                return None, 0, MISSING
            value = items.pop(0 if left else -1)
            return (self._pack(items) if items else None), _LIST, value

        return await self._update("pop", key, change)

    async def llen(self, key: str) -> int:
        """Length of the list."""
        items = await self._read(_LIST, "llen", key)
        return 0 if items is None else len(items)

    async def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        """Elements start..stop inclusive."""
        items = await self._read(_LIST, "lrange", key)
        return [] if items is None else _lrange(items, start, stop)

    # ------------------------------------------------------------------ sets

    async def sadd(self, key: str, members: list[Any]) -> int:
        """SADD by compare-and-swap."""

        def change(data: bytes | None, flags: int) -> _Change:
            current = [] if data is None else self._collection(_SET, "sadd", key, data, flags)
            seen = builtins.set(current)
            added = 0
            for member in members:
                if member not in seen:
                    seen.add(member)
                    current.append(member)
                    added += 1
            if not added:
                return _UNCHANGED, 0, 0
            return self._pack(current), _SET, added

        result: int = await self._update("sadd", key, change)
        return result

    async def srem(self, key: str, members: list[Any]) -> int:
        """SREM by compare-and-swap; the emptied set is deleted."""

        def change(data: bytes | None, flags: int) -> _Change:
            if data is None:
                return _UNCHANGED, 0, 0
            current = self._collection(_SET, "srem", key, data, flags)
            gone = builtins.set(members)
            kept = [member for member in current if member not in gone]
            removed = len(current) - len(kept)
            if not removed:
                return _UNCHANGED, 0, 0
            return (self._pack(kept) if kept else None), _SET, removed

        result: int = await self._update("srem", key, change)
        return result

    async def smembers(self, key: str) -> builtins.set[Any]:
        """Every member."""
        members = await self._read(_SET, "smembers", key)
        return builtins.set() if members is None else builtins.set(members)

    async def sismember(self, key: str, member: Any) -> bool:
        """Membership test."""
        members = await self._read(_SET, "sismember", key)
        return members is not None and member in members

    async def scard(self, key: str) -> int:
        """Set size."""
        members = await self._read(_SET, "scard", key)
        return 0 if members is None else len(members)

    # ------------------------------------------------------------------ hashes

    async def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        """HSET by compare-and-swap."""

        def change(data: bytes | None, flags: int) -> _Change:
            fields = {} if data is None else self._collection(_HASH, "hset", key, data, flags)
            new = sum(1 for name in mapping if name not in fields)
            fields.update(mapping)
            return self._pack(fields), _HASH, new

        result: int = await self._update("hset", key, change)
        return result

    async def hget(self, key: str, field: str) -> Any:
        """One field or MISSING."""
        fields = await self._read(_HASH, "hget", key)
        return MISSING if fields is None else fields.get(field, MISSING)

    async def hgetall(self, key: str) -> dict[str, Any]:
        """Every field."""
        fields = await self._read(_HASH, "hgetall", key)
        return {} if fields is None else dict(fields)

    async def hdel(self, key: str, fields: list[str]) -> int:
        """HDEL by compare-and-swap; the emptied hash is deleted."""

        def change(data: bytes | None, flags: int) -> _Change:
            if data is None:
                return _UNCHANGED, 0, 0
            current = self._collection(_HASH, "hdel", key, data, flags)
            removed = sum(1 for name in builtins.set(fields) if current.pop(name, MISSING) is not MISSING)
            if not removed:
                return _UNCHANGED, 0, 0
            return (self._pack(current) if current else None), _HASH, removed

        result: int = await self._update("hdel", key, change)
        return result

    async def hexists(self, key: str, field: str) -> bool:
        """Field presence."""
        fields = await self._read(_HASH, "hexists", key)
        return fields is not None and field in fields

    async def hlen(self, key: str) -> int:
        """Number of fields."""
        fields = await self._read(_HASH, "hlen", key)
        return 0 if fields is None else len(fields)

    async def hincrby(self, key: str, field: str, delta: int) -> int:
        """HINCRBY by compare-and-swap on the field's decimal text."""

        def change(data: bytes | None, flags: int) -> _Change:
            fields = {} if data is None else self._collection(_HASH, "hincrby", key, data, flags)
            current = fields.get(field, b"0")
            if not isinstance(current, bytes) or _DECIMAL(current) is None:
                raise WrongType(f"hincrby on key {key!r}: field {field!r} is not an integer")
            new = int(current) + delta
            if not _INT64_MIN <= new <= _INT64_MAX:
                raise InvalidArgument(
                    f"hincrby on key {key!r}: the result would overflow a signed 64-bit integer"
                )
            fields[field] = b"%d" % new
            return self._pack(fields), _HASH, new

        result: int = await self._update("hincrby", key, change)
        return result

    # ------------------------------------------------------------------ lifecycle

    async def ping(self) -> None:
        """``version`` on every server not marked dead; BackendUnavailable when none answers."""
        errors: list[str] = []
        answered = 0
        for address, node in self._nodes.items():
            if not self._health.available(address):
                errors.append(f"{address}: marked dead")
                continue
            try:
                await self._guard(node, "ping", None, node.version)
            except (BackendUnavailable, CacheTimeout, ProtocolError) as exc:
                errors.append(str(exc))
                continue
            answered += 1
        if not answered:
            raise BackendUnavailable(f"{self.describe()}: no server answers: " + "; ".join(errors))

    async def counters(self, prefix: str | None) -> BackendCounters:
        """Items and bytes (whole servers: memcached cannot count a namespace), evictions, expirations."""
        items = size = evictions = expirations = 0
        for address, node in self._nodes.items():
            if not self._health.available(address):
                continue
            try:
                stats = await self._guard(node, "stats", None, node.stats)
            except (BackendUnavailable, CacheTimeout, ProtocolError):
                continue
            items += int(stats.get("curr_items", 0))
            size += int(stats.get("bytes", 0))
            evictions += int(stats.get("evictions", 0))
            expirations += int(stats.get("expired_unfetched", 0))
        if prefix is not None:
            items = size = 0
        return BackendCounters(items=items, bytes=size, evictions=evictions, expirations=expirations)

    async def close(self) -> None:
        """Close every connection. Idempotent."""
        for node in self._nodes.values():
            await node.close()

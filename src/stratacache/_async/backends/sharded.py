"""The ``sharded://`` backend: keys spread over several backends by a consistent hash ring.

Each key lives on one node, chosen by the ketama ring that the Memcached backend uses too
(:class:`~stratacache.core.hashring.HashRing`: one implementation), so adding a node moves
about 1/N of the keys. Nodes are any backends (several Redis servers, several Memcached
pools, several file directories, or several stratacache servers).

Failure handling (:class:`~stratacache.core.health.NodeHealth`, shared with Memcached): a
node whose calls fail with BackendUnavailable/CacheTimeout ``failure_threshold`` times in a
row is marked down; its keys then go to the next node clockwise on the ring, so operations
keep succeeding without waiting out a timeout on every call. After ``dead_retry`` seconds
the next operation routed to it is its probe: success re-admits it, failure marks it down
again. The ring's state is in ``stats().backend`` and in ``ping()``.

Consistency note: while a node is down its keys are written to its successor; when it comes
back, its own copies (written before it went down) are visible again and may be older. Keep
a ttl on sharded entries, or clear a node that rejoins, when that matters.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..._build import build_backend
from ..._exceptions import BackendUnavailable, CacheTimeout, ConfigurationError
from ..._redact import redact, redact_url
from ..._types import MISSING, Item, Missing
from ...core.hashring import HashRing
from ...core.health import NodeHealth
from .base import AsyncBackend, BackendCounters, Capabilities

__all__ = ["AsyncShardedBackend"]

_IS_ASYNC = True
_UNAVAILABLE = (BackendUnavailable, CacheTimeout)
_Call = Callable[..., Awaitable[Any]]


class AsyncShardedBackend(AsyncBackend):
    """Keys spread over ``nodes`` by consistent hashing, with failover to the next node.

    ``nodes`` is a list of backends (objects, URLs, names or config mappings) or a mapping
    ``{node_id: backend}``; ids name the nodes on the ring, so every process must use the
    same ids for the same nodes (by default a URL is its own id, with any password shown
    as ``***``, and an object its ``describe()``). ``weights`` (``{node_id: int}``) gives
    a node a larger share.
    ``failure_threshold`` consecutive failures mark a node down; it is tried again after
    ``dead_retry`` seconds. ``clock`` (monotonic seconds) is for tests.
    """

    name: ClassVar[str] = "sharded"

    def __init__(
        self,
        nodes: Sequence[Any] | Mapping[str, Any],
        *,
        weights: Mapping[str, int] | None = None,
        failure_threshold: int = 2,
        dead_retry: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        specs: list[tuple[str | None, Any]]
        if isinstance(nodes, Mapping):
            specs = [(str(node_id), spec) for node_id, spec in nodes.items()]
        elif isinstance(nodes, (list, tuple)):
            specs = [(None, spec) for spec in nodes]
        else:
            raise ConfigurationError(
                f"parameter 'nodes': expected a list or mapping of backends, got {redact(nodes)!r}"
            )
        if len(specs) < 2:
            raise ConfigurationError(
                f"parameter 'nodes': a sharded backend needs at least two nodes, got {len(specs)}"
            )
        self._nodes: dict[str, AsyncBackend] = {}
        try:
            for position, (node_id, spec) in enumerate(specs):
                backend = build_backend(
                    spec, asynchronous=_IS_ASYNC, what=f"node {position}", owner="the sharded cache"
                )
                # A URL names its node without its password (redact_url leaves a URL with
                # nothing to hide unchanged, so such ids, and the ring, are as before).
                ident = node_id or (redact_url(spec) if isinstance(spec, str) else backend.describe())
                if ident in self._nodes:
                    raise ConfigurationError(
                        f"node {position}: id {ident!r} is given twice; node ids must be unique"
                    )
                self._nodes[ident] = backend
        except BaseException:
            self._close_built()
            raise
        ring_weights = dict.fromkeys(self._nodes, 1)
        for given_id, weight in (weights or {}).items():
            # A weight keyed by a node's full URL (password included) still finds its node.
            node_id = given_id if given_id in ring_weights else redact_url(str(given_id))
            if node_id not in ring_weights:
                raise ConfigurationError(f"parameter 'weights': no node has the id {node_id!r}")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise ConfigurationError(
                    f"parameter 'weights': node {node_id!r} needs a positive integer weight"
                )
            ring_weights[node_id] = weight
        try:
            self._health = NodeHealth(failure_threshold, dead_retry, **({"clock": clock} if clock else {}))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self._ring = HashRing(ring_weights)
        self._reroutes = 0
        backends = list(self._nodes.values())
        self.capabilities = Capabilities(  # type: ignore[misc]  # per instance: depends on the nodes
            stores_objects=all(b.capabilities.stores_objects for b in backends),
            retains_data=any(b.capabilities.retains_data for b in backends),
            delete_pattern=all(b.capabilities.delete_pattern for b in backends),
            collections=all(b.capabilities.collections for b in backends),
            ttl_resolution=max(b.capabilities.ttl_resolution for b in backends),
            versions=all(b.capabilities.versions for b in backends),
        )

    def _close_built(self) -> None:
        # A constructor that fails half-way must not leak the pools of the nodes it built;
        # close() is async in this flavour, so only drop references here.
        self._nodes = {}

    # ------------------------------------------------------------------ routing

    def describe(self) -> str:
        """The node ids, in order."""
        return f"sharded [{', '.join(self._nodes)}]"

    def attach_namespace(self, prefix: str) -> None:
        """Every node learns the namespace (Memcached nodes keep generations per namespace)."""
        for backend in self._nodes.values():
            backend.attach_namespace(prefix)

    def node_for(self, key: str) -> str:
        """The id of the node that serves ``key`` now: its owner, or the next live node."""
        health = self._health
        if not health.failures:  # the common case: every node healthy
            return self._ring.node_for(key)
        for node in self._ring.candidates(key):
            if health.available(node):
                return node
        raise BackendUnavailable(f"{self.describe()}: every node is down")

    async def _on(self, key: str, method: str, *args: Any) -> Any:
        """Run ``method(key, *args)`` on the key's node; on its failure, count it, and once
        the node is marked down, run it again on the key's next node."""
        return (await self._routed(key, method, *args))[1]

    async def _routed(self, key: str, method: str, *args: Any) -> tuple[str, Any]:
        """:meth:`_on`, also naming the node that answered."""
        while True:
            node = self.node_for(key)
            try:
                result = await getattr(self._nodes[node], method)(key, *args)
            except _UNAVAILABLE:
                if not self._health.record_failure(node):
                    raise  # under the threshold: the caller sees this one failure
                self._reroutes += 1
                continue  # marked down: the ring now sends the key to its successor
            if self._health.failures:
                self._health.record_success(node)
            return node, result

    def _group(self, keys: Sequence[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for key in keys:
            groups.setdefault(self.node_for(key), []).append(key)
        return groups

    async def _batch(self, node: str, method: str, arg: Any, *rest: Any) -> Any:
        """One batch call on one node, with the node's health recorded."""
        try:
            result = await getattr(self._nodes[node], method)(arg, *rest)
        except _UNAVAILABLE:
            self._health.record_failure(node)
            raise
        if self._health.failures:
            self._health.record_success(node)
        return result

    async def _fan_out(self, method: str, *args: Any) -> list[Any]:
        """Call ``method`` on every node that is not down; fail only if none answered."""
        results: list[Any] = []
        last: Exception | None = None
        for node, backend in self._nodes.items():
            if not self._health.available(node):
                continue
            try:
                results.append(await getattr(backend, method)(*args))
            except _UNAVAILABLE as exc:
                self._health.record_failure(node)
                last = exc
                continue
            if self._health.failures:
                self._health.record_success(node)
        if not results:
            raise BackendUnavailable(f"{self.describe()}: no node answered {method}()") from last
        return results

    # ------------------------------------------------------------------ plain values

    async def get(self, key: str) -> Any:
        """GET on the key's node."""
        return await self._on(key, "get")

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """One batch per node."""
        found: dict[str, Any] = {}
        for node, group in self._group(keys).items():
            found.update(await self._batch(node, "get_many", group))
        return found

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        """SET on the key's node."""
        await self._on(key, "set", value, ttl)

    async def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        """One batch per node."""
        for node, group in self._group(list(items)).items():
            await self._batch(node, "set_many", {key: items[key] for key in group}, ttl)

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """ADD on the key's node."""
        result: bool = await self._on(key, "add", value, ttl)
        return result

    async def delete(self, key: str) -> bool:
        """DELETE on the key's node."""
        result: bool = await self._on(key, "delete")
        return result

    async def delete_many(self, keys: list[str]) -> int:
        """One batch per node."""
        deleted = 0
        for node, group in self._group(keys).items():
            deleted += await self._batch(node, "delete_many", group)
        return deleted

    # ------------------------------------------------------------------ verbs
    # A version names the node that issued it ("<node>\n<i|s><node's version>"): after a
    # failover the key's successor may hold an entry whose own version happens to be equal
    # (memory nodes count from 1 each), and a compare-and-set must not match it.

    @staticmethod
    def _wrap(node: str, version: int | str) -> str:
        return f"{node}\n{'i' if type(version) is int else 's'}{version}"

    def _unwrap(self, key: str, version: int | str) -> tuple[str, int | str] | None:
        """(node, the node's version) if ``version`` came from the node now serving ``key``."""
        if type(version) is not str:
            return None
        node, _, tagged = version.rpartition("\n")
        if node not in self._nodes or node != self.node_for(key) or not tagged:
            return None
        if tagged[0] == "s":
            return node, tagged[1:]
        if tagged[0] == "i" and tagged[1:].isdigit():
            return node, int(tagged[1:])
        return None

    async def get_item(self, key: str) -> Item | Missing:
        """GET_ITEM on the key's node, its version tagged with the node."""
        routed: tuple[str, Item | Missing] = await self._routed(key, "get_item")
        node, item = routed
        if item is MISSING:
            return MISSING
        return Item(
            key, item.value, self._wrap(node, item.version), item.created, item.expires_at, (), item.size
        )

    async def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        """Compare-and-set on the key's node, only with a version that node issued."""
        target = self._unwrap(key, version)
        if target is None:
            return False
        result: bool = await self._batch(target[0], "set_if_version", key, value, ttl, target[1])
        return result

    async def delete_if_version(self, key: str, version: int | str) -> bool:
        """Compare-and-delete on the key's node, only with a version that node issued."""
        target = self._unwrap(key, version)
        if target is None:
            return False
        result: bool = await self._batch(target[0], "delete_if_version", key, target[1])
        return result

    async def pull(self, key: str) -> Any:
        """PULL on the key's node."""
        return await self._on(key, "pull")

    async def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        """REPLACE on the key's node."""
        result: bool = await self._on(key, "replace", value, ttl)
        return result

    async def exists(self, key: str) -> bool:
        """EXISTS on the key's node."""
        result: bool = await self._on(key, "exists")
        return result

    async def incr(self, key: str, delta: int) -> int:
        """INCR on the key's node (atomic there)."""
        result: int = await self._on(key, "incr", delta)
        return result

    async def expire(self, key: str, ttl: float | None) -> bool:
        """EXPIRE on the key's node."""
        result: bool = await self._on(key, "expire", ttl)
        return result

    async def ttl(self, key: str) -> float | Missing | None:
        """TTL on the key's node."""
        result: float | Missing | None = await self._on(key, "ttl")
        return result

    def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """Every live node's keys, node after node (the nodes ``delete_pattern`` reaches).

        A node marked down is skipped, as by ``delete_pattern``: its keys are the ones the
        ring sends elsewhere meanwhile. A node failing during the walk raises its error, and
        so does the walk when every node is down.
        """
        if not self.capabilities.delete_pattern:
            # Named for the backend the caller holds (and raised at the call, like the default).
            raise self._unsupported("iter_keys", "one of its nodes cannot enumerate keys")
        return self._walk_nodes(pattern)

    async def _walk_nodes(self, pattern: str) -> AsyncIterator[str]:
        walked = False
        for node, backend in self._nodes.items():
            if not self._health.available(node):
                continue
            walked = True
            try:
                async for key in backend.iter_keys(pattern):
                    yield key
            except _UNAVAILABLE:
                self._health.record_failure(node)
                raise
            if self._health.failures:
                self._health.record_success(node)
        if not walked:
            raise BackendUnavailable(f"{self.describe()}: no node answered iter_keys()")

    async def delete_pattern(self, pattern: str) -> int:
        """On every live node; the total."""
        return sum(await self._fan_out("delete_pattern", pattern))

    async def clear(self, prefix: str | None) -> None:
        """On every live node."""
        await self._fan_out("clear", prefix)

    # ------------------------------------------------------------------ collections (on the key's node)

    async def push(self, key: str, values: list[Any], left: bool) -> int:
        """LPUSH/RPUSH on the key's node."""
        result: int = await self._on(key, "push", values, left)
        return result

    async def pop(self, key: str, left: bool) -> Any:
        """LPOP/RPOP on the key's node."""
        return await self._on(key, "pop", left)

    async def llen(self, key: str) -> int:
        """LLEN on the key's node."""
        result: int = await self._on(key, "llen")
        return result

    async def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        """LRANGE on the key's node."""
        result: list[Any] = await self._on(key, "lrange", start, stop)
        return result

    async def sadd(self, key: str, members: list[Any]) -> int:
        """SADD on the key's node."""
        result: int = await self._on(key, "sadd", members)
        return result

    async def srem(self, key: str, members: list[Any]) -> int:
        """SREM on the key's node."""
        result: int = await self._on(key, "srem", members)
        return result

    async def smembers(self, key: str) -> builtins.set[Any]:
        """SMEMBERS on the key's node."""
        result: builtins.set[Any] = await self._on(key, "smembers")
        return result

    async def sismember(self, key: str, member: Any) -> bool:
        """SISMEMBER on the key's node."""
        result: bool = await self._on(key, "sismember", member)
        return result

    async def scard(self, key: str) -> int:
        """SCARD on the key's node."""
        result: int = await self._on(key, "scard")
        return result

    async def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        """HSET on the key's node."""
        result: int = await self._on(key, "hset", mapping)
        return result

    async def hget(self, key: str, field: str) -> Any:
        """HGET on the key's node."""
        return await self._on(key, "hget", field)

    async def hgetall(self, key: str) -> dict[str, Any]:
        """HGETALL on the key's node."""
        result: dict[str, Any] = await self._on(key, "hgetall")
        return result

    async def hdel(self, key: str, fields: list[str]) -> int:
        """HDEL on the key's node."""
        result: int = await self._on(key, "hdel", fields)
        return result

    async def hexists(self, key: str, field: str) -> bool:
        """HEXISTS on the key's node."""
        result: bool = await self._on(key, "hexists", field)
        return result

    async def hlen(self, key: str) -> int:
        """HLEN on the key's node."""
        result: int = await self._on(key, "hlen")
        return result

    async def hincrby(self, key: str, field: str, delta: int) -> int:
        """HINCRBY on the key's node."""
        result: int = await self._on(key, "hincrby", field, delta)
        return result

    # ------------------------------------------------------------------ lifecycle

    def node_states(self) -> dict[str, str]:
        """Each node's state: alive, suspect, dead or probation."""
        return {node: self._health.state(node) for node in self._nodes}

    async def ping(self) -> None:
        """Ping every node that is not down (a dead node in probation gets its probe here);
        raise BackendUnavailable when none answers."""
        await self._fan_out("ping")

    async def counters(self, prefix: str | None) -> BackendCounters:
        """Sums over the live nodes, with each node's state and the reroute count in details."""
        totals = BackendCounters()
        states = self.node_states()
        try:
            parts = await self._fan_out("counters", prefix)
        except BackendUnavailable:
            parts = []
        for part in parts:
            totals = BackendCounters(
                items=totals.items + part.items,
                bytes=totals.bytes + part.bytes,
                evictions=totals.evictions + part.evictions,
                expirations=totals.expirations + part.expirations,
            )
        return BackendCounters(
            items=totals.items,
            bytes=totals.bytes,
            evictions=totals.evictions,
            expirations=totals.expirations,
            details={
                "nodes": states,
                "live_nodes": sum(state in ("alive", "suspect") for state in states.values()),
                "reroutes": self._reroutes,
            },
        )

    async def close(self) -> None:
        """Close every node. Idempotent."""
        for backend in self._nodes.values():
            await backend.close()

    # ---- limits: server-side scripts, run on the node that serves the first key

    @property
    def can_run_scripts(self) -> bool:
        """True when every node runs scripts, so each key's choice is the same in every process."""
        return all(getattr(backend, "can_run_scripts", False) for backend in self._nodes.values())

    async def run_script(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run ``script`` on the node of ``keys[0]`` (every key must live there), with failover."""
        if not self.can_run_scripts:
            raise self._unsupported("run_script", "not every node can run scripts")
        while True:
            node = self.node_for(keys[0])
            try:
                result = await self._nodes[node].run_script(script, keys, args)  # type: ignore[attr-defined]
            except _UNAVAILABLE:
                if not self._health.record_failure(node):
                    raise
                self._reroutes += 1
                continue
            if self._health.failures:
                self._health.record_success(node)
            return result

"""A consistent hash ring (ketama), shared by every client-side multi-node backend.

Why ketama rather than rendezvous hashing:

* **Interoperability.** Ketama is what libmemcached, pylibmc, spymemcached and most other
  memcached clients use (``MEMCACHED_BEHAVIOR_KETAMA``), so a fleet where Python and other
  languages share one memcached pool can agree on where a key lives.
* **Lookup cost.** A key costs one MD5 and one ``bisect`` over ``160 * N`` points, O(log N);
  rendezvous costs one hash per node per key, O(N), which shows on ``get_many`` over many nodes.
* **Failover order.** Walking the ring clockwise from a key's point gives an ordered list of
  distinct fallback nodes for free, the same on every client.

The algorithm (Richard Jones' ketama, as in libmemcached with weights):

* A node named ``name`` with weight ``w`` out of a total ``W`` over ``N`` nodes gets
  ``floor(40 * N * w / W)`` MD5 digests of ``f"{name}-{i}"`` (i = 0, 1, ...); each 16-byte
  digest gives four 32-bit little-endian points (bytes 0-3, 4-7, 8-11, 12-15). With equal
  weights that is 160 points per node.
* A key's point is the first four bytes of ``md5(key)``, little-endian; its node is the owner
  of the first ring point at or after it, wrapping around past the last point.

Node ids are plain strings (``"10.0.0.1:11211"`` for memcached); the ring knows nothing about
connections, so the sharded backend reuses it unchanged. Not thread-safe for mutation:
``add``/``remove`` build a new point table and swap it in with one assignment, so readers in
other threads see either the old ring or the new one, never a half-built one.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping

__all__ = ["POINTS_PER_NODE", "HashRing", "ketama_points", "key_point"]

#: Ring points per node of average weight: 40 MD5 digests x 4 points, ketama's constant.
POINTS_PER_NODE = 160
_DIGESTS_PER_NODE = POINTS_PER_NODE // 4


def key_point(key: bytes | str) -> int:
    """The 32-bit ring position of ``key``: the first 4 bytes of its MD5, little-endian."""
    data = key.encode() if isinstance(key, str) else key
    return int.from_bytes(hashlib.md5(data, usedforsecurity=False).digest()[:4], "little")


def ketama_points(node: str, weight: int, total_weight: int, node_count: int) -> list[int]:
    """Every ring point of ``node`` (libmemcached's weighted ketama)."""
    # libmemcached's arithmetic: the float share of 40 digests per node, floored, with its
    # epsilon so that e.g. 39.9999999 from rounding still counts as 40.
    digests = math.floor(weight / total_weight * _DIGESTS_PER_NODE * node_count + 1e-10)
    points: list[int] = []
    for i in range(digests):
        digest = hashlib.md5(f"{node}-{i}".encode(), usedforsecurity=False).digest()
        points.extend(int.from_bytes(digest[j : j + 4], "little") for j in (0, 4, 8, 12))
    return points


class HashRing:
    """A ketama ring over string node ids, optionally weighted.

    ``node_for(key)`` is the node owning a key; ``candidates(key)`` yields every node in
    failover order (the owner first, then the next distinct nodes clockwise). Adding a node
    to N moves about 1/(N+1) of the keys, all onto the new node; removing one moves only the
    keys it owned.
    """

    __slots__ = ("_nodes", "_owners", "_points")

    def __init__(self, nodes: Iterable[str] | Mapping[str, int] = ()) -> None:
        if isinstance(nodes, Mapping):
            weights = {str(name): int(weight) for name, weight in nodes.items()}
        else:
            weights = dict.fromkeys(nodes, 1)
        for name, weight in weights.items():
            if weight < 1:
                raise ValueError(f"node {name!r}: weight must be a positive integer, got {weight}")
        self._nodes: dict[str, int] = weights
        self._points: list[int] = []
        self._owners: list[str] = []
        self._rebuild()

    def _rebuild(self) -> None:
        total = sum(self._nodes.values())
        count = len(self._nodes)
        ring: dict[int, str] = {}
        # Sorted names so that a point claimed by two nodes (an MD5 collision in 32 bits,
        # rare but possible) goes to the same one on every client and in every order of adds.
        for name in sorted(self._nodes):
            for point in ketama_points(name, self._nodes[name], total, count):
                ring.setdefault(point, name)
        points = sorted(ring)
        owners = [ring[p] for p in points]
        # Swap both at once (a tuple assignment evaluates the right side first), so a
        # concurrent reader never pairs new points with old owners.
        self._points, self._owners = points, owners

    @property
    def nodes(self) -> list[str]:
        """The node ids, in insertion order."""
        return list(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def add(self, node: str, weight: int = 1) -> None:
        """Add ``node`` (or change its weight)."""
        if weight < 1:
            raise ValueError(f"node {node!r}: weight must be a positive integer, got {weight}")
        self._nodes[node] = weight
        self._rebuild()

    def remove(self, node: str) -> None:
        """Remove ``node``; KeyError when it is not on the ring."""
        del self._nodes[node]
        self._rebuild()

    def node_for(self, key: bytes | str) -> str:
        """The node that owns ``key``; LookupError on an empty ring."""
        points, owners = self._points, self._owners
        if not points:
            raise LookupError("the hash ring has no nodes")
        index = bisect.bisect_left(points, key_point(key))
        return owners[index if index < len(owners) else 0]

    def candidates(self, key: bytes | str) -> Iterator[str]:
        """Every node, in failover order for ``key``: its owner, then clockwise."""
        points, owners = self._points, self._owners
        if not points:
            return
        total = len(self._nodes)
        start = bisect.bisect_left(points, key_point(key))
        seen: set[str] = set()
        size = len(owners)
        for offset in range(size):
            owner = owners[(start + offset) % size]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == total:
                    return

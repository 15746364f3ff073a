"""Memcached items over a database of the server (the storage mapping).

An item's value is the database's plain string (``bytes``) at the key, so a key set over
memcached is a string over RESP and the other way round. What memcached keeps beside the
value lives in a side table, :attr:`ItemStore.meta` (key -> :class:`Meta`), holding only the
keys that need it:

* the 32-bit client flags (an item without an entry has flags 0, which is what a value set
  over RESP gets);
* the CAS unique, given lazily: the first read that must show a CAS (``gets``, ``mg c``...)
  takes the next number of a per-listener counter and keeps it, so it stays the same until
  the item changes;
* the meta protocol's per-item state: fetched (``h``), last access (``l``), stale (``I``)
  and win token sent (``W``/``Z``).

Every change of a key, over either protocol, goes through :class:`~..keyspace.Database`,
which calls the server's ``change_listeners``: the listener here drops the key's entry, so
after any change (RESP ``SET``, ``APPEND``, ``DEL``, ``EXPIRE``, ``FLUSHDB``...) the item has
flags 0 and its next CAS is a new number. Expiry and eviction do not notify; their stale
entries are harmless (any later write at the key drops them) and a sweep on the loop
removes them (:meth:`ItemStore.sweep`), so the table never outgrows the keys it describes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from .protocol import RELATIVE_LIMIT

if TYPE_CHECKING:
    from ..app import Server
    from ..keyspace import Database

__all__ = ["EXPIRED", "ItemStore", "Meta", "ttl_of"]

EXPIRED: Final = -1.0
"""What :func:`ttl_of` answers for an exptime already past: store nothing (delete)."""


def ttl_of(exptime: int, now: float | None = None) -> float | None:
    """Seconds to live for a memcached exptime: 0 never expires, up to 30 days is relative,
    above is a Unix time; negative or past is :data:`EXPIRED`."""
    if exptime == 0:
        return None
    if exptime < 0:
        return EXPIRED
    if exptime <= RELATIVE_LIMIT:
        return float(exptime)
    ttl = exptime - (time.time() if now is None else now)
    return ttl if ttl > 0 else EXPIRED


class Meta:
    """What memcached keeps beside an item's value (see the module docstring)."""

    __slots__ = ("atime", "cas", "fetched", "flags", "stale", "token_sent")

    def __init__(self, flags: int = 0, cas: int = 0) -> None:
        self.flags = flags
        self.cas = cas
        self.fetched = False
        self.atime = 0.0
        self.stale = False
        self.token_sent = False


ENTRY_COST = 160
"""Bytes a side-table entry costs (its :class:`Meta`, key string and dict slot), as charged
to the server's memory pool."""


class ItemStore:
    """The items of one database (``memcached-db``) and their side table.

    The side table is a member of the server's memory pool: :meth:`account` (each sweep
    tick) charges :data:`ENTRY_COST` per entry, so ``maxmemory`` covers it, and under
    pressure :meth:`evict_bytes` drops the entries that only hold fetch state or a CAS (the
    item then answers ``h0`` and shows a new CAS; flags and stale marks are kept).
    """

    def __init__(self, server: Server, index: int) -> None:
        self.server = server
        self.db: Database = server.databases[index]
        self.meta: dict[str, Meta] = {}
        self._cas = 0
        self._sweep_keys: list[str] = []
        self._charged = 0
        server.change_listeners.append(self._changed)
        server.pool.register(self)

    def detach(self) -> None:
        """Stop listening to the server's changes and leave the pool (the listener closed)."""
        if self._changed in self.server.change_listeners:
            self.server.change_listeners.remove(self._changed)
        self.server.pool.unregister(self)
        self._charged = 0

    # ------------------------------------------------------------------- pool

    @property
    def name(self) -> str:
        """The pool member's name."""
        return f"memcached-items.db{self.db.index}"

    @property
    def pool_bytes(self) -> int:
        """The bytes charged to the pool."""
        return self._charged

    def account(self) -> None:
        """Charge the pool for the side table as it is now."""
        delta = len(self.meta) * ENTRY_COST - self._charged
        if delta:
            self._charged += delta
            self.server.pool.charge(self, delta)

    def evict_bytes(self, nbytes: int) -> int:
        """Pool relief: drop entries holding only fetch state or a CAS until ``nbytes`` are
        freed (or none is left); returns the bytes freed."""
        meta = self.meta
        wanted = -(-nbytes // ENTRY_COST)
        dropped = 0
        for key, entry in list(meta.items()):
            if dropped >= wanted:
                break
            if not (entry.flags or entry.stale or entry.token_sent):
                del meta[key]
                dropped += 1
        freed = min(dropped * ENTRY_COST, self._charged)
        if freed:
            self._charged -= freed
            self.server.pool.charge(self, -freed)
        return freed

    def _changed(self, db: Database, key: str) -> None:
        if db is self.db and self.meta:
            self.meta.pop(key, None)

    def next_cas(self) -> int:
        """A new CAS unique (never given before by this listener)."""
        self._cas += 1
        return self._cas

    def bump_cas_past(self, cas: int) -> None:
        """After a client chose a CAS (``E``): later numbers stay above it."""
        self._cas = max(self._cas, cas)

    # ------------------------------------------------------------------ reads

    def value(self, key: str) -> bytes | None:
        """The item's value, None when absent (a non-string value is no item)."""
        value = self.db.get(key)
        return value if type(value) is bytes else None

    def meta_of(self, key: str) -> Meta:
        """The key's side entry, created (flags 0, no CAS yet) when absent."""
        meta = self.meta.get(key)
        if meta is None:
            meta = self.meta[key] = Meta()
        return meta

    def cas_of(self, key: str) -> int:
        """The item's CAS unique (given now if it has none)."""
        meta = self.meta_of(key)
        if not meta.cas:
            meta.cas = self.next_cas()
        return meta.cas

    def flags_of(self, key: str) -> int:
        """The item's client flags (0 without an entry)."""
        meta = self.meta.get(key)
        return 0 if meta is None else meta.flags

    def ttl_left(self, key: str) -> int:
        """Whole seconds left (rounded up), -1 without expiry (meta ``t``)."""
        deadline = self.db.deadline(key)
        if deadline is None:
            return -1
        left = deadline - time.time()
        whole = int(left)
        return max(0, whole + 1 if left > whole else whole)

    # ----------------------------------------------------------------- writes

    def store(
        self, key: str, value: bytes, flags: int, ttl: float | None, cas: int | None = None
    ) -> Meta | None:
        """Write the item (``ttl`` from :func:`ttl_of`; :data:`EXPIRED` deletes it) with
        ``flags``; ``cas`` when the client chose the new CAS. Its side entry, or None."""
        db = self.db
        if ttl == EXPIRED:
            db.delete(key)
            return None
        db.set(key, value, ttl)
        if flags or cas is not None:
            meta = self.meta[key] = Meta(flags, cas or 0)
            if cas is not None:
                self.bump_cas_past(cas)
            return meta
        return None

    def store_keep_ttl(self, key: str, value: bytes, flags: int) -> Meta | None:
        """Write the item's new value keeping its expiry (append, incr...) and ``flags``."""
        self.db.set_keep_ttl(key, value)
        if flags:
            meta = self.meta[key] = Meta(flags)
            return meta
        return None

    def store_number(self, key: str, value: bytes, old_size: int) -> Meta | None:
        """incr/decr's write: memcached rewrites the item in place when the number fits its
        old size (the item keeps its state: fetched, stale, win token; a new CAS), else it
        makes a new item (flags kept, state reset)."""
        old = self.meta.get(key)
        flags = 0 if old is None else old.flags
        meta = self.store_keep_ttl(key, value, flags)
        if old is not None and len(value) == old_size:
            meta = meta or self.meta_of(key)
            meta.fetched, meta.atime = old.fetched, old.atime
            meta.stale, meta.token_sent = old.stale, old.token_sent
        return meta

    def touch(self, key: str, ttl: float | None) -> None:
        """Give the live item a new expiry (:data:`EXPIRED` deletes it), keeping its state."""
        db = self.db
        meta = self.meta.get(key)
        if ttl == EXPIRED:
            db.delete(key)
            return
        if ttl is None:
            db.persist(key)
        else:
            db.expire_at(key, time.time() + ttl)
        if meta is not None:
            # The expiry change notified the listener, which dropped the entry: the value
            # and so the flags and CAS are the same (memcached's touch keeps the CAS).
            self.meta[key] = meta

    def sweep(self, limit: int = 1000) -> int:
        """Drop up to ``limit`` side entries whose key is gone (expired, evicted); returns
        how many were dropped. Walks the table in slices, a new snapshot once through."""
        keys = self._sweep_keys
        if not keys:
            keys = self._sweep_keys = list(self.meta)
        exists = self.db.exists
        meta = self.meta
        dropped = 0
        for _ in range(min(limit, len(keys))):
            key = keys.pop()
            if key in meta and not exists(key):
                del meta[key]
                dropped += 1
        return dropped

    def stats(self) -> dict[str, Any]:
        """The database's counts for ``stats`` (every key counts, whatever its type)."""
        counters = self.db.store.counters()
        return {
            "curr_items": counters.items,
            "bytes": counters.bytes,
            "evictions": counters.evictions,
            "reclaimed": counters.expirations,
        }

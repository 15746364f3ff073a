"""Tag version records: how tagged entries are validated and invalidated (docs/patterns/tags.md).

One small record per tag, stored in the cache's own backend under
``<namespace prefix>stratacache:tag:<tag>``, holds that tag's current version (a random
63-bit int). A tagged entry is stored as an :class:`~stratacache.core.envelope.Envelope`
carrying ``{tag: version}`` as read *before* its value was computed, and it is valid only
while every one of those records still holds that version:

* ``invalidate_tags`` writes a fresh random version into each record: one atomic write
  per tag, O(1) whatever the number of entries, and no per-tag key set that could grow.
* A record that is missing (evicted, expired, cleared, never written) validates nothing:
  an entry carrying its tag reads as a miss. A new record gets a new random version, so
  old entries can never match it again (no resurrection after an eviction).
* A write racing an invalidation: the writer read the old version before loading, so the
  entry it writes after the invalidation carries the old version and reads as a miss.

Invalidated entries are dropped lazily: they are not deleted, they read as misses; a single-key
read drops the one it finds by compare-and-delete, the others' space is reclaimed by their
ttl or by eviction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import CacheError
from .._types import MISSING
from ..core.envelope import TAG_RECORD_PREFIX, Envelope, check_tags, new_tag_version

if TYPE_CHECKING:
    from .cache import AsyncCache

__all__ = ["current_versions", "invalidate", "valid_envelopes"]


def _record_key(cache: AsyncCache, tag: str) -> str:
    return cache._prefix + TAG_RECORD_PREFIX + tag


def _version(cache: AsyncCache, raw: Any, key: str) -> Any:
    """A record's decoded version, or MISSING when it holds something undecodable (a
    clobbered record validates nothing, which is the safe answer)."""
    if raw is MISSING:
        return MISSING
    try:
        return cache._decode(raw, key)
    except CacheError:
        return MISSING


async def current_versions(cache: AsyncCache, tags: object, parameter: str = "tags") -> dict[str, int | str]:
    """``{tag: version}`` for ``tags`` (checked: InvalidArgument naming ``parameter``), creating
    the records that are missing. Call it *before* computing the value to be written."""
    names = check_tags(tags, parameter)
    if not names:
        return {}
    backend = cache._backend
    keys = [_record_key(cache, tag) for tag in names]
    try:
        found: Mapping[str, Any] = await backend.get_many(keys)
        versions: dict[str, int | str] = {}
        for tag, key in zip(names, keys, strict=True):
            version = _version(cache, found.get(key, MISSING), key)
            if version is MISSING:
                fresh = new_tag_version()
                # add, not set: a concurrent invalidation's version must win over ours.
                if await backend.add(key, cache._encode(fresh, key), None):
                    version = fresh
                else:
                    version = _version(cache, await backend.get(key), key)
                    if version is MISSING:
                        # Gone again at once (evicted, or a null backend): an entry carrying
                        # this version reads as a miss, which is safe.
                        version = fresh
            versions[tag] = version
    except CacheError as exc:
        cache._failed("set", list(names), exc)
        raise
    return versions


async def valid_envelopes(cache: AsyncCache, envelopes: Mapping[str, Envelope]) -> set[str]:
    """The keys of ``envelopes`` whose tag versions all still match their records (one
    batched read of every record involved)."""
    needed: dict[str, str] = {}
    for envelope in envelopes.values():
        for tag in envelope.tags or ():
            needed.setdefault(_record_key(cache, tag), tag)
    if not needed:
        return set(envelopes)
    found: Mapping[str, Any] = await cache._backend.get_many(list(needed))
    current = {tag: _version(cache, found.get(key, MISSING), key) for key, tag in needed.items()}
    valid = set()
    for key, envelope in envelopes.items():
        for tag, version in (envelope.tags or {}).items():
            seen = current[tag]
            if seen is MISSING or seen != version:
                break
        else:
            valid.add(key)
    return valid


async def invalidate(cache: AsyncCache, tags: Iterable[Any]) -> None:
    """Give every tag a fresh version: one atomic write per tag (a batch where the backend has one)."""
    names = check_tags(tags, "tags")
    if not names:
        return
    items = {}
    for tag in names:
        key = _record_key(cache, tag)
        items[key] = cache._encode(new_tag_version(), key)
    # No ttl: a record must outlive the entries that carry its tag. Losing it anyway
    # (eviction) only turns those entries into misses. Through _call: hooks see the
    # operation ("invalidate_tags", the tag names as key) and errors are counted.
    await cache._call("invalidate_tags", list(names), cache._backend.set_many, items, None)

"""The value envelope: a cached value plus the metadata that tags and stampede control need.

Most values are stored bare. A value written with tags, or by the stampede machinery
(stale-while-revalidate, XFetch), is stored as an :class:`Envelope`:

* ``value``: the caller's value;
* ``tags``: ``{tag: version}``, the version of each tag's record seen *before* the value
  was computed; the entry is valid only while every tag record still holds that version
  (a missing record, evicted or expired or never written, makes it a miss);
* ``fresh_until``: unix time after which the value is stale but still servable (SWR);
  ``None`` = fresh until it expires;
* ``delta``: seconds the loader took (XFetch's recompute-cost estimate);
* ``created``: unix time the value was computed.

Where it is stored
------------------

* A backend that keeps Python objects (``memory://`` without a serializer) stores the
  :class:`Envelope` object itself. User values are never instances of this private class,
  so a plain value cannot be taken for an envelope.
* Every serializing backend stores it through :class:`stratacache.serializers.Codec`: the
  stratacache header with flag bit 3 (:data:`FLAG_ENVELOPE`) set, and as payload the
  serializer's encoding of the list :func:`to_wire` returns,
  ``[value, tags, fresh_until, delta, created]`` (then compressed/encrypted as usual). A
  plain value's header never has that bit set, so no user value can read as an envelope;
  and a release that predates envelopes refuses the bit loudly ("unknown flags") instead
  of returning the list. The raw serializer writes no header, so it cannot carry envelopes:
  tagged writes through it raise :class:`~stratacache.UnsupportedOperation`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .._exceptions import InvalidArgument, InvalidKey, SerializationError
from .._types import check_text

__all__ = [
    "FLAG_ENVELOPE",
    "MAX_TAG_LENGTH",
    "TAG_RECORD_PREFIX",
    "Envelope",
    "TagVersions",
    "check_tags",
    "envelope_tags",
    "from_wire",
    "new_tag_version",
    "to_wire",
]

FLAG_ENVELOPE: Final = 0x08
"""Header flag bit (byte 3) marking a stored value as an envelope (see the module docstring)."""

_WIRE_FIELDS: Final = 5


@dataclass(frozen=True, slots=True)
class Envelope:
    """A value with its tag versions and freshness metadata (see the module docstring)."""

    value: Any
    tags: dict[str, int | str] | None = None
    fresh_until: float | None = None
    delta: float | None = None
    created: float | None = None

    @property
    def bare(self) -> bool:
        """True when there is no metadata: the value can be stored as a plain value."""
        return not self.tags and self.fresh_until is None and self.delta is None and self.created is None


def envelope_tags(envelope: Envelope) -> tuple[str, ...]:
    """The tags an envelope carries, in write order (empty without tags)."""
    return tuple(envelope.tags) if envelope.tags else ()


def to_wire(envelope: Envelope) -> list[Any]:
    """The list a serializer encodes for ``envelope``: ``[value, tags, fresh_until, delta, created]``."""
    return [envelope.value, envelope.tags, envelope.fresh_until, envelope.delta, envelope.created]


def _optional_time(item: Any, name: str, key: str | None) -> float | None:
    # bool is an int subclass but never a time; NaN/inf would poison comparisons.
    if type(item) not in _TIME_TYPES or not math.isfinite(item):
        raise SerializationError(f"malformed envelope: {name} is {type(item).__name__}{_for_key(key)}")
    return float(item)


def _for_key(key: str | None) -> str:
    return "" if key is None else f" (key {key!r})"


_TIME_TYPES: Final = (int, float)
_VERSION_TYPES: Final = (int, str)


def from_wire(data: Any, key: str | None = None) -> Envelope:
    """The :class:`Envelope` a deserialized payload holds; SerializationError when malformed.

    Stored bytes are untrusted: every field is type-checked, so a forged or corrupt payload
    fails here rather than in a later comparison.
    """
    if type(data) is not list or len(data) != _WIRE_FIELDS:
        raise SerializationError(
            f"malformed envelope: expected a list of {_WIRE_FIELDS} fields{_for_key(key)}"
        )
    value, tags, fresh_until, delta, created = data
    if tags is not None:
        if type(tags) is not dict:
            raise SerializationError(f"malformed envelope: tags must be a map{_for_key(key)}")
        for tag, version in tags.items():
            if type(tag) is not str or type(version) not in _VERSION_TYPES:
                raise SerializationError(
                    f"malformed envelope: tags must map str to int or str{_for_key(key)}"
                )
        tags = tags or None
    # Most envelopes carry tags only: the None checks spare three calls per read.
    if fresh_until is not None:
        fresh_until = _optional_time(fresh_until, "fresh_until", key)
    if delta is not None:
        delta = _optional_time(delta, "delta", key)
    if created is not None:
        created = _optional_time(created, "created", key)
    return Envelope(value, tags, fresh_until, delta, created)


# ------------------------------------------------------------------------------ tags

TAG_RECORD_PREFIX: Final = "stratacache:tag:"
"""Raw-key prefix (inside the cache's namespace) of a tag's version record. Keys starting
with it are reserved: a user value written there only makes the tag's entries read as misses."""

MAX_TAG_LENGTH: Final = 200


class TagVersions:
    """The versions of some tags at one moment, from ``cache.tag_versions(*tags)``.

    Read them *before* computing a value and pass them as ``tags=`` to ``set``,
    ``set_many`` or ``add``: the value is then stored with those versions, so if any of
    the tags was invalidated in between, it reads as a miss (the write cannot resurrect
    data loaded before the invalidation). Valid for the cache (namespace) that read them.
    """

    __slots__ = ("_versions",)

    def __init__(self, versions: Mapping[str, int | str]) -> None:
        self._versions = dict(versions)

    @property
    def tags(self) -> tuple[str, ...]:
        """The tag names, in the order they were given."""
        return tuple(self._versions)

    def as_dict(self) -> dict[str, int | str]:
        """A copy of ``{tag: version}``."""
        return dict(self._versions)

    def __eq__(self, other: object) -> bool:
        return type(other) is TagVersions and other._versions == self._versions

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TagVersions({', '.join(map(repr, self._versions))})"


def check_tags(tags: object, parameter: str = "tags") -> tuple[str, ...]:
    """``tags`` as a tuple of distinct tag names in first-seen order; InvalidArgument naming
    ``parameter`` otherwise.

    A tag is a non-empty ``str`` of at most :data:`MAX_TAG_LENGTH` characters that encodes
    as UTF-8. A single ``str`` is refused rather than iterated (``tags="user"`` would
    otherwise mean the tags ``u``, ``s``, ``e``, ``r``).
    """
    if isinstance(tags, (str, bytes, bytearray, memoryview)) or not isinstance(tags, Iterable):
        raise InvalidArgument(
            f"{parameter} must be an iterable of str (a list or tuple of tag names), "
            f"not {type(tags).__name__}: {tags!r}"
        )
    seen: dict[str, None] = {}
    for tag in tags:
        if type(tag) is not str:
            raise InvalidArgument(f"{parameter}: every tag must be a str, not {type(tag).__name__}: {tag!r}")
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise InvalidArgument(
                f"{parameter}: a tag must be 1..{MAX_TAG_LENGTH} characters long, "
                f"got {len(tag)}: {tag[:50]!r}"
            )
        try:
            check_text(tag, "tags")
        except InvalidKey as exc:
            raise InvalidArgument(f"{parameter}: {exc}") from None
        seen[tag] = None
    return tuple(seen)


def new_tag_version() -> int:
    """A fresh tag version: random, so a record that was evicted and written again never
    repeats a version an old entry carries (a counter restarting at 1 would resurrect it).
    Below 2**63, so serializing caches store it as a plain integer."""
    return secrets.randbits(63)

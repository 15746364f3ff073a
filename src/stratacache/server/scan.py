"""Redis glob patterns on bytes, and the cursor iteration of SCAN, HSCAN, SSCAN and ZSCAN.

Patterns (KEYS, SCAN MATCH, PSUBSCRIBE, ...)
--------------------------------------------

:class:`Matcher` / :func:`stringmatch` give exactly what Redis's ``stringmatchlen`` gives:
``*`` any run of bytes, ``?`` one byte, ``[abc]`` a class, ``[^a]`` its negation, ``[a-z]``
a range (ends in either order), ``\\x`` the byte ``x`` (also inside a class), and Redis's
corner cases: an unterminated ``[`` takes the rest of the pattern as its class, a trailing
``\\`` is a literal backslash, ranges compare bytes as signed C ``char`` values, ``[!a]`` is
a class of ``!`` and ``a`` (no negation), the empty string matches only the empty pattern
(``*`` does not match it: KEYS and SCAN special-case the lone ``*``, see
:attr:`Matcher.everything`), and a pattern whose matching would nest more than 1000 ``*``
deep never matches (Redis's guard against abusive patterns). ``nocase`` folds ASCII letters
as Redis does (not for an escaped byte inside a class).

The pattern is compiled once (cached) to one regular expression whose middle ``*`` segments
are atomic groups: each fixed-length segment is found at its leftmost place and never
retried, which is the same answer (a glob's segments have fixed lengths) in time linear in
the key for each segment, so a pattern like ``*a*a*a*a*b`` cannot stall the server.
Matching runs in C (``re``); both ``bytes`` and latin-1 ``str`` keys are accepted.

Cursor iteration (SCAN family)
------------------------------

Redis walks its hash table with a reverse-binary cursor. We iterate a **snapshot**: the first
call of an iteration (cursor 0) takes the list of the source's elements (the keyspace's keys,
a collection's members) in one call, keeps it server-side in a registry
(``server.extra["scan"]``) and answers a cursor naming the snapshot and a position in it;
each later call walks the next ``COUNT`` elements of the snapshot and returns those that are
still present (and match MATCH/TYPE), looked up at that moment. Guarantees:

* an element present from the first call to the last is returned (it is in the snapshot,
  and it is live when its turn comes);
* no element is returned twice in one full iteration (each snapshot position is walked
  once); an element added during the iteration may be missed, one removed may be missed;
* cursor 0 starts an iteration and a reply's cursor 0 ends it (the snapshot is then
  dropped); a cursor may be sent again (a retried call answers the same page, from the same
  snapshot, with the liveness of the moment);
* any cursor a client sends is answered: a non-integer is ``ERR invalid cursor`` (Redis's
  ``strtoul`` rules: sign and no leading space, below 2**64); an integer that names no live
  snapshot of this source (made up, from another key, or evicted) starts a new iteration
  from the beginning of a fresh snapshot. That keeps the first guarantee (Redis's own two
  are "every element present throughout is returned" and "an element may be returned more
  than once") and gives up the second only for that restarted iteration.

Bounds: at most :attr:`ScanRegistry.max_snapshots` live snapshots holding
:attr:`ScanRegistry.max_elements` elements in total (references, 8 bytes each); past either
the least recently used snapshot is dropped (its iteration restarts, as above). A source
that fits in one page (at most COUNT elements) is answered at once with cursor 0 and keeps
no snapshot. Cost: the first call of an iteration copies the source's element list (O(n),
one C-level copy for a collection; the keyspace's live-key scan), later calls O(COUNT).

Using it for a collection (HSCAN, SSCAN, ZSCAN), in Redis's order::

    cursor = parse_cursor(args[2])                      # ERR invalid cursor first
    value = client.db.get_typed(key, MyHash)            # WRONGTYPE
    if value is None:
        return empty_scan()                             # a missing key: [b"0", []]
    options = parse_scan_options(args, 3)               # then MATCH/COUNT syntax errors
    return scan_reply(client.server, ("hash", client.db.index, key), cursor, options,
                      snapshot=lambda: list(value.fields),
                      emit=lambda batch: [x for f in batch if (v := value.fields.get(f)) is not None
                                     for x in (f, v)],
                      whole=value.encoding() == "listpack")

``emit`` gets the batch of snapshot elements that passed MATCH and returns the reply items
for those still present (look them up in the *current* value: the key may have been
rewritten since the snapshot). ``whole=True`` answers every element at once with cursor 0
whatever the cursor, as Redis does for its compact encodings (listpack, intset).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import NOT_INTEGER, SYNTAX
from .resp import ErrorReply

if TYPE_CHECKING:
    from .app import Server

__all__ = [
    "INVALID_CURSOR",
    "Matcher",
    "ScanOptions",
    "ScanRegistry",
    "empty_scan",
    "parse_cursor",
    "parse_scan_options",
    "scan_reply",
    "stringmatch",
]

INVALID_CURSOR = "ERR invalid cursor"

T = TypeVar("T")

# -------------------------------------------------------------------- patterns

_STAR = None  # a token: None for a run of stars, else the frozenset of bytes one position takes
_MAX_NESTING = 1000  # Redis's stringmatchlen refuses to nest deeper


def _signed(b: int) -> int:
    """A byte as x86's signed C ``char`` (Redis compares range ends that way)."""
    return b - 256 if b >= 128 else b


def _lower(c: int) -> int:
    """C-locale ``tolower`` on a (signed) char value."""
    return c + 32 if 65 <= c <= 90 else c


def _bracket(pattern: bytes, i: int, nocase: bool) -> tuple[frozenset[int], int]:
    """The class ``[...]`` whose body starts at ``pattern[i]`` (after the ``[``), as
    stringmatchlen reads it: the set of bytes it takes, and the index after it."""
    n = len(pattern)
    negate = i < n and pattern[i] == 0x5E  # '^'
    if negate:
        i += 1
    escaped: set[int] = set()  # compared exactly, even with nocase
    plain: set[int] = set()
    ranges: list[tuple[int, int]] = []
    while True:
        if i < n and pattern[i] == 0x5C and n - i >= 2:  # '\\x'
            i += 1
            escaped.add(pattern[i])
        elif i < n and pattern[i] == 0x5D:  # ']'
            break
        elif i >= n:
            # Unterminated: Redis steps back onto the last byte, then past it.
            i = n - 1
            break
        elif n - i >= 3 and pattern[i + 1] == 0x2D:  # 'a-z'
            start, end = _signed(pattern[i]), _signed(pattern[i + 2])
            if start > end:
                start, end = end, start
            if nocase:
                start, end = _lower(start), _lower(end)
            ranges.append((start, end))
            i += 2
        else:
            plain.add(pattern[i])
        i += 1
    members: set[int] = set(escaped)
    for b in range(256):
        c = _signed(b)
        if nocase:
            lc = _lower(c)
            if any(_lower(_signed(p)) == lc for p in plain) or any(s <= lc <= e for s, e in ranges):
                members.add(b)
        elif b in plain or any(s <= c <= e for s, e in ranges):
            members.add(b)
    if negate:
        members = set(range(256)) - members
    return frozenset(members), i + 1


def _tokens(pattern: bytes, nocase: bool) -> list[frozenset[int] | None]:
    tokens: list[frozenset[int] | None] = []
    everything = frozenset(range(256))
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            if not tokens or tokens[-1] is not _STAR:
                tokens.append(_STAR)
            i += 1
            continue
        if c == 0x3F:  # '?'
            tokens.append(everything)
            i += 1
            continue
        if c == 0x5B:  # '['
            cls, i = _bracket(pattern, i + 1, nocase)
            tokens.append(cls)
            continue
        if c == 0x5C and n - i >= 2:  # '\\x' (then compared as a plain byte, nocase too)
            i += 1
            c = pattern[i]
        if nocase:
            lc = _lower(_signed(c))
            tokens.append(frozenset(b for b in range(256) if _lower(_signed(b)) == lc))
        else:
            tokens.append(frozenset((c,)))
        i += 1
    return tokens


def _class_regex(members: frozenset[int]) -> str:
    if len(members) == 256:
        return "[\\x00-\\xff]"
    if not members:
        return "(?!)"
    if len(members) == 1:
        return f"\\x{next(iter(members)):02x}"
    return "[" + "".join(f"\\x{b:02x}" for b in sorted(members)) + "]"


def _regex(tokens: list[frozenset[int] | None]) -> str | None:
    """One regular expression for the token list (None: the pattern never matches)."""
    stars = sum(1 for t in tokens if t is _STAR)
    if stars > _MAX_NESTING + 1 or (stars == _MAX_NESTING + 1 and tokens[-1] is not _STAR):
        # Reaching the 1001st star (other than a trailing one) nests past Redis's limit.
        return None
    segments: list[str] = [""]
    for token in tokens:
        if token is _STAR:
            segments.append("")
        else:
            segments[-1] += _class_regex(token)
    if len(segments) == 1:
        return "\\A" + segments[0] + "\\Z"
    # Leftmost place for every middle segment, atomically (never retried): linear, and the
    # same answer as backtracking, since each segment has a fixed length.
    middle = "".join(f"(?>[\\x00-\\xff]*?{s})" for s in segments[1:-1] if s)
    return "\\A" + segments[0] + middle + "[\\x00-\\xff]*" + segments[-1] + "\\Z"


class Matcher:
    """A compiled Redis glob: ``matcher(key)`` for ``bytes`` or latin-1 ``str`` keys."""

    __slots__ = ("_bytes", "_str", "everything", "pattern")

    def __init__(self, pattern: bytes, nocase: bool = False) -> None:
        self.pattern = pattern
        self.everything = pattern == b"*"
        """Whether the pattern is the lone ``*``, which KEYS and SCAN take as "no pattern"
        (even the empty key then matches; :meth:`__call__` keeps stringmatchlen's answer)."""
        source = _regex(_tokens(pattern, nocase))
        self._bytes: re.Pattern[bytes] | None = None
        self._str: re.Pattern[str] | None = None
        if source is not None:
            self._bytes = re.compile(source.encode("ascii"))
            self._str = re.compile(source)

    def __call__(self, key: bytes | str) -> bool:
        if not key:
            return not self.pattern  # stringmatchlen never enters its loop
        if type(key) is str:
            compiled_str = self._str
            return compiled_str is not None and compiled_str.match(key) is not None
        compiled = self._bytes
        return compiled is not None and compiled.match(key) is not None  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Matcher({self.pattern!r})"


@lru_cache(maxsize=512)
def _compiled(pattern: bytes, nocase: bool) -> Matcher:
    return Matcher(pattern, nocase)


def compile_pattern(pattern: bytes, nocase: bool = False) -> Matcher:
    """A (cached) :class:`Matcher` for ``pattern``."""
    return _compiled(pattern, nocase)


def stringmatch(pattern: bytes, string: bytes | str, nocase: bool = False) -> bool:
    """Redis's ``stringmatchlen(pattern, string, nocase)``."""
    return _compiled(pattern, nocase)(string)


# ---------------------------------------------------------------------- cursors


def parse_cursor(arg: bytes) -> int:
    """A client's cursor as Redis's ``parseScanCursorOrReply`` reads it (``strtoul``): an
    optional sign, decimal digits, no leading space, below 2**64 (``-1`` is 2**64-1, the empty
    string is 0); anything else is ``ERR invalid cursor``."""
    nul = arg.find(b"\x00")
    text = arg if nul < 0 else arg[:nul]  # a C string ends at its first NUL
    if not text:
        return 0
    if text[:1].isspace():
        raise ErrorReply(INVALID_CURSOR)
    body = text[1:] if text[:1] in (b"+", b"-") else text
    if not body or not body.isdigit():
        raise ErrorReply(INVALID_CURSOR)
    value = int(body)
    if value >= 1 << 64:
        raise ErrorReply(INVALID_CURSOR)
    if text[:1] == b"-" and value:
        value = (1 << 64) - value
    return value


@dataclass(slots=True)
class ScanOptions:
    """What MATCH, COUNT, TYPE and NOVALUES asked for."""

    count: int = 10
    match: Matcher | None = None
    """None: no pattern (absent, or the lone ``*``)."""
    type_name: str | None = None
    """SCAN's TYPE, lower-cased (an unknown name filters everything out, as Redis 7.2)."""
    novalues: bool = False


def parse_scan_options(
    args: list[bytes], start: int, *, allow_type: bool = False, allow_novalues: bool = False
) -> ScanOptions:
    """Parse ``[MATCH p] [COUNT n] [TYPE t] [NOVALUES]`` from ``args[start:]`` with Redis's
    errors: ``ERR syntax error`` for an unknown or incomplete option and for COUNT < 1,
    ``ERR value is not an integer or out of range`` for a non-integer COUNT. TYPE is SCAN's
    only (``allow_type``); NOVALUES HSCAN's (Redis 7.4; ``allow_novalues``)."""
    options = ScanOptions()
    i, n = start, len(args)
    while i < n:
        word = args[i].lower()
        left = n - i
        if word == b"count" and left >= 2:
            count = _parse_long(args[i + 1])
            if count < 1:
                raise ErrorReply(SYNTAX)
            options.count = count
            i += 2
        elif word == b"match" and left >= 2:
            pattern = args[i + 1]
            options.match = None if pattern == b"*" else compile_pattern(pattern)
            i += 2
        elif word == b"type" and allow_type and left >= 2:
            options.type_name = args[i + 1].decode("latin-1").lower()
            i += 2
        elif word == b"novalues" and allow_novalues:
            options.novalues = True
            i += 1
        else:
            raise ErrorReply(SYNTAX)
    return options


def _parse_long(arg: bytes) -> int:
    """Redis's ``string2ll`` (strict: no spaces, no '+', no leading zeros) as a C long."""
    if not arg or len(arg) > 20:
        raise ErrorReply(NOT_INTEGER)
    if not (arg.isdigit() or (arg[:1] == b"-" and arg[1:].isdigit())):
        raise ErrorReply(NOT_INTEGER)
    body = arg[1:] if arg[:1] == b"-" else arg
    if (len(body) > 1 and body[:1] == b"0") or arg == b"-0":
        raise ErrorReply(NOT_INTEGER)
    value = int(arg)
    if not -(1 << 63) <= value < 1 << 63:
        raise ErrorReply(NOT_INTEGER)
    return value


_POSITION_BITS = 40
_POSITION_MASK = (1 << _POSITION_BITS) - 1
_ID_LIMIT = 1 << 22  # cursors stay below 2**62: safe for clients that parse a signed long


class _Snapshot:
    __slots__ = ("elements", "source")

    def __init__(self, source: Hashable, elements: Sequence[Any]) -> None:
        self.source = source
        self.elements = elements


class ScanRegistry:
    """The live snapshots of a server's iterations (``server.extra["scan"]``), least recently
    used first; see the module docstring."""

    max_snapshots = 256
    """Live snapshots kept at most."""
    max_elements = 4_000_000
    """Elements (references) kept at most over all snapshots; the newest one is always kept."""

    def __init__(self) -> None:
        self._snapshots: OrderedDict[int, _Snapshot] = OrderedDict()
        self._next_id = 1
        self.elements = 0
        self.restarts = 0
        """Cursors that named no live snapshot (made up, foreign or evicted)."""

    def __len__(self) -> int:
        return len(self._snapshots)

    def add(self, source: Hashable, elements: Sequence[Any]) -> int:
        """Keep a snapshot; its id (never 0)."""
        snapshot_id = self._next_id
        self._next_id = snapshot_id + 1 if snapshot_id + 1 < _ID_LIMIT else 1
        self._snapshots.pop(snapshot_id, None)
        self._snapshots[snapshot_id] = _Snapshot(source, elements)
        self.elements += len(elements)
        while len(self._snapshots) > 1 and (
            len(self._snapshots) > self.max_snapshots or self.elements > self.max_elements
        ):
            self._drop(next(iter(self._snapshots)))
        return snapshot_id

    def find(self, snapshot_id: int, source: Hashable) -> _Snapshot | None:
        """The live snapshot ``snapshot_id`` of ``source`` (marked recently used), or None."""
        snapshot = self._snapshots.get(snapshot_id)
        if snapshot is None or snapshot.source != source:
            return None
        self._snapshots.move_to_end(snapshot_id)
        return snapshot

    def _drop(self, snapshot_id: int) -> None:
        snapshot = self._snapshots.pop(snapshot_id, None)
        if snapshot is not None:
            self.elements -= len(snapshot.elements)

    def drop(self, snapshot_id: int) -> None:
        """Forget a finished iteration's snapshot."""
        self._drop(snapshot_id)

    def clear(self) -> None:
        """Forget every snapshot (their iterations restart)."""
        self._snapshots.clear()
        self.elements = 0


def registry(server: Server) -> ScanRegistry:
    """The server's :class:`ScanRegistry` (created on first use)."""
    found = server.extra.get("scan")
    if found is None:
        found = server.extra["scan"] = ScanRegistry()
    return found


def empty_scan() -> list[Any]:
    """The reply for a scan of a missing key: ``[b"0", []]``."""
    return [b"0", []]


def _filtered(elements: Sequence[Any], match: Matcher | None) -> Sequence[Any]:
    if match is None:
        return elements
    return [e for e in elements if match(e)]


def scan_reply(
    server: Server,
    source: Hashable,
    cursor: int | bytes,
    options: ScanOptions,
    *,
    snapshot: Callable[[], Sequence[T]],
    emit: Callable[[Sequence[T]], list[Any]],
    whole: bool = False,
) -> list[Any]:
    """One call of a cursor iteration: ``[cursor, items]`` (see the module docstring).

    ``source`` identifies what is iterated (e.g. ``("keys", db.index)``, ``("hash", db.index,
    key)``): a cursor is honoured only for the source it was given for. ``snapshot()`` lists
    the source's elements (``bytes`` or latin-1 ``str``, what MATCH is tested on); ``emit``
    turns the batch that passed MATCH into reply items, for the elements still present.
    ``cursor`` is the parsed cursor (or the raw argument, then parsed here).
    """
    if isinstance(cursor, bytes):
        cursor = parse_cursor(cursor)
    match = options.match
    if whole:
        return [b"0", emit(_filtered(snapshot(), match))]
    scans = registry(server)
    found = None
    if cursor:
        found = scans.find(cursor >> _POSITION_BITS, source)
        position = cursor & _POSITION_MASK
        if found is None or position > len(found.elements):
            scans.restarts += 1
            found = None
    if found is None:
        elements = snapshot()
        if len(elements) <= options.count:
            return [b"0", emit(_filtered(elements, match))]
        snapshot_id = scans.add(source, elements)
        position = 0
    else:
        elements = found.elements
        snapshot_id = cursor >> _POSITION_BITS
    end = position + options.count
    batch = elements[position:end]
    if end >= len(elements):
        scans.drop(snapshot_id)
        next_cursor = 0
    else:
        next_cursor = (snapshot_id << _POSITION_BITS) | end
    return [b"%d" % next_cursor, emit(_filtered(batch, match))]

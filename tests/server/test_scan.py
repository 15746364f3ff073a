"""scan.py: Redis glob matching (against a line-by-line port of stringmatchlen and against a
real redis-server's KEYS) and the snapshot cursor iteration's guarantees."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from respclient import Err, Pair

from stratacache.server.resp import ErrorReply
from stratacache.server.scan import (
    Matcher,
    ScanOptions,
    ScanRegistry,
    parse_cursor,
    parse_scan_options,
    scan_reply,
    stringmatch,
)


def _signed(b: int) -> int:
    return b - 256 if b >= 128 else b


def _lower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def reference(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    """Redis 7's stringmatchlen_impl, transcribed (pointer arithmetic as indexes, the C
    string's NUL terminator as the byte past the end)."""
    pat = pattern + b"\x00"
    s = string + b"\x00"
    skip = [False]

    def impl(p: int, plen: int, i: int, slen: int, nesting: int) -> bool:
        if nesting > 1000:
            return False
        while plen and slen:
            c = pat[p]
            if c == 0x2A:
                while plen and pat[p + 1] == 0x2A:
                    p += 1
                    plen -= 1
                if plen == 1:
                    return True
                while slen:
                    if impl(p + 1, plen - 1, i, slen, nesting + 1):
                        return True
                    if skip[0]:
                        return False
                    i += 1
                    slen -= 1
                skip[0] = True
                return False
            if c == 0x3F:
                i += 1
                slen -= 1
            elif c == 0x5B:
                p += 1
                plen -= 1
                negate = pat[p] == 0x5E
                if negate:
                    p += 1
                    plen -= 1
                match = False
                while True:
                    if pat[p] == 0x5C and plen >= 2:
                        p += 1
                        plen -= 1
                        if pat[p] == s[i]:
                            match = True
                    elif pat[p] == 0x5D:
                        break
                    elif plen == 0:
                        p -= 1
                        plen += 1
                        break
                    elif plen >= 3 and pat[p + 1] == 0x2D:
                        start, end, ch = _signed(pat[p]), _signed(pat[p + 2]), _signed(s[i])
                        if start > end:
                            start, end = end, start
                        if nocase:
                            start, end, ch = _lower(start), _lower(end), _lower(ch)
                        p += 2
                        plen -= 2
                        if start <= ch <= end:
                            match = True
                    elif not nocase:
                        if pat[p] == s[i]:
                            match = True
                    elif _lower(_signed(pat[p])) == _lower(_signed(s[i])):
                        match = True
                    p += 1
                    plen -= 1
                if negate:
                    match = not match
                if not match:
                    return False
                i += 1
                slen -= 1
            else:
                if c == 0x5C and plen >= 2:
                    p += 1
                    plen -= 1
                if not nocase:
                    if pat[p] != s[i]:
                        return False
                elif _lower(_signed(pat[p])) != _lower(_signed(s[i])):
                    return False
                i += 1
                slen -= 1
            p += 1
            plen -= 1
            if slen == 0:
                while pat[p] == 0x2A:
                    p += 1
                    plen -= 1
                break
        return plen == 0 and slen == 0

    return impl(0, len(pattern), 0, len(string), 0)


_ALPHABET = b"ab*?[]^-\\!Az\xe9\x00"
patterns = st.lists(st.sampled_from(list(_ALPHABET)), max_size=10).map(bytes)
strings = st.lists(st.sampled_from(list(b"abAz-]^\\*?[\xe9\x00!")), max_size=8).map(bytes)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(patterns, strings, st.booleans())
def test_matcher_agrees_with_stringmatchlen(pattern: bytes, string: bytes, nocase: bool) -> None:
    assert stringmatch(pattern, string, nocase) == reference(pattern, string, nocase)
    assert stringmatch(pattern, string.decode("latin-1"), nocase) == reference(pattern, string, nocase)


@pytest.mark.parametrize(
    ("pattern", "string", "expected"),
    [
        (b"h?llo", b"hello", True),
        (b"h*llo", b"heeeello", True),
        (b"h[ae]llo", b"hallo", True),
        (b"h[^e]llo", b"hallo", True),
        (b"h[^e]llo", b"hello", False),
        (b"h[a-b]llo", b"hbllo", True),
        (b"h[b-a]llo", b"hbllo", True),  # ends in either order
        (b"h\\*llo", b"h*llo", True),
        (b"h\\*llo", b"hallo", False),
        (b"[!a]", b"!", True),  # '!' is no negation in Redis
        (b"[abc", b"c", True),  # unterminated: the rest is the class
        (b"ab\\", b"ab\\", True),  # trailing backslash: a literal
        (b"*", b"", False),  # stringmatchlen's answer; KEYS/SCAN special-case "*"
        (b"", b"", True),
        (b"a*", b"a", True),
    ],
)
def test_matcher_corner_cases(pattern: bytes, string: bytes, expected: bool) -> None:
    assert stringmatch(pattern, string) is expected
    assert reference(pattern, string) is expected


def test_abusive_pattern_is_linear() -> None:
    # Exponential for a backtracking matcher; the atomic segments make it linear.
    key = b"a" * 5000
    assert not stringmatch(b"*a*a*a*a*a*a*a*a*a*a*b", key)
    assert stringmatch(b"*a*a*a*a*a*a*a*a*a*a*", key)


def test_nesting_limit_as_redis() -> None:
    key = b"x" * 1200
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)  # the reference recurses once per star, as the C code does
    try:
        _check_nesting(key)
    finally:
        sys.setrecursionlimit(limit)


def _check_nesting(key: bytes) -> None:
    assert stringmatch(b"*x" * 1000, key) == reference(b"*x" * 1000, key) is True
    assert stringmatch(b"*x" * 1001, key) == reference(b"*x" * 1001, key) is False
    assert stringmatch(b"x*" * 1001, key) == reference(b"x*" * 1001, key) is True


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(patterns, min_size=1, max_size=4))
def test_keys_patterns_match_real_redis(pair: Pair, pats: list[bytes]) -> None:
    keys = [b"", b"a", b"b", b"ab", b"A", b"a-b", b"\\", b"*", b"[", b"]", b"^", b"\xe9", b"a\x00b", b"!a"]
    for key in keys:
        pair.check("SET", key, b"v")
    for pattern in pats:
        pair.check_sorted("KEYS", pattern)


# ------------------------------------------------------------------- cursors


def test_parse_cursor_as_strtoul() -> None:
    assert parse_cursor(b"0") == 0
    assert parse_cursor(b"") == 0
    assert parse_cursor(b"+7") == 7
    assert parse_cursor(b"-1") == 2**64 - 1
    assert parse_cursor(b"18446744073709551615") == 2**64 - 1
    assert parse_cursor(b"5\x00junk") == 5
    for bad in (b"x", b" 1", b"1 ", b"18446744073709551616", b"+", b"-", b"0x10", b"1.5"):
        with pytest.raises(ErrorReply, match="ERR invalid cursor"):
            parse_cursor(bad)


def test_scan_cursor_errors_match_redis(pair: Pair) -> None:
    for cursor in ("x", " 1", "1 ", "18446744073709551616", "+", "-", "0x10", "1.5"):
        assert pair.check("SCAN", cursor) == Err("ERR invalid cursor")
    pair.check("SET", "k", "v")
    for cursor in ("", "+0", "-0", "0"):
        pair.check("SCAN", cursor)


def test_scan_option_errors_match_redis(pair: Pair) -> None:
    pair.check("SET", "k", "v")
    for args in (
        ("COUNT",),
        ("COUNT", "0"),
        ("COUNT", "-1"),
        ("COUNT", "x"),
        ("COUNT", "1.5"),
        ("COUNT", "99999999999999999999"),
        ("MATCH",),
        ("TYPE",),
        ("NOVALUES",),
        ("BOGUS", "1"),
    ):
        pair.check("SCAN", "0", *args)
    assert pair.check("SCAN", "0", "COUNT", "5", "MATCH", "k", "TYPE", "STRING") == [b"0", [b"k"]]
    assert pair.check("SCAN", "0", "type", "nosuchtype") == [b"0", []]


def test_option_parser() -> None:
    options = parse_scan_options([b"x", b"MATCH", b"a*", b"count", b"3"], 1)
    assert options.count == 3
    assert options.match is not None
    assert options.match(b"ab")
    assert parse_scan_options([b"MATCH", b"*"], 0).match is None
    with pytest.raises(ErrorReply, match="ERR syntax error"):
        parse_scan_options([b"TYPE", b"string"], 0)  # TYPE is SCAN's only
    assert parse_scan_options([b"NOVALUES"], 0, allow_novalues=True).novalues


class _Source:
    """A set that changes while it is scanned, with the emit/snapshot pair of a collection."""

    def __init__(self, members: set[bytes]) -> None:
        self.members = members

    def call(self, server: Any, cursor: int | bytes, options: ScanOptions) -> tuple[int, list[bytes]]:
        reply = scan_reply(
            server,
            ("set", 0, "s"),
            cursor,
            options,
            snapshot=lambda: list(self.members),
            emit=lambda batch: [m for m in batch if m in self.members],
        )
        return int(reply[0]), reply[1]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.sets(st.integers(0, 200), max_size=120),
    st.lists(st.tuples(st.booleans(), st.integers(0, 260)), max_size=60),
    st.integers(1, 15),
    st.booleans(),
)
def test_full_iteration_guarantees(
    initial: set[int], changes: list[tuple[bool, int]], count: int, match: bool
) -> None:
    server = SimpleNamespace(extra={})
    source = _Source({b"%d" % n for n in initial})
    options = ScanOptions(count=count, match=Matcher(b"*1*") if match else None)
    present_throughout = set(source.members)
    seen: list[bytes] = []
    cursor, items = source.call(server, 0, options)
    seen += items
    step = 0
    while cursor:
        if step < len(changes):
            add, n = changes[step]
            member = b"%d" % n
            if add:
                source.members.add(member)
            else:
                source.members.discard(member)
                present_throughout.discard(member)
        step += 1
        cursor, items = source.call(server, cursor, options)
        seen += items
    wanted = {m for m in present_throughout if not match or b"1" in m}
    assert wanted <= set(seen)
    assert len(seen) == len(set(seen))
    assert server.extra["scan"].elements == 0  # the finished snapshot is dropped


def test_unknown_or_evicted_cursor_restarts() -> None:
    server = SimpleNamespace(extra={})
    source = _Source({b"%d" % n for n in range(50)})
    options = ScanOptions(count=10)
    # A made-up cursor: a full iteration from a fresh snapshot.
    cursor, items = source.call(server, 12345, options)
    seen = list(items)
    while cursor:
        cursor, items = source.call(server, cursor, options)
        seen += items
    assert sorted(seen) == sorted(source.members)
    # Eviction: more snapshots than allowed drops the oldest; its cursor then restarts.
    registry: ScanRegistry = server.extra["scan"]
    registry.max_snapshots = 2
    first, _ = source.call(server, 0, options)
    source.call(server, 0, options)
    source.call(server, 0, options)
    assert len(registry) == 2
    assert registry.find(first >> 40, ("set", 0, "s")) is None
    restarts = registry.restarts
    cursor, items = source.call(server, first, options)
    assert registry.restarts == restarts + 1
    assert len(items) == 10
    assert cursor
    # A cursor sent again answers the same page.
    assert source.call(server, cursor, options) == source.call(server, cursor, options)
    # A cursor for another source is not honoured.
    other = scan_reply(server, ("set", 0, "other"), cursor, options, snapshot=lambda: [b"z"], emit=list)
    assert other == [b"0", [b"z"]]


def test_memory_bound_drops_oldest() -> None:
    server = SimpleNamespace(extra={})
    source = _Source({b"%d" % n for n in range(100)})
    options = ScanOptions(count=10)
    source.call(server, 0, options)
    registry: ScanRegistry = server.extra["scan"]
    registry.max_elements = 250
    for _ in range(5):
        source.call(server, 0, options)
    assert registry.elements <= 250
    assert len(registry) == 2


def test_whole_answers_everything_at_once() -> None:
    server = SimpleNamespace(extra={})
    reply = scan_reply(
        server,
        "src",
        b"77",
        ScanOptions(count=1, match=Matcher(b"a*")),
        snapshot=lambda: [b"ab", b"b", b"ac"],
        emit=list,
        whole=True,
    )
    assert reply == [b"0", [b"ab", b"ac"]]

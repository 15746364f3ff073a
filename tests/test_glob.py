"""Redis-style glob matching: one table per syntax element, references, escaping, no blow-up."""

from __future__ import annotations

import fnmatch
import time
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratacache.core.glob import compile_glob, escape_glob, glob_match

# --------------------------------------------------------------------------- tables

LITERAL = [
    ("", "", True),
    ("", "a", False),
    ("abc", "abc", True),
    ("abc", "abcd", False),
    ("abc", "ab", False),
    ("abc", "ABC", False),
    ("a-b^c!d", "a-b^c!d", True),  # "-", "^", "!" and "]" are plain outside a class
    ("a]b", "a]b", True),
]

STAR = [
    ("*", "", True),
    ("*", "anything at all", True),
    ("**", "", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ba", False),
    ("*a", "ba", True),
    ("*a", "ab", False),
    ("a*b", "ab", True),
    ("a*b", "axxb", True),
    ("a*b", "axxbx", False),
    ("a**b", "ab", True),
    ("*:*", "user:1", True),
    ("*:*", "user1", False),
    ("user:*", "user:", True),
    ("user:*", "user", False),
    ("*a*b*c*", "xxaxxbxxcxx", True),
    ("*a*b*c*", "xxcxxbxxaxx", False),
    ("a*a*a", "aa", False),
    ("a*a*a", "aaa", True),
]

QUESTION = [
    ("?", "", False),
    ("?", "a", True),
    ("?", "ab", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("??*", "a", False),
    ("??*", "ab", True),
    ("*?", "", False),
    ("*?", "x", True),
]

CLASS = [
    ("[abc]", "a", True),
    ("[abc]", "c", True),
    ("[abc]", "d", False),
    ("[abc]", "", False),
    ("[abc]", "ab", False),
    ("x[ab]y", "xby", True),
    ("x[ab]y", "xcy", False),
    ("[a-c]", "b", True),
    ("[a-c]", "d", False),
    ("[a-c]", "-", False),
    ("[0-9]x", "5x", True),
    ("[a-cx]", "x", True),
    ("[a-cx]", "w", False),
    ("[a-]", "-", True),  # a trailing "-" is literal
    ("[a-]", "b", False),
    ("[-a]", "-", True),  # so is a leading one
    ("*[0-9]", "abc5", True),
    ("*[0-9]", "abc", False),
]

REVERSED_RANGE = [
    ("[c-a]", "a", True),
    ("[c-a]", "b", True),
    ("[c-a]", "c", True),
    ("[c-a]", "d", False),
    ("[9-0]", "5", True),
]

NEGATED = [
    ("[^a]", "b", True),
    ("[^a]", "a", False),
    ("[!a]", "b", True),
    ("[!a]", "a", False),
    ("[^a-c]", "d", True),
    ("[^a-c]", "b", False),
    ("[^a]", "", False),  # a negated class still needs one character
    ("[^a]", "bb", False),
    ("a[^/]*", "a/bc", False),
    ("a[^/]", "ab", True),
]

BRACKET_EDGES = [
    ("[]]", "]", True),  # "]" first in a class is a member, not the end
    ("[]]", "a", False),
    ("[]a]", "a", True),
    ("[]a]", "]", True),
    ("[^]]", "]", False),
    ("[^]]", "a", True),
    ("[", "[", True),  # an unterminated "[" is a literal
    ("[", "", False),
    ("[abc", "[abc", True),
    ("[abc", "a", False),
    ("a[", "a[", True),
    ("[]", "[]", True),
    ("[]", "]", False),
    ("[^", "[^", True),
    ("[a-z", "[a-z", True),
    ("[a-z", "b", False),
]

ESCAPES = [
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("\\*", "", False),
    ("\\?", "?", True),
    ("\\?", "a", False),
    ("\\[a]", "[a]", True),
    ("\\[a]", "a", False),
    ("\\\\", "\\", True),
    ("\\\\", "\\\\", False),
    ("a\\b", "ab", True),  # an escaped ordinary character is itself
    ("\\*\\*", "**", True),
    ("*\\*", "abc*", True),
    ("*\\*", "abc", False),
    ("user\\*:*", "user*:1", True),
    ("user\\*:*", "userx:1", False),
    ("[\\]]", "]", True),
    ("[\\]]", "\\", False),
    ("[\\-a]", "-", True),
    ("[\\-a]", "b", False),
    ("[a\\-z]", "-", True),  # an escaped "-" is a member, not a range
    ("[a\\-z]", "m", False),
    ("[\\^a]", "^", True),  # an escaped "^" does not negate
    ("[\\^a]", "b", False),
]

TRAILING_BACKSLASH = [
    ("\\", "\\", True),
    ("\\", "", False),
    ("a\\", "a\\", True),
    ("a\\", "a", False),
    ("*\\", "xyz\\", True),
    ("*\\", "xyz", False),
]

UNICODE = [
    ("caf?", "café", True),
    ("*é", "café", True),
    ("*é", "cafe", False),
    ("[à-ÿ]", "é", True),
    ("[à-ÿ]", "e", False),
    ("?", "日", True),
    ("日*", "日本語", True),
    ("[日本]", "本", True),
    ("[^日本]", "本", False),
    ("?", "🎉", True),  # one code point
    ("??", "🎉", False),
    ("\\🎉*", "🎉🎉", True),
]

TABLE = [
    pytest.param(pattern, key, expected, id=f"{group}:{pattern!r}~{key!r}")
    for group, cases in [
        ("literal", LITERAL),
        ("star", STAR),
        ("question", QUESTION),
        ("class", CLASS),
        ("reversed", REVERSED_RANGE),
        ("negated", NEGATED),
        ("bracket", BRACKET_EDGES),
        ("escape", ESCAPES),
        ("trailing-backslash", TRAILING_BACKSLASH),
        ("unicode", UNICODE),
    ]
    for pattern, key, expected in cases
]


@pytest.mark.parametrize(("pattern", "key", "expected"), TABLE)
def test_glob_table(pattern: str, key: str, expected: bool) -> None:
    assert glob_match(pattern, key) is expected
    assert compile_glob(pattern)(key) is expected


@pytest.mark.parametrize(("pattern", "key", "expected"), TABLE)
def test_reference_agrees_with_table(pattern: str, key: str, expected: bool) -> None:
    # The reference below is what the property tests trust; check it against the table too.
    assert ref_match(pattern, key) is expected


def test_compile_glob_is_cached_and_reusable() -> None:
    match = compile_glob("user:[0-9]*")
    assert compile_glob("user:[0-9]*") is match
    assert [match(k) for k in ("user:1", "user:x", "user:12a", "users:1")] == [True, False, True, False]


# ------------------------------------------------------------ reference matchers


def _ref_class(pattern: str) -> tuple[frozenset[str], list[tuple[str, str]], bool, str] | None:
    """Parse the class at the start of ``pattern`` (which begins with "[")."""
    j, n = 1, len(pattern)
    negate = pattern[j : j + 1] in ("^", "!")
    j += negate
    start = j
    singles: set[str] = set()
    ranges: list[tuple[str, str]] = []
    while j < n:
        if pattern[j] == "]" and j > start:
            return frozenset(singles), ranges, negate, pattern[j + 1 :]
        if pattern[j] == "\\" and j + 1 < n:
            lo, j = pattern[j + 1], j + 2
        else:
            lo, j = pattern[j], j + 1
        if j + 1 < n and pattern[j] == "-" and pattern[j + 1] != "]":
            if pattern[j + 1] == "\\" and j + 2 < n:
                hi, j = pattern[j + 2], j + 3
            else:
                hi, j = pattern[j + 1], j + 2
            ranges.append((min(lo, hi), max(lo, hi)))
        else:
            singles.add(lo)
    return None


@lru_cache(maxsize=100_000)
def ref_match(pattern: str, key: str) -> bool:
    """A direct recursive (exponential, memoised) reading of the syntax; for short inputs only."""
    if not pattern:
        return not key
    c = pattern[0]
    if c == "*":
        return any(ref_match(pattern[1:], key[i:]) for i in range(len(key) + 1))
    if not key:
        return False
    if c == "?":
        return ref_match(pattern[1:], key[1:])
    if c == "\\" and len(pattern) > 1:
        return key[0] == pattern[1] and ref_match(pattern[2:], key[1:])
    if c == "[":
        parsed = _ref_class(pattern)
        if parsed is not None:
            singles, ranges, negate, rest = parsed
            hit = key[0] in singles or any(lo <= key[0] <= hi for lo, hi in ranges)
            return hit != negate and ref_match(rest, key[1:])
    return key[0] == c and ref_match(pattern[1:], key[1:])


# ------------------------------------------------------------------- properties

# Simple pattern pieces with the same meaning in fnmatch (after "[^" -> "[!").
SIMPLE_PIECES = st.sampled_from(
    ["a", "b", "c", "*", "?", "[ab]", "[a-b]", "[b-c]", "[^a]", "[!b]", "[^a-b]", "[c]"]
)
SHORT_KEYS = st.text(alphabet="abcd", max_size=8)


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(SIMPLE_PIECES, max_size=7), key=SHORT_KEYS)
def test_simple_patterns_agree_with_fnmatch(pieces: list[str], key: str) -> None:
    pattern = "".join(pieces)
    expected = fnmatch.fnmatchcase(key, pattern.replace("[^", "[!"))
    assert glob_match(pattern, key) is expected
    assert ref_match(pattern, key) is expected


@settings(max_examples=600, deadline=None)
@given(
    pattern=st.text(alphabet="ab*?[]^!-\\", max_size=9),
    key=st.text(alphabet="ab[]^!-\\*?", max_size=7),
)
def test_any_pattern_agrees_with_reference(pattern: str, key: str) -> None:
    # Metacharacters everywhere: escapes, unterminated classes, "]" first, ranges both ways.
    assert glob_match(pattern, key) is ref_match(pattern, key)


@settings(max_examples=300, deadline=None)
@given(pattern=st.text(alphabet="a*?", max_size=12), key=st.text(alphabet="ab", max_size=12))
def test_star_heavy_patterns_agree_with_reference(pattern: str, key: str) -> None:
    assert glob_match(pattern, key) is ref_match(pattern, key)


META_HEAVY_TEXT = st.text(alphabet=st.sampled_from("ab*?[]^!-\\é日"), max_size=10) | st.text(max_size=10)


@settings(max_examples=300, deadline=None)
@given(text=META_HEAVY_TEXT, other=META_HEAVY_TEXT)
def test_escape_glob_matches_exactly_itself(text: str, other: str) -> None:
    escaped = escape_glob(text)
    assert glob_match(escaped, text)
    assert glob_match(escaped, other) is (other == text)
    # An escaped prefix followed by a real star: the "prefix:*" fast path.
    assert glob_match(escaped + "*", text + other)
    assert glob_match(escaped + "*", other) is other.startswith(text)
    # And through the general matcher (a "?" defeats the fast paths).
    assert glob_match("?" + escaped, "x" + text)
    assert glob_match("?" + escaped, "x" + other) is (other == text)


@pytest.mark.parametrize(
    "text", ["", "*", "?", "[", "]", "\\", "[a-z]", "a\\*b", "user:*", "[^x]", "\\\\*", "日本*"]
)
def test_escape_glob_examples(text: str) -> None:
    escaped = escape_glob(text)
    assert glob_match(escaped, text)
    assert not glob_match(escaped, text + "x")
    assert not glob_match(escaped, "x" + text)


# ------------------------------------------------------------------ pathological


@pytest.mark.parametrize(
    ("pattern", "key"),
    [
        ("a*" * 30 + "b", "a" * 5000),
        ("*a" * 30 + "b", "a" * 5000),
        ("*" + "a" * 30 + "b", "a" * 5000),
        ("?*" * 40 + "b", "a" * 5000),
        ("[a]*" * 30 + "b", "a" * 5000),
    ],
    ids=["a-star", "star-a", "star-run", "any-star", "class-star"],
)
def test_pathological_patterns_do_not_blow_up(pattern: str, key: str) -> None:
    started = time.perf_counter()
    assert glob_match(pattern, key) is False
    assert glob_match(pattern, key + "b") is True
    # A hang check, not a benchmark: backtracking would take astronomically long.
    assert time.perf_counter() - started < 2.0

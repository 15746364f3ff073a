"""Redis-style glob patterns matched in O(len(key) * len(pattern)) time, never exponential.

Supported syntax (as Redis ``KEYS``/``SCAN MATCH``): ``*`` any run of characters, ``?`` one
character, ``[abc]`` / ``[a-z]`` a class, ``[^a]`` / ``[!a]`` a negated class, ``\\x`` the
character ``x`` literally.

Why not ``fnmatch``/``re``: a regex built from ``a*a*a*a*b`` backtracks exponentially
against long keys. This matcher compiles the pattern to a list of tokens and runs the
classic greedy "remember the last star" scan: when a literal run fails after a ``*``, only
the most recent star is retried one character further on. That is correct for globs
because a later star can absorb anything an earlier one could, and it bounds the work by
``len(key) * len(pattern)``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

__all__ = ["compile_glob", "escape_glob", "glob_match"]

# Token kinds. A token is (kind, payload).
_STAR, _ANY, _LIT, _CLASS = 0, 1, 2, 3
_Token = tuple[int, object]


def _parse(pattern: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            # Collapse runs of stars: "**" matches what "*" matches.
            if not tokens or tokens[-1][0] != _STAR:
                tokens.append((_STAR, None))
            i += 1
        elif c == "?":
            tokens.append((_ANY, None))
            i += 1
        elif c == "\\" and i + 1 < n:
            tokens.append((_LIT, pattern[i + 1]))
            i += 2
        elif c == "[":
            parsed = _parse_class(pattern, i + 1)
            if parsed is None:
                # An unterminated "[" is a literal, as in Redis.
                tokens.append((_LIT, c))
                i += 1
            else:
                cls, i = parsed
                tokens.append((_CLASS, cls))
        else:
            tokens.append((_LIT, c))
            i += 1
    return tokens


def _parse_class(pattern: str, i: int) -> tuple[tuple[bool, tuple[tuple[str, str], ...]], int] | None:
    n = len(pattern)
    negate = False
    if i < n and pattern[i] in "^!":
        negate = True
        i += 1
    ranges: list[tuple[str, str]] = []
    first = True
    while i < n:
        c = pattern[i]
        if c == "]" and not first:
            return (negate, tuple(ranges)), i + 1
        first = False
        if c == "\\" and i + 1 < n:
            c = pattern[i + 1]
            i += 1
        if i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            hi = pattern[i + 2]
            if hi == "\\" and i + 3 < n:
                hi = pattern[i + 3]
                i += 1
            lo, hi = (c, hi) if c <= hi else (hi, c)
            ranges.append((lo, hi))
            i += 3
        else:
            ranges.append((c, c))
            i += 1
    return None


def _one(token: _Token, ch: str) -> bool:
    kind, payload = token
    if kind == _ANY:
        return True
    if kind == _LIT:
        return payload == ch
    negate: bool
    ranges: tuple[tuple[str, str], ...]
    negate, ranges = payload  # type: ignore[misc]
    hit = any(lo <= ch <= hi for lo, hi in ranges)
    return hit is not negate


def _match_tokens(tokens: list[_Token], key: str) -> bool:
    t = k = 0
    nt, nk = len(tokens), len(key)
    star_t = -1  # index of the token after the last star seen
    star_k = 0  # key position that star currently extends to
    while k < nk:
        if t < nt:
            kind = tokens[t][0]
            if kind == _STAR:
                star_t = t + 1
                star_k = k
                t += 1
                continue
            if _one(tokens[t], key[k]):
                t += 1
                k += 1
                continue
        if star_t >= 0:
            # Let the last star swallow one more character and retry from there.
            star_k += 1
            k = star_k
            t = star_t
            continue
        return False
    while t < nt and tokens[t][0] == _STAR:
        t += 1
    return t == nt


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Callable[[str], bool]:
    """Compile ``pattern`` into a predicate ``key -> bool``; cached for repeated patterns."""
    tokens = _parse(pattern)
    if all(kind == _LIT for kind, _ in tokens):
        literal = "".join(str(p) for _, p in tokens)
        return literal.__eq__
    if tokens and tokens[-1][0] == _STAR and all(kind == _LIT for kind, _ in tokens[:-1]):
        # The commonest case by far, "prefix:*": a plain startswith.
        prefix = "".join(str(p) for _, p in tokens[:-1])
        return lambda key: key.startswith(prefix)
    return lambda key: _match_tokens(tokens, key)


def glob_match(pattern: str, key: str) -> bool:
    """Return True when ``key`` matches the Redis-style glob ``pattern``."""
    return compile_glob(pattern)(key)


def escape_glob(text: str) -> str:
    """Escape every glob metacharacter in ``text`` so that it matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)

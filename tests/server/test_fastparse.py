"""The hot path's request parser (fastparse.BatchParser over the compiled parse_requests)
against the pure RequestParser: the same commands and the same errors for any stream,
however it is cut into reads."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratacache.server.fastparse import PENDING_MAX, BatchParser, _speedups, make_batch_parser
from stratacache.server.resp import ProtocolViolation, RequestParser, encode_command

pytestmark = pytest.mark.skipif(_speedups is None, reason="the compiled module is not built")


def _run(parser: Any, pieces: list[bytes], lazy: bool = False) -> list[Any]:
    """Everything the parser yields, reading each piece as one read; an error ends it.
    ``lazy``: take one command per read (as a paused connection does), the rest at the end."""
    seen: list[Any] = []
    for i, piece in enumerate(pieces):
        parser.feed(piece)
        while True:
            if lazy and i < len(pieces) - 1 and seen and seen[-1] is not None:
                try:
                    args = parser.next()
                except ProtocolViolation as exc:
                    seen.append(("error", exc.text))
                    return seen
                if args is not None:
                    seen.append(args)
                break
            try:
                args = parser.next()
            except ProtocolViolation as exc:
                seen.append(("error", exc.text))
                return seen
            if args is None:
                break
            seen.append(args)
    return seen


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)] or [b""]


def _same(
    data: bytes, cuts: list[int], max_bulk_len: int = 512 * 1024 * 1024, lazy: bool = False
) -> list[Any]:
    pieces = _cut(data, cuts)
    expected = _run(RequestParser(max_bulk_len), pieces)
    got = _run(BatchParser(_speedups.parse_requests, max_bulk_len), pieces, lazy)
    assert got == expected
    return got


_arg = st.binary(max_size=20) | st.sampled_from([b"GET", b"SET", b"\r\n", b"k\r\nx"])
_command = st.lists(_arg, min_size=1, max_size=4).map(lambda args: encode_command(*args))
# Fragments that break the protocol or the canonical form, limits, and inline requests.
_junk = st.sampled_from(
    [
        b"*1\r\n+PING\r\n",
        b"*2\r\n$3\r\nGETxx$1\r\na\r\n",
        b"*1\r\n:1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*1\r\n$-1\r\n",
        b"*01\r\n$4\r\nPING\r\n",
        b"*1\r\n$04\r\nPING\r\n",
        b"*1\r\n*1\r\n$1\r\na\r\n",
        b"PING\r\n",
        b"SET a 'b c'\n",
        b"\r\n",
        b"*x\r\n",
        b"*1\r\n$x\r\n",
        b"*1\r\n$4\r\nPI",
        b"*1\r\n$00\r\n\r\n",
        b"*1\r\n$+1\r\na\r\n",
        b"*1\r\n$1\r\na\rx",
        b"*1\r\n$1\r\n",
        b"*2\r",
        b"*1048577\r\n",
        b"*1\r\n$99999999999999999999\r\n",
        b"*1\r\n$0\r\n\r\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_command | _junk, max_size=8), st.lists(st.integers(min_value=0), max_size=6), st.booleans())
def test_same_commands_and_errors_as_the_pure_parser(parts: list[bytes], cuts: list[int], lazy: bool) -> None:
    _same(b"".join(parts), cuts, lazy=lazy)


def test_whole_commands_take_the_checked_path() -> None:
    parser = BatchParser(_speedups.parse_requests)
    parser.feed(encode_command("SET", "k", "v") + encode_command("GET", "k"))
    assert parser.ready  # checked and queued at feed time, not left to the pure parser
    assert parser.next() == [b"SET", b"k", b"v"]
    assert parser.next() == [b"GET", b"k"]
    assert parser.next() is None


def test_junk_after_a_bulk_is_the_pure_parsers_error() -> None:
    assert _same(b"*1\r\n$4\r\nPINGxx", []) == [
        ("error", "Protocol error: expected CRLF after bulk argument")
    ]


def test_bulk_over_the_limit_is_refused_as_by_the_pure_parser() -> None:
    got = _same(encode_command("SET", "k", "x" * 100), [], max_bulk_len=50)
    assert got == [("error", "Protocol error: invalid bulk length")]


def test_a_long_command_in_many_reads() -> None:
    data = encode_command("SET", "k", b"x" * (3 * PENDING_MAX)) + encode_command("GET", "k")
    _same(data, list(range(0, len(data), 1000)))


def test_back_to_the_checked_path_after_an_inline_request() -> None:
    parser = BatchParser(_speedups.parse_requests)
    assert _run(parser, [b"PING\r\n"]) == [[b"PING"]]
    parser.feed(encode_command("GET", "k"))
    assert parser.ready == [[b"GET", b"k"]]


def test_the_server_uses_the_compiled_parser_when_built() -> None:
    parser = make_batch_parser()
    assert isinstance(parser, BatchParser)
    parser.feed(encode_command("GET", "k") + b"*1\r\n$4\r\nPI")
    assert parser.ready == [[b"GET", b"k"]]
    assert parser.next() == [b"GET", b"k"]
    assert parser.next() is None
    parser.feed(b"NG\r\n")
    assert parser.next() == [b"PING"]


def test_commands_parsed_before_a_reset_are_held_to_the_unauthenticated_limits() -> None:
    big = encode_command(*["x"] * 11)
    data = encode_command("RESET") + encode_command("PING") + big + encode_command("PING")
    authenticated = True
    pure = RequestParser(auth_required=lambda: not authenticated)
    parser = BatchParser(_speedups.parse_requests, auth_required=lambda: not authenticated)
    results = []
    for p in (pure, parser):
        authenticated = True
        p.feed(data)
        seen: list[Any] = [p.next()]  # RESET: the client must AUTH again
        authenticated = False
        if p is parser:
            parser.lost_authentication()
        try:
            while (args := p.next()) is not None:
                seen.append(args)
        except ProtocolViolation as exc:
            seen.append(exc.text)
        results.append(seen)
    assert results[0] == [[b"RESET"], [b"PING"], "Protocol error: unauthenticated multibulk length"]
    assert results[1] == results[0]


def test_a_command_of_many_arguments_goes_to_the_pure_parser() -> None:
    # The compiled parser allocates a command's list from its header: it takes at most 1024
    # arguments, so a header alone cannot make it allocate much.
    data = encode_command("DEL", *[f"k{i}" for i in range(1100)]) + encode_command("GET", "k")
    assert len(_same(data, [7, 5000])) == 2
    parser = BatchParser(_speedups.parse_requests)
    parser.feed(b"*1000000\r\n")
    assert parser._pure_mode

"""The request parsers: the pure one and the hiredis accelerator give identical results
(commands, errors, what stays buffered) for any stream cut into any reads."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratacache.server.resp import (
    HiredisRequestParser,
    IncompleteCommand,
    ProtocolViolation,
    RequestParser,
    encode_command,
    make_parser,
    split_inline,
)

Parser = RequestParser | HiredisRequestParser


def run(
    make: Callable[[int, Callable[[], bool] | None], Parser],
    chunks: Sequence[bytes],
    *,
    max_bulk_len: int = 512 * 1024 * 1024,
    password: bool = False,
) -> list[Any]:
    """Feed ``chunks`` one by one, taking every command after each (as a connection does);
    the commands, then the error text or what stayed buffered. With ``password``, the
    client is unauthenticated until a command named AUTH comes out (as the server does)."""
    state = {"auth": password}
    parser = make(max_bulk_len, (lambda: state["auth"]) if password else None)
    out: list[Any] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (args := parser.next()) is not None:
                out.append(args)
                if args and args[0].lower() == b"auth":
                    state["auth"] = False
    except ProtocolViolation as exc:
        out.append(("error", exc.text))
        return out
    out.append(("buffered", parser.buffered))
    return out


def pure(max_bulk_len: int, auth: Callable[[], bool] | None) -> Parser:
    return RequestParser(max_bulk_len, auth)


def fast(max_bulk_len: int, auth: Callable[[], bool] | None) -> Parser:
    parser = make_parser(max_bulk_len, auth)
    assert isinstance(parser, HiredisRequestParser)
    return parser


# ----------------------------------------------------------------------------- streams

arg = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"GET", b"SET", b"AUTH", b"PING", b"\r\n", b"$3\r\n", b"*1\r\n", b"\x00"]),
    st.binary(min_size=20, max_size=40),
)
command = st.lists(arg, min_size=1, max_size=6).map(lambda args: encode_command(*args))
word = st.sampled_from([b"PING", b"GET", b"a", b"'q'", b'"x\\x41\\n"', b'"unbalanced', b"\t", b" "])
inline = st.lists(word, max_size=5).map(lambda words: b" ".join(words) + b"\r\n")


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A valid command with one byte changed, inserted or removed, or cut short."""
    data = bytearray(draw(command))
    where = draw(st.integers(0, len(data) - 1))
    how = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
    byte = draw(st.sampled_from([b"\r", b"\n", b"$", b"*", b"-", b"0", b"9", b"+", b"\x00", b"x"]))
    if how == "replace":
        data[where : where + 1] = byte
    elif how == "insert":
        data[where:where] = byte
    elif how == "delete":
        del data[where]
    else:
        del data[where:]
    return bytes(data)


header = st.sampled_from(
    [b"*0\r\n", b"*-1\r\n", b"*11\r\n", b"*1\r\n$16385\r\n", b"*2147483648\r\n", b"*01\r\n", b"$1\r\n"]
)
piece = st.one_of(command, command, inline, near_valid(), header, st.binary(max_size=20))
stream = st.lists(piece, max_size=6).map(b"".join)
# Without inline requests nor huge headers, which send a client to the pure parser for good:
# the streams where hiredis does the work until something breaks.
multibulk_stream = st.lists(st.one_of(command, command, command, near_valid()), max_size=8).map(b"".join)


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=6))))
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def every_cut(data: bytes, chunks: list[bytes]) -> list[list[bytes]]:
    return [[data], [data[i : i + 1] for i in range(len(data))], chunks]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    raw=stream,
    trailing=st.binary(max_size=6),
    max_bulk_len=st.sampled_from([8, 512 * 1024 * 1024]),
    password=st.booleans(),
)
def test_hiredis_parser_matches_the_pure_one(
    data: st.DataObject, raw: bytes, trailing: bytes, max_bulk_len: int, password: bool
) -> None:
    raw += trailing
    chunks = data.draw(cuts(raw))
    for cut in every_cut(raw, chunks):
        expected = run(pure, cut, max_bulk_len=max_bulk_len, password=password)
        assert run(fast, cut, max_bulk_len=max_bulk_len, password=password) == expected, cut


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    raw=multibulk_stream,
    max_bulk_len=st.sampled_from([8, 512 * 1024 * 1024]),
    password=st.booleans(),
)
def test_hiredis_parser_matches_on_multibulk_streams(
    data: st.DataObject, raw: bytes, max_bulk_len: int, password: bool
) -> None:
    for cut in every_cut(raw, data.draw(cuts(raw))):
        expected = run(pure, cut, max_bulk_len=max_bulk_len, password=password)
        assert run(fast, cut, max_bulk_len=max_bulk_len, password=password) == expected, cut


class CountingReader:
    """hiredis's reader, counting the commands it hands out."""

    commands = 0

    def __init__(self) -> None:
        import hiredis

        self.reader = hiredis.Reader()

    def feed(self, data: bytes) -> None:
        self.reader.feed(data)

    def gets(self) -> Any:
        result = self.reader.gets()
        if type(result) is list:
            CountingReader.commands += 1
        return result


@settings(max_examples=100, deadline=None)
@given(args=st.lists(st.lists(arg, min_size=1, max_size=6), min_size=1, max_size=6), data=st.data())
def test_valid_commands_come_out_whole_however_cut(args: list[list[bytes]], data: st.DataObject) -> None:
    raw = b"".join(encode_command(*a) for a in args)
    for cut in every_cut(raw, data.draw(cuts(raw))):
        assert run(fast, cut) == [*args, ("buffered", 0)]
        assert run(pure, cut) == [*args, ("buffered", 0)]
    # Fed whole, every command comes from hiredis.
    before = CountingReader.commands
    counted = run(lambda m, a: HiredisRequestParser(m, a, reader_class=CountingReader), [raw])
    assert counted == [*args, ("buffered", 0)]
    assert CountingReader.commands - before == len(args)


@pytest.mark.parametrize("header", [b"*2000000000", b"*1\r\n*2000000000", b"*1\r\n~2000000000"])
def test_a_huge_aggregate_header_costs_hiredis_nothing(header: bytes) -> None:
    raw = header + b"\r\n$1\r\na\r\n"
    started = time.perf_counter()
    result = run(fast, [raw])
    assert time.perf_counter() - started < 0.2  # hiredis alone: seconds and gigabytes
    assert result == run(pure, [raw])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # hiredis reads these as replies; as requests they are errors
        (b"*2\r\n+OK\r\n:1\r\n", "Protocol error: expected '$', got '+'"),
        (b"*1\r\n*1\r\n$1\r\na\r\n", "Protocol error: expected '$', got '*'"),
        (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n-ERR x\r\n", "Protocol error: expected '$', got '-'"),
        (b"*1\r\n_\r\n", "Protocol error: expected '$', got '_'"),
        # hiredis skips the two bytes after a bulk unread
        (b"*1\r\n$4\r\nPINGxx*1\r\n$1\r\na\r\n", "Protocol error: expected CRLF after bulk argument"),
        (b"*1\r\n$9\r\n" + b"x" * 9 + b"\r\n", "Protocol error: invalid bulk length"),  # over 8
    ],
)
def test_what_hiredis_accepts_and_requests_do_not(raw: bytes, expected: str) -> None:
    assert run(fast, [raw], max_bulk_len=8) == run(pure, [raw], max_bulk_len=8)
    assert run(fast, [raw], max_bulk_len=8)[-1] == ("error", expected)


def test_unauthenticated_limits_follow_auth_within_one_read() -> None:
    auth = encode_command("AUTH", "pw")
    big = encode_command("SET", "k", b"x" * 16385)
    many = encode_command(*["a"] * 11)
    for make in (pure, fast):
        assert run(make, [big], password=True) == [("error", "Protocol error: unauthenticated bulk length")]
        assert run(make, [many], password=True) == [
            ("error", "Protocol error: unauthenticated multibulk length")
        ]
        assert run(make, [auth + big + many], password=True) == [
            [b"AUTH", b"pw"],
            [b"SET", b"k", b"x" * 16385],
            [b"a"] * 11,
            ("buffered", 0),
        ]


def test_a_bad_length_is_answered_before_the_data_comes() -> None:
    for make in (pure, fast):
        assert run(make, [b"*2\r\n$3\r\nGET\r\n", b"$9999999999\r\n"]) == [
            ("error", "Protocol error: invalid bulk length")
        ]


def test_a_big_argument_in_many_reads_is_not_rescanned() -> None:
    value = b"v" * 1_000_000
    raw = encode_command("SET", "k", value) + encode_command("GET", "k")
    chunks = [raw[i : i + 1000] for i in range(0, len(raw), 1000)]
    for make in (pure, fast):
        assert run(make, chunks) == [[b"SET", b"k", value], [b"GET", b"k"], ("buffered", 0)]


def test_make_parser_falls_back_without_hiredis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hiredis", None)
    parser = make_parser(100)
    assert type(parser) is RequestParser
    parser.feed(encode_command("PING"))
    assert parser.next() == [b"PING"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"", []),
        (b"  a  b ", [b"a", b"b"]),
        (b'"a b" c', [b"a b", b"c"]),
        (b'"\\x41\\x4g\\n\\t\\r\\b\\a\\z"', [b"A\\x4g\n\t\r\b\x07z"[:0] + b"Ax4g\n\t\r\b\x07z"]),
        (b"'it\\'s' x", [b"it's", b"x"]),
        (b"'a\\nb'", [b"a\\nb"]),
        (b'ab"cd"', [b"abcd"]),
        (b"a\x0bb\x0c", [b"a\x0bb\x0c"]),
        (b'"a"b', None),
        (b"'a'b", None),
        (b'"a', None),
        (b"'a", None),
        (b'"a"\x0bb', [b"a", b"b"]),
    ],
)
def test_split_inline_is_sdssplitargs(line: bytes, expected: list[bytes] | None) -> None:
    assert split_inline(line) == expected


def test_big_commands_from_hiredis_are_checked_header_by_header() -> None:
    value = b"v" * 100_000
    good = encode_command("SET", "k", value) + encode_command("GET", "k")
    before = CountingReader.commands
    counted = run(lambda m, a: HiredisRequestParser(m, a, reader_class=CountingReader), [good])
    assert counted == [[b"SET", b"k", value], [b"GET", b"k"], ("buffered", 0)]
    assert CountingReader.commands - before == 2
    bad = good.replace(value + b"\r\n", value + b"xx", 1)
    assert (
        run(fast, [bad])
        == run(pure, [bad])
        == [("error", "Protocol error: expected CRLF after bulk argument")]
    )
    assert run(fast, [good], max_bulk_len=99_999) == [("error", "Protocol error: invalid bulk length")]


# ----------------------------------------------------------------------------- offsets


def located(chunks: Sequence[bytes]) -> list[Any]:
    """Feed ``chunks`` to a parser for logs (no inline requests), then :meth:`finish`: each
    command with the offset after it, then how the input ended (kind, offset, expected)."""
    parser = RequestParser(inline=False)
    out: list[Any] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (args := parser.next()) is not None:
                out.append((args, parser.offset))
        parser.finish()
    except IncompleteCommand as exc:
        out.append(("incomplete", exc.offset, exc.expected))
    except ProtocolViolation as exc:
        out.append(("malformed", exc.offset, exc.expected))
    else:
        out.append(("end", parser.offset, ""))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), raw=multibulk_stream, trailing=st.binary(max_size=6))
def test_offsets_and_kinds_do_not_depend_on_the_reads(
    data: st.DataObject, raw: bytes, trailing: bytes
) -> None:
    raw += trailing
    whole = located([raw])
    for cut in every_cut(raw, data.draw(cuts(raw)))[1:]:
        assert located(cut) == whole
    # What finish() refuses early is what the rest of the input would have been refused for.
    prefix = raw[: data.draw(st.integers(0, len(raw)))]
    early = located([prefix])
    if early[-1][0] == "malformed":
        assert whole[-1] == early[-1]


@settings(max_examples=40, deadline=None)
@given(args=st.lists(st.lists(arg, min_size=1, max_size=4), min_size=1, max_size=4), data=st.data())
def test_input_cut_inside_a_command_is_incomplete_at_its_start(
    args: list[list[bytes]], data: st.DataObject
) -> None:
    encoded = [encode_command(*a) for a in args]
    raw = b"".join(encoded)
    starts = list(itertools.accumulate(map(len, encoded), initial=0))
    cut = data.draw(st.integers(0, len(raw)))
    out = located([raw[:cut]])
    whole = [s for s in starts[1:] if s <= cut]
    assert [offset for _, offset in out[:-1]] == whole
    if cut in starts:
        assert out[-1] == ("end", cut, "")
    else:
        assert out[-1][:2] == ("incomplete", max(s for s in starts if s < cut))


@pytest.mark.parametrize(
    ("raw", "kind", "offset", "expected"),
    [
        (b"*1\r\n$1\r\na\r\n?", "malformed", 11, "'*' (a command)"),
        (b"*1\r\n$1\r\na\r\n*x", "malformed", 12, "an argument count"),
        (b"*1\r\n$1\r\na\r\n*1\rx", "malformed", 14, "'\\n'"),
        (b"*2\r\n#1\r\na\r\n", "malformed", 4, "'$' (an argument)"),
        (b"*2\r\n#", "malformed", 4, "'$' (an argument)"),
        (b"*2\r\n$1x", "malformed", 5, "an argument length"),
        (b"*2\r\n$-1\r\n", "malformed", 5, "an argument length"),
        (b"*2\r\n$1\r\nab", "malformed", 9, "CRLF after an argument"),
        (b"*2\r\n$1\r\na\r\n$3\r\nbc", "incomplete", 0, "3 bytes of an argument and CRLF"),
        (b"*1\r\n$1\r\na\r\n*2\r\n$1\r\na\r\n", "incomplete", 11, "'$' (an argument)"),
        (b"*1\r\n$1\r\na\r\n*2\r", "incomplete", 11, "an argument count"),
    ],
)
def test_errors_name_their_offset_and_what_was_expected(
    raw: bytes, kind: str, offset: int, expected: str
) -> None:
    for chunks in ([raw], [raw[i : i + 1] for i in range(len(raw))]):
        end = located(chunks)[-1]
        assert end[:2] == (kind, offset)
        assert end[2].startswith(expected)


def test_a_connection_parser_still_takes_inline_requests_and_counts_them() -> None:
    parser = RequestParser()
    parser.feed(b'PING\r\n*1\r\n$4\r\nPING\r\nGET "a')
    assert parser.next() == [b"PING"]
    assert parser.next() == [b"PING"]
    assert parser.offset == 20
    assert parser.next() is None
    with pytest.raises(IncompleteCommand) as cut:
        parser.finish()
    assert cut.value.offset == 20

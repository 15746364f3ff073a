"""The memcached listener against a real memcached (1.6): the same bytes to both, the same
replies back (CAS uniques masked). Error lines, noreply, pipelines, the meta commands."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcclient import McConn, McPair, mask_cas

LONG_KEY = b"k" * 251
KEY_250 = b"k" * 250

SCRIPTS: list[bytes] = [
    # storage and retrieval
    b"set a 5 0 2\r\nhi\r\nget a\r\ngets a\r\nget a zz a\r\n",
    b"set a 0 0 0\r\n\r\nget a\r\n",
    b"set a 4294967295 0 1\r\nx\r\nset b 4294967297 0 1\r\ny\r\nget a b\r\n",
    b"set " + KEY_250 + b" 0 0 1\r\nx\r\nget " + KEY_250 + b"\r\n",
    b"add a 0 0 1\r\nb\r\nadd a 0 0 1\r\nc\r\nreplace q 0 0 1\r\nb\r\nreplace a 3 0 1\r\nd\r\nget a\r\n",
    b"append q 0 0 1\r\nb\r\nprepend q 0 0 1\r\nb\r\nset a 7 0 1\r\nb\r\n"
    b"prepend a 0 0 1\r\nc\r\nappend a 9 9 1\r\nd\r\nget a\r\n",
    b"set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\nappend a 0 0 1 noreply\r\nz\r\nget a\r\n",
    b"set a 0 0 1\r\nx\r\ngets a\r\ncas a 0 0 1 {cas}\r\ny\r\ncas a 0 0 1 {cas}\r\nz\r\nget a\r\n",
    b"cas zz 0 0 1 1\r\ny\r\nset a 0 0 1\r\nx\r\ncas a 0 0 1 999999\r\ny\r\ncas a 0 0 1\r\ny\r\n",
    b"set a 0 0 1\r\nx\r\ngets a\r\ncas a 0 0 1 {cas} noreply\r\ny\r\nget a\r\n",
    b"set a 0 -1 1\r\nb\r\nget a\r\nadd a 0 0 1\r\nc\r\nget a\r\n",
    b"set a 0 100 1\r\nb\r\nmg a t v\r\nset a 0 0 1\r\nc\r\nmg a t\r\n",
    # malformed storage lines, data chunks
    b"set x 0 0 1\r\nabc\r\n",
    b"set a x 0 1\r\nb\r\n",
    b"set a 0 x 1\r\nb\r\n",
    b"set a 0 0 x\r\nb\r\n",
    b"set a 0 0 -1\r\nb\r\n",
    b"set a -1 0 1\r\nb\r\n",
    b"set a 0 0\r\nset a 0 0 1 noreply extra\r\n",
    b"set a 0 0 4294967297\r\nx\r\nget a\r\nset b 0 4294967295 1\r\ny\r\nget b\r\n"
    b"gat 4294967295 a\r\nget a\r\n",
    b"set a x 0 1 noreply\r\nb\r\n",
    b"set a 0 0 1 noreply\r\nabc\r\n",
    b"set " + LONG_KEY + b" 0 0 1\r\nx\r\n",
    b"SET a 0 0 1\r\nx\r\n",
    b"set a 0 0 1\nx\r\nget a\n",
    b"set a 0 0 3\r\na\r\n\r\nget a\r\n",
    # get family
    b"get\r\ngets\r\ngat\r\ngats\r\n",
    b"get a " + LONG_KEY + b"\r\n",
    b"set a 0 0 1\r\nx\r\ntouch a 10\r\ntouch zz 10\r\ngat 0 a zz\r\ngats 0 a\r\ngat a\r\ngat 10\r\n",
    b"set a 0 0 1\r\nx\r\ngat -1 a\r\nget a\r\n",
    b"touch a\r\ntouch a x\r\ntouch " + LONG_KEY + b" 1\r\ntouch a x noreply\r\n",
    b"get  a   b \r\n",
    b"get a\tb\r\nset a\tb 0 0 1\r\nx\r\nget a\tb\r\n",
    b"set a\x01b 0 0 1\r\nx\r\nget a\x01b\r\nmg a\x01b v\r\nset \x7f\xff 0 0 1\r\ny\r\nget \x7f\xff\r\n",
    b"ms c\x00d 1\r\ny\r\nmg c\x00d v k\r\nset a\x00b 0 0 1\r\nx\r\nget a b\x00c\r\n",
    # delete
    b"set a 0 0 1\r\nx\r\ndelete a 0\r\ndelete a 5\r\ndelete a noreply\r\ndelete\r\ndelete a b c\r\n",
    b"set a 0 0 1\r\nx\r\ndelete a 0 noreply\r\nget a\r\ndelete a\r\ndelete " + LONG_KEY + b"\r\n",
    # incr / decr
    b"set n 0 0 3\r\n100\r\ndecr n 1\r\nget n\r\nincr n 5\r\nget n\r\n",
    b"set n 0 0 20\r\n18446744073709551615\r\nincr n 1\r\nget n\r\ndecr n 5\r\nincr n x\r\nincr n -1\r\n",
    b"set n 3 0 1\r\n9\r\nincr n 1\r\nget n\r\nincr zz 1\r\ndecr zz 1\r\nincr n\r\n",
    b"set s 0 0 3\r\nabc\r\nincr s 1\r\nset s 0 0 0\r\n\r\nincr s 1\r\nset s 0 0 2\r\n-1\r\ndecr s 1\r\n",
    b"set s 0 0 2\r\n 5\r\nincr s 1\r\nset s 0 0 2\r\n+5\r\nincr s 1\r\nset s 0 0 2\r\n5a\r\nincr s 1\r\n",
    b"set n 0 0 1\r\n5\r\nincr n 1 noreply\r\nincr n x noreply\r\ndecr n 100\r\n",
    b"incr " + LONG_KEY + b" 1\r\n",
    # misc
    b"bogus\r\n\r\n   \r\nGET a\r\n",
    b"flush_all\r\nflush_all 0\r\nflush_all noreply\r\nflush_all x\r\n"
    b"flush_all x noreply\r\nflush_all -1\r\n",
    b"set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\nflush_all 1 2 3\r\n",
    b"verbosity 1\r\nverbosity\r\nverbosity 1 noreply\r\nverbosity x\r\nverbosity 1 2 3\r\n",
    b"version\r\n",
    b"shutdown\r\n",
    b"stats foo\r\nstats reset\r\nstats detail on\r\nstats sizes\r\n",
    # meta get
    b"set a 5 0 2\r\nhi\r\nmg a s v t f k O123 q\r\nmg a\r\nmg a foo\r\nmg a v c\r\n",
    b"mg zz v\r\nmg zz v q\r\nmg zz k O1 q\r\nmg zz\r\n",
    b"set a 0 0 2\r\nhi\r\nmg a h\r\nmg a h v\r\n",
    b"set a 0 0 2\r\nhi\r\nmg a l\r\nget a\r\nmg a l h\r\n",
    b"mg zz N30 v c t\r\nmg zz v c t\r\nmg zz s\r\n",
    b"mg zz N30 q\r\nmg zz q k\r\n",
    b"set a 0 100 2\r\nhi\r\nmg a T5 t\r\nmg a t\r\nmg a T0 t\r\n",
    b"set a 0 10 2\r\nhi\r\nmg a R30 v\r\nmg a R30 v\r\nmg a R5 v\r\n",
    b"mg\r\nmg " + LONG_KEY + b" v\r\nmg a Tx\r\nmg a Nx\r\nmg a Rx\r\nmg a Z\r\nmg a v v\r\n",
    b"mg a v O123456789012345678901234567890123\r\nmg a v O12345678901234567890123456789012\r\n",
    b"ms YWI= 2 b k\r\nhi\r\nmg ab v\r\nmg YWI= b v\r\nmg !!! b v\r\nmg YQ b v\r\n",
    b"ms YQ 1 b k\r\nx\r\nms YQ= 1 b k\r\nx\r\nms Y!WJj 1 b k\r\nx\r\nms YWJjZA 1 b k\r\nx\r\n"
    b"ms flush_all 1 b k\r\nx\r\nms !!!! 1 b k\r\nx\r\nms YQ==YQ== 1 b k\r\nx\r\nmd flush_all b\r\n",
    b"set noreply 0 0 1\r\nx\r\ndelete noreply\r\ndelete noreply noreply\r\n",
    # meta set
    b"ms b 2 F7 T0 c\r\nxx\r\nmg b v f t c\r\n",
    b"ms b 2\r\nxx\r\nms b 2 q\r\nyy\r\nms b 2 q k O9\r\nzz\r\nmg b v\r\n",
    b"ms a 2 MA\r\nzz\r\nms a 2 MS\r\naa\r\nms a 2 MP q\r\nyy\r\nms a 1 Ma\r\nx\r\nmg a v f\r\n",
    b"ms q1 2 ME\r\nxx\r\nms q1 2 ME\r\nxx\r\nms q2 2 MR\r\nxx\r\nms q1 2 Mr\r\nyy\r\nmg q1 v\r\n",
    b"ms a 1 C99999999\r\nx\r\nms a 1\r\nx\r\nms a 1 C99999999\r\nx\r\n"
    b"mg a c\r\nms a 1 C{cas}\r\ny\r\nmg a v\r\n",
    b"ms a 2 T-1\r\nhi\r\nmg a v\r\n",
    b"ms a 2 MZ\r\nxx\r\nms a 1 MEE\r\nx\r\nms a 1 Fx\r\nx\r\nms a 1 Cx\r\nx\r\nms a 1 Tx\r\nx\r\n",
    b"ms a 1 Z\r\nx\r\nms a 1 c c\r\nx\r\nms a 1 F-1\r\nx\r\n",
    b"ms a 1 F4294967296\r\nx\r\nmg a f\r\n",
    b"ms\r\nms a\r\nms a x\r\nms a S2\r\nxx\r\n",
    b"ms " + LONG_KEY + b" 1\r\nx\r\n",
    b"ms a 3\r\nabcde\r\n",
    b"ms a 3 t gets\r\nabcde\r\nms a 3 MZ\r\nabcde\r\nms a 3 c\r\nabcde\r\nmg a v\r\n",
    # meta delete
    b"md a\r\nmd a q\r\nmd a k O5\r\nset a 0 0 1\r\nx\r\nmd a q\r\nget a\r\n",
    b"set a 0 0 1\r\nx\r\nmd a C99999999\r\nmg a c\r\nmd a C{cas} k\r\nmg a\r\n",
    b"md\r\nmd " + LONG_KEY + b"\r\nmd a Cx\r\nmd a Z\r\nmd a Tx\r\nmd a v v\r\n",
    b"ms a 2\r\nhi\r\nmd a I T30\r\nmg a v c t\r\nmg a v t\r\nms a 2 C1 I\r\nyo\r\nmg a v\r\n",
    # meta arithmetic
    b"ma c\r\nma c N0 J10 v\r\nma c MD D3 v t\r\nma c M- D100 v\r\nma c M+ v\r\nma c MI D5 q\r\nmg c v\r\n",
    b"ma x q\r\nma x N0 q\r\nma x q\r\nmg x v\r\nma x MZ\r\nma x Dx\r\nma x Jx\r\nma x MII\r\nma x Cx\r\n",
    b"set s 0 0 1\r\nA\r\nma s\r\nma\r\nma " + LONG_KEY + b"\r\nma zz k O7\r\n",
    b"set n 5 0 2\r\n10\r\nma n C99999999\r\nmg n c\r\nma n C{cas} v\r\nmg n f v\r\n",
    b"mg zz k O5 b\r\nmg YWI= k b\r\n",
]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s[:40].decode("latin-1") for s in SCRIPTS])
def test_pair(mc_pair: McPair, script: bytes) -> None:
    mc_pair.check(script)


def test_big_values(mc_pair: McPair) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    mc_pair.check(b"set big 0 0 %d\r\n%b\r\nget big\r\n" % (len(big), big))
    mc_pair.check(b"ms big2 %d T0\r\n%b\r\nmg big2 v s\r\n" % (len(big), big))
    huge = b"x" * (3 * 1024 * 1024)
    mc_pair.check(b"set huge 0 0 %d\r\n%b\r\nget huge\r\n" % (len(huge), huge))
    mc_pair.check(b"ms huge %d\r\n%b\r\nmg huge v\r\n" % (len(huge), huge))
    mc_pair.check(b"set huge 0 0 %d noreply\r\n%b\r\nget huge\r\n" % (len(huge), huge))
    mc_pair.check(b"ms huge %d t gets\r\n%b\r\nms huge %d MZ\r\n%b\r\n" % (len(huge), huge, len(huge), huge))


def test_too_large_is_answered_once_skipped(mc_pair: McPair) -> None:
    for conn in (mc_pair.ours, mc_pair.real):
        conn.send(b"set huge 0 0 %d\r\n" % (3 * 1024 * 1024))
        conn.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.sock.recv(100)  # nothing yet: memcached answers after the data
        conn.sock.settimeout(5)
        assert conn.call(b"x" * (3 * 1024 * 1024) + b"\r\n") == b"SERVER_ERROR object too large for cache\r\n"
    # Appending past the limit: the item stays as it was.
    half = b"y" * (1536 * 1024)
    mc_pair.check(
        b"set ap 0 0 %d\r\n%b\r\nappend ap 0 0 %d\r\n%b\r\nmg ap s\r\n" % (len(half), half, len(half), half)
    )
    mc_pair.check(
        b"ms ap %d MA\r\n%b\r\nms ap %d MP\r\n%b\r\nmg ap s\r\n" % (len(half), half, len(half), half)
    )


def test_binary_safe_values(mc_pair: McPair) -> None:
    for value in (b"\r\n", b"\x00\xff\r\nEND\r\n", b"VALUE a 0 1\r\n", bytes(range(256))):
        mc_pair.check(b"set a 1 0 %d\r\n%b\r\nget a\r\nmg a v f s\r\n" % (len(value), value))


def test_pipeline_in_one_packet(mc_pair: McPair) -> None:
    script = b"".join(b"set k%d %d 0 2\r\nv%d\r\n" % (i, i, i % 10) for i in range(200))
    script += b"get " + b" ".join(b"k%d" % i for i in range(200)) + b"\r\n"
    script += b"".join(b"mg k%d v f q\r\nmg miss%d v q\r\n" % (i, i) for i in range(200))
    mc_pair.check(script)


def test_long_multiget(mc_pair: McPair) -> None:
    keys = [b"key-%04d" % i for i in range(600)]  # a ~5 kB line
    mc_pair.check(b"set key-0007 0 0 1\r\nx\r\nget " + b" ".join(keys) + b"\r\n")


def test_quit_closes(mc_pair: McPair) -> None:
    for conn in (mc_pair.ours, mc_pair.real):
        conn.send(b"set a 0 0 1\r\nx\r\nquit\r\nget a\r\n")
        assert conn.read_until(b"STORED\r\n") == b""
        assert conn.closed()


# ------------------------------------------------------------- random command sequences

_KEYS = st.sampled_from([b"a", b"b", b"n"])
_VALUES = st.sampled_from([b"", b"x", b"12", b"007", b"hello", b"18446744073709551615", b"-3"])
_EXP = st.sampled_from([b"0", b"1000", b"-1"])
_FLAGS = st.sampled_from([b"0", b"1", b"42", b"4294967295"])
_NOREPLY = st.sampled_from([b"", b" noreply"])


@st.composite
def _command(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            ["store", "get", "cas", "delete", "arith", "touch", "mg", "ms", "md", "ma", "flush", "bad"]
        )
    )
    key = draw(_KEYS)
    if kind == "store":
        name = draw(st.sampled_from([b"set", b"add", b"replace", b"append", b"prepend"]))
        value = draw(_VALUES)
        return b"%b %b %b %b %d%b\r\n%b\r\n" % (
            name,
            key,
            draw(_FLAGS),
            draw(_EXP),
            len(value),
            draw(_NOREPLY),
            value,
        )
    if kind == "get":
        name = draw(st.sampled_from([b"get", b"gets", b"gat 0", b"gats 1000"]))
        keys = draw(st.lists(_KEYS, min_size=1, max_size=3))
        return name + b" " + b" ".join(keys) + b"\r\n"
    if kind == "cas":
        value = draw(_VALUES)
        unique = draw(st.sampled_from([b"{cas}", b"99999999"]))
        return b"gets %b\r\ncas %b 0 0 %d %b\r\n%b\r\n" % (key, key, len(value), unique, value)
    if kind == "delete":
        return b"delete %b%b\r\n" % (key, draw(_NOREPLY))
    if kind == "arith":
        name = draw(st.sampled_from([b"incr", b"decr"]))
        delta = draw(st.sampled_from([b"0", b"1", b"7", b"18446744073709551615", b"x"]))
        return b"%b %b %b%b\r\n" % (name, key, delta, draw(_NOREPLY))
    if kind == "touch":
        return b"touch %b %b%b\r\n" % (key, draw(_EXP), draw(_NOREPLY))
    if kind == "mg":
        # No h here: after an incr, memcached's h depends on whether the item was rewritten in
        # place (another thread holding it forces a new item); SCRIPTS check h deterministically.
        flags = draw(
            st.lists(st.sampled_from([b"v", b"f", b"s", b"k", b"q", b"c", b"t", b"O9"]), unique=True)
        )
        return b"mg %b %b\r\n" % (key, b" ".join(flags))
    if kind == "ms":
        value = draw(_VALUES)
        flags = draw(
            st.lists(
                st.sampled_from(
                    [b"F3", b"T0", b"T1000", b"q", b"k", b"c", b"MS", b"ME", b"MA", b"MP", b"MR"]
                ),
                unique_by=lambda flag: flag[:1],
            )
        )
        return b"ms %b %d %b\r\n%b\r\n" % (key, len(value), b" ".join(_stale_only_on_a(key, flags)), value)
    if kind == "md":
        flags = draw(st.lists(st.sampled_from([b"q", b"k", b"O1"]), unique=True))
        return b"md %b %b\r\n" % (key, b" ".join(_stale_only_on_a(key, flags)))
    if kind == "ma":
        flags = draw(
            st.lists(
                st.sampled_from([b"N0", b"J5", b"D3", b"MD", b"MI", b"v", b"q", b"t", b"c"]),
                unique_by=lambda flag: flag[:1],
            )
        )
        return b"ma %b %b\r\n" % (key, b" ".join(flags))
    if kind == "flush":
        return b"flush_all\r\n"
    return draw(st.sampled_from([b"bogus\r\n", b"set a\r\n", b"get\r\n", b"mg\r\n", b"incr a\r\n"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_command(), min_size=1, max_size=12))
def test_random_sequences(mc_pair: McPair, commands: list[bytes]) -> None:
    mc_pair.ours.call(b"flush_all\r\n")
    mc_pair.real.call(b"flush_all\r\n")
    mc_pair.ours.last_cas = mc_pair.real.last_cas = b"99999999"  # no CAS seen yet: none matches
    for command in commands:
        mc_pair.check(command)


def _stale_only_on_a(key: bytes, flags: list[bytes]) -> list[bytes]:
    """Only key ``a`` is ever marked stale, and ma never touches ``a``: an incr of a stale item
    keeps or clears its stale mark in memcached depending on whether another thread holds
    the item at that moment (in place, or a new item), so no reply can be expected there."""
    return flags if key == b"a" else [flag for flag in flags if flag != b"I"]


@st.composite
def _meta_command(draw: st.DrawFn) -> bytes:
    """Meta commands with the flags that keep per-item state: stale, win tokens, CAS."""
    key = draw(_KEYS)
    kind = draw(st.sampled_from(["mg", "ms", "md", "ma", "get", "cas"]))
    if kind == "mg":
        flags = draw(
            st.lists(
                st.sampled_from([b"v", b"c", b"f", b"t", b"k", b"q", b"N30", b"R30", b"T40", b"s", b"O1"]),
                unique_by=lambda flag: flag[:1],
            )
        )
        # memcached 1.6.18 shows t-1 for an item N creates when t comes before N (the item
        # has its TTL): we show the TTL, so N goes first here.
        flags.sort(key=lambda flag: flag != b"N30")
        return b"mg %b %b\r\n" % (key, b" ".join(flags))
    if kind == "ms":
        value = draw(_VALUES)
        flags = draw(
            st.lists(
                st.sampled_from(
                    [b"I", b"C{cas}", b"C99999999", b"T20", b"F5", b"c", b"q", b"ME", b"MA", b"MR"]
                ),
                unique_by=lambda flag: flag[:1],
            )
        )
        return b"ms %b %d %b\r\n%b\r\n" % (key, len(value), b" ".join(_stale_only_on_a(key, flags)), value)
    if kind == "md":
        flags = draw(
            st.lists(
                st.sampled_from([b"I", b"T30", b"C{cas}", b"C99999999", b"q", b"k"]),
                unique_by=lambda flag: flag[:1],
            )
        )
        return b"md %b %b\r\n" % (key, b" ".join(_stale_only_on_a(key, flags)))
    if kind == "ma":
        flags = draw(
            st.lists(
                st.sampled_from([b"N0", b"J7", b"D2", b"M-", b"C{cas}", b"v", b"c", b"t", b"T50", b"q"]),
                unique_by=lambda flag: flag[:1],
            )
        )
        return b"ma %b %b\r\n" % (key.replace(b"a", b"n"), b" ".join(flags))
    if kind == "get":
        return draw(st.sampled_from([b"gets %b\r\n", b"gat 60 %b\r\n", b"touch %b 70\r\n"])) % key
    return b"cas %b 0 0 1 {cas}\r\nz\r\n" % key


def _cas_of_key(command: bytes) -> bytes:
    """``command``, preceded by an ``mg <key> c`` when it uses ``{cas}``: the CAS compared is
    then the key's own. (Ours are given lazily, at the first read that shows one, so across
    keys their order may differ from memcached's, which numbers every write.)"""
    if b"{cas}" not in command or command.startswith(b"cas"):
        return command
    return b"mg %b c\r\n" % command.split(b" ", 2)[1] + command


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_meta_command().map(_cas_of_key), min_size=1, max_size=12))
def test_random_meta_sequences(mc_pair: McPair, commands: list[bytes]) -> None:
    mc_pair.ours.call(b"flush_all\r\n")
    mc_pair.real.call(b"flush_all\r\n")
    mc_pair.ours.last_cas = mc_pair.real.last_cas = b"99999999"  # no CAS seen yet: none matches
    for command in commands:
        mc_pair.check(command)


# Lines of random tokens: the parser and every error path against memcached's. Not here:
# E (newer than 1.6.18), flush_all (a delayed flush would outlive the test on the shared
# memcached), stats (figures differ), mn (the harness's end marker).
_TOKENS = [
    *(b"set get gets gat ms mg ma md cas incr decr touch delete add append prepend replace".split()),
    *(b"verbosity version a b 0 1 2 5 noreply v k q c f t s h l I x".split()),
    *(b"T1 N0 MA ME MI D3 J2 C0 O1 F3 R5 YQ== 99999999999999999999".split()),
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=6).map(b" ".join), min_size=1, max_size=5
    )
)
def test_random_token_lines(mc_pair: McPair, lines: list[bytes]) -> None:
    data = b"\r\n".join(lines) + b"\r\n" * 4  # the blank lines end short data blocks
    replies = []
    for conn in (mc_pair.ours, mc_pair.real):
        probe = McConn(conn.sock.getpeername()[1], timeout=0.3)
        try:
            probe.send(b"flush_all\r\n" + data + b"mn\r\n")
            try:
                replies.append(probe.read_until(b"MN\r\n"))
            except (TimeoutError, ConnectionError) as exc:  # a data block still open, a close
                replies.append(type(exc).__name__.encode())
        finally:
            probe.close()
    assert mask_cas(replies[0]) == mask_cas(replies[1]), f"for {data!r}"

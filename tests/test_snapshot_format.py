"""The snapshot codec (stratacache.core.snapshot): round trips, and every corruption found."""

from __future__ import annotations

import io
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratacache import SnapshotError
from stratacache.core.snapshot import (
    HASH,
    LIST,
    SET,
    STRING,
    ZSET,
    Record,
    SnapshotReader,
    SnapshotWriter,
    dumps,
    loads,
)

small = st.binary(max_size=40)
# Lengths across the one-byte varint boundary (127/128) and beyond two bytes.
sized = st.one_of(small, st.binary(min_size=120, max_size=300))
deadlines = st.one_of(st.none(), st.integers(0, 2**64 - 1))
scores = st.floats(allow_nan=False)


@st.composite
def records(draw: st.DrawFn) -> Record:
    kind = draw(st.sampled_from([STRING, LIST, SET, HASH, ZSET]))
    value: object
    if kind == STRING:
        value = draw(sized)
    elif kind == LIST:
        value = draw(st.lists(sized, max_size=6))
    elif kind == SET:
        value = draw(st.lists(small, max_size=6, unique=True))
    elif kind == HASH:
        value = draw(st.lists(st.tuples(small, sized), max_size=6, unique_by=lambda p: p[0]))
    else:
        value = draw(st.lists(st.tuples(small, scores), max_size=6, unique_by=lambda p: p[0]))
    db = draw(st.one_of(st.just(0), st.integers(0, 300)))
    return Record(db, draw(sized), kind, value, draw(deadlines))


@settings(max_examples=150)
@given(st.lists(records(), max_size=30), st.booleans(), st.integers(0, 2**63))
def test_round_trip(items: list[Record], compress: bool, created: int) -> None:
    data = dumps(items, compress=compress, created_ms=created)
    assert loads(data) == items
    reader = SnapshotReader(io.BytesIO(data))
    assert reader.created_ms == created
    assert reader.compressed is compress
    assert list(reader) == items
    assert reader.count == len(items)


def test_special_scores_round_trip() -> None:
    items = [Record(0, b"z", ZSET, [(b"a", math.inf), (b"b", -math.inf), (b"c", -0.0)], None)]
    (back,) = loads(dumps(items))
    assert back.value[:2] == [(b"a", math.inf), (b"b", -math.inf)]
    assert math.copysign(1, back.value[2][1]) == -1


def test_many_blocks_stream() -> None:
    """Records span many blocks; the reader holds one block at a time and counts them all."""
    out = io.BytesIO()
    writer = SnapshotWriter(out, block_size=256)
    for i in range(2000):
        writer.add_string(i % 3, b"key:%d" % i, b"v" * (i % 50), None if i % 2 else 10**12 + i)
    assert writer.finish() == 2000
    assert writer.bytes_written == len(out.getvalue())
    back = loads(out.getvalue())
    assert len(back) == 2000
    assert back[1999] == Record(1999 % 3, b"key:1999", STRING, b"v" * (1999 % 50), None)


def test_compact() -> None:
    """A small string record costs its key and value plus about four bytes."""
    one = len(dumps([Record(0, b"k" * 10, STRING, b"v" * 20, None)]))
    many = len(dumps([Record(0, b"k%09d" % i, STRING, b"v" * 20, None) for i in range(1000)]))
    assert (many - one) / 999 <= 10 + 20 + 4


def _sample() -> bytes:
    items = [
        Record(0, b"s", STRING, b"hello", None),
        Record(3, b"l", LIST, [b"a", b"b"], 1_700_000_000_000),
        Record(0, b"h", HASH, [(b"f", b"v")], None),
    ]
    out = io.BytesIO()
    writer = SnapshotWriter(out, block_size=8)  # several blocks even for this little
    for r in items:
        writer.add(r.db, r.key, r.kind, r.value, r.deadline_ms)
    writer.finish()
    return out.getvalue()


@pytest.mark.parametrize("compress", [False, True])
def test_every_cut_is_detected(compress: bool) -> None:
    data = _sample() if not compress else dumps(loads(_sample()), compress=True)
    for cut in range(len(data)):
        with pytest.raises(SnapshotError) as info:
            loads(data[:cut], "dump.scs")
        assert info.value.path == "dump.scs"
        assert info.value.offset is not None
        assert 0 <= info.value.offset <= cut
        assert f"dump.scs at offset {info.value.offset}" in str(info.value)


def test_every_cut_is_detected_without_size() -> None:
    """Streaming from a pipe (no size known): a cut still raises, never ends quietly."""
    data = _sample()
    for cut in range(len(data)):
        with pytest.raises(SnapshotError):
            list(SnapshotReader(io.BytesIO(data[:cut]), "pipe"))


def test_every_flipped_bit_is_detected() -> None:
    data = _sample()
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            broken = bytearray(data)
            broken[i] ^= bit
            with pytest.raises(SnapshotError) as info:
                loads(bytes(broken), "f")
            # The offset is the block holding the bad byte; the header (16 bytes) is covered
            # by the first block's checksum.
            assert info.value.offset is not None
            assert info.value.offset <= i or (i < 16 and info.value.offset == 16)


def test_corruption_offset_is_the_block_at_fault() -> None:
    data = bytearray(_sample())
    reader = SnapshotReader(io.BytesIO(bytes(data)))
    offsets = [start for start, _ in reader.blocks()]
    assert len(offsets) >= 3
    data[offsets[2] + 5] ^= 0xFF
    with pytest.raises(SnapshotError, match=rf"at offset {offsets[2]}: checksum mismatch"):
        loads(bytes(data))


def test_trailing_bytes_and_bad_header() -> None:
    data = _sample()
    with pytest.raises(SnapshotError, match="after the end block"):
        loads(data + b"\0")
    with pytest.raises(SnapshotError, match="bad magic"):
        loads(b"REDIS0011" + data[9:])
    with pytest.raises(SnapshotError, match="unsupported snapshot version 9"):
        loads(data[:6] + b"\x09" + data[7:])


def test_writer_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown record type"):
        SnapshotWriter(io.BytesIO()).add(0, b"k", 7, b"v")

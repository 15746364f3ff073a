"""Every decoder, fed arbitrary bytes and mutations of valid encodings, only raises SerializationError.

Anything else (a msgpack/json/zlib/cryptography exception, RecursionError, MemoryError) is a
bug, and a crash (the deep-nesting SIGSEGV of issue 13) kills the run. Each test is a few
hundred examples so the whole file stays within seconds in the normal run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratacache._exceptions import SerializationError
from stratacache.serializers import (
    Codec,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
)

FUZZ = settings(
    database=None,
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

K32 = bytes(range(32))

SAMPLES: list[Any] = [
    None,
    {"a": [1, 2.5, "x", b"y"], "t": (1, (2, (3,))), "s": {1, 2}, "f": frozenset({"z"})},
    [datetime(2024, 1, 2, 3, 4, 5), timedelta(days=1, seconds=2), Decimal("1.5"), 2**80, 1 + 2j],
    ((((((),),),),),),
    "x" * 3000,  # long enough to be compressed
    ["abc" * 50, "abd" * 50, b"\x00" * 500],
    [{"id": i, "name": f"n{i}"} for i in range(200)],
]
JSON_SAMPLES: list[Any] = [None, {"a": [1, 2.5, "x"]}, [[[[[]]]]], "x" * 3000]


@st.composite
def mutated(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    """A valid encoding with a few bytes flipped, inserted, deleted, or cut off."""
    data = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            data[at:] = draw(st.sampled_from(valid))[at:]
    return bytes(data)


@st.composite
def deep_msgpack(draw: st.DrawFn) -> bytes:
    """Hostile msgpack: extension containers (tuple 2, set 3, frozenset 4, timedelta 8) nested
    around and far past the limit, with arrays and maps between them, maybe cut short."""
    depth = draw(st.sampled_from([1, 50, 99, 100, 101, 250, 400, 3000]) | st.integers(1, 600))
    codes = draw(st.lists(st.sampled_from([2, 3, 4, 8]), min_size=1, max_size=4))
    wrappers = draw(
        st.lists(st.sampled_from([b"\x91", b"\x81\xa1k", b"\x92\xc0", b""]), min_size=1, max_size=3)
    )
    payload = draw(st.sampled_from([b"\x90", b"\x80", b"\xc0", b"\x01"]))
    for level in range(depth):
        wrapped = wrappers[level % len(wrappers)] + payload
        payload = msgpack.packb(msgpack.ExtType(codes[level % len(codes)], wrapped))
    if draw(st.booleans()):
        payload = payload[: draw(st.integers(0, len(payload)))]
    return payload


def only_serialization_errors(decode: Callable[[bytes], Any], data: bytes) -> None:
    # Any other exception fails the test, with its traceback.
    with contextlib.suppress(SerializationError):
        decode(data)


def fuzz(decode: Callable[[bytes], Any], valid: list[bytes]) -> Callable[[], None]:
    """One hypothesis test over arbitrary bytes and one over mutations of ``valid``."""
    strategy = st.one_of(st.binary(max_size=512), mutated(valid))

    @FUZZ
    @given(data=strategy)
    def run(data: bytes) -> None:
        only_serialization_errors(decode, data)

    return run


def test_msgpack_loads() -> None:
    ser = MsgpackSerializer()
    fuzz(ser.loads, [ser.dumps(v) for v in SAMPLES])()


@settings(FUZZ, max_examples=150)
@given(data=deep_msgpack())
def test_msgpack_deeply_nested_extensions(data: bytes) -> None:
    # Before depth was bounded, ~250 nested extension levels overflowed the C stack (SIGSEGV).
    only_serialization_errors(MsgpackSerializer().loads, data)
    only_serialization_errors(Codec().decode, b"\xfe\x01\x01\x00" + data)


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib"])
def test_json_loads(use_orjson: bool) -> None:
    ser = JsonSerializer(use_orjson=use_orjson)
    fuzz(ser.loads, [ser.dumps(v) for v in JSON_SAMPLES])()


def test_signed_pickle_envelope() -> None:
    ser = PickleSerializer("s3cret")
    valid = [ser.dumps_bound(v, b"k") for v in SAMPLES] + [ser.dumps(v) for v in SAMPLES]
    fuzz(lambda data: ser.loads_bound(data, b"k"), valid)()
    fuzz(ser.loads, valid)()


@pytest.mark.parametrize("compression", ["zlib", "lz4", "zstd"])
def test_each_decompressor(compression: str) -> None:
    codec = Codec(compression=compression, compression_threshold=0, max_decompressed_size=1 << 20)
    valid = [data for data in (codec.encode(v, "k") for v in SAMPLES) if data[:1] == b"\xfe" and data[3]]
    assert len(valid) >= 3, "the samples must include compressible values"
    fuzz(lambda data: codec.decode(data, "k"), valid)()


def test_encryption_envelope() -> None:
    codec = Codec(encryption_keys=[K32], compression="zlib", accept_unbound_values=True)
    valid = [codec.encode(v, "k") for v in SAMPLES]
    fuzz(lambda data: codec.decode(data, "k"), valid)()


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="msgpack"),
        pytest.param({"serializer": "json"}, id="json"),
        pytest.param({"serializer": "pickle", "signing_key": "s3cret", "compression": "lz4"}, id="pickle"),
        pytest.param(
            {"signing_key": "s3cret", "compression": "zstd", "accept_unbound_values": True}, id="mixed"
        ),
    ],
)
def test_codec_as_a_whole(kwargs: dict[str, Any]) -> None:
    codec = Codec(compression_threshold=64, **kwargs)
    samples = JSON_SAMPLES if kwargs.get("serializer") == "json" else SAMPLES
    valid = [codec.encode(v, "k") for v in samples] + [codec.encode_member(v, "k") for v in samples]
    fuzz(lambda data: codec.decode(data, "k"), valid)()
    fuzz(lambda data: codec.decode_member(data, "k"), valid)()

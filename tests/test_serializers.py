"""Tests for stratacache.serializers: the serializers and the Codec value envelope."""

from __future__ import annotations

import base64
import collections
import contextlib
import enum
import hashlib
import hmac
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import threading
import uuid
import zlib
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratacache._exceptions import ConfigurationError, SerializationError
from stratacache.serializers import (
    BOUND_VERSION,
    MAGIC,
    MAX_DEPTH,
    VERSION,
    Codec,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    RawSerializer,
    Serializer,
    get_serializer,
)

HYPOTHESIS = settings(
    database=None,  # never write a .hypothesis directory into the tree
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

K16 = bytes(range(16))
K24 = bytes(range(24))
K32 = bytes(range(32, 64))
K32B = bytes(range(100, 132))


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:4]


def header(fmt: int, flags: int = 0, version: int = VERSION) -> bytes:
    return bytes((MAGIC, version, fmt, flags))


def canon(value: Any) -> Any:
    """A comparable form that tells apart types and float bit patterns that == conflates."""
    cls = type(value)
    if cls is float:
        return ("float", struct.pack("<d", value))
    if cls is complex:
        return ("complex", struct.pack("<dd", value.real, value.imag))
    if cls in (list, tuple):
        return (cls.__name__, tuple(canon(v) for v in value))
    if cls is dict:
        return ("dict", tuple((canon(k), canon(v)) for k, v in value.items()))
    if cls in (set, frozenset):
        return (cls.__name__, tuple(sorted(repr(canon(v)) for v in value)))
    if cls in (datetime, time):
        return (cls.__name__, value.isoformat(), value.utcoffset())
    if cls is Decimal:
        return ("Decimal", str(value))
    return (cls.__name__, repr(value))


# --------------------------------------------------------------------------- strategies

fixed_timezones = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)
hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),
    st.text(),
    st.binary(),
    st.datetimes(timezones=st.none() | fixed_timezones),
    st.dates(),
    st.times(timezones=st.none() | fixed_timezones),
    st.timedeltas(),
    st.decimals(allow_nan=False),  # a signalling NaN Decimal cannot be hashed
    st.uuids(),
    st.complex_numbers(),
)
scalars = hashable_scalars | st.decimals()
hashables = st.recursive(
    hashable_scalars,
    lambda children: st.lists(children, max_size=4).map(tuple) | st.frozensets(children, max_size=4),
    max_leaves=8,
)
msgpack_values = st.recursive(
    scalars | hashables,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(hashables, children, max_size=5),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
    ),
    max_leaves=25,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=25,
)


# --------------------------------------------------------------------------- msgpack

ROUND_TRIP_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63) - 1,
    2**1000,
    -(2**1000),
    1.5,
    -0.0,
    math.inf,
    -math.inf,
    "",
    "héllo ☃",
    b"",
    b"\x00\xff",
    [],
    [1, [2, [3]]],
    {},
    {"a": 1, 2: "b", (1, 2): [3], None: None, frozenset({1}): {4: 5}},
    (),
    (1, (2, (3, ())), [4, (5,)]),
    set(),
    {1, "a", (2, 3), frozenset({4})},
    frozenset(),
    frozenset({1, 2, (3, frozenset({4}))}),
    datetime(2024, 2, 29, 23, 59, 58, 123456),
    datetime(2024, 2, 29, 23, 59, 58, 1, tzinfo=UTC),
    datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=5, seconds=7, microseconds=3))),
    date(1, 1, 1),
    date(9999, 12, 31),
    time(0, 0),
    time(23, 59, 59, 999999),
    time(12, 30, tzinfo=timezone(timedelta(hours=2))),
    timedelta(0),
    timedelta(days=-3, seconds=5, microseconds=7),
    timedelta(days=999999999, microseconds=999999),
    Decimal("1.10"),
    Decimal("-0"),
    Decimal("1E+400"),
    Decimal("Infinity"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    3 + 4j,
    complex(-0.0, math.inf),
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
def test_msgpack_round_trips_each_supported_type(value: Any) -> None:
    ser = MsgpackSerializer()
    back = ser.loads(ser.dumps(value))
    assert canon(back) == canon(value)
    assert back == value or value != value


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
def test_codec_round_trips_each_supported_type(value: Any) -> None:
    codec = Codec()
    back = codec.decode(codec.encode(value))
    assert canon(back) == canon(value)


@pytest.mark.parametrize("bits", [0x7FF8000000000000, 0xFFF8000000000001, 0x7FF0000000000001])
def test_msgpack_keeps_nan_bit_patterns(bits: int) -> None:
    nan = struct.unpack("<d", struct.pack("<Q", bits))[0]
    back = Codec().decode(Codec().encode(nan))
    assert math.isnan(back)
    assert struct.pack("<d", back) == struct.pack("<d", nan)


def test_msgpack_bytearray_and_memoryview_read_back_as_bytes() -> None:
    ser = MsgpackSerializer()
    assert ser.loads(ser.dumps(bytearray(b"ab"))) == b"ab"
    assert type(ser.loads(ser.dumps(bytearray(b"ab")))) is bytes
    assert type(ser.loads(ser.dumps(memoryview(b"cd")))) is bytes


def test_msgpack_aware_datetime_keeps_utcoffset_but_not_zoneinfo() -> None:
    value = datetime(2024, 7, 1, 12, 0, 0, 5, tzinfo=ZoneInfo("Europe/Paris"))
    back = Codec().decode(Codec().encode(value))
    assert back == value
    assert back.utcoffset() == timedelta(hours=2)
    assert back.microsecond == 5
    assert isinstance(back.tzinfo, timezone)


def test_msgpack_naive_datetime_stays_naive() -> None:
    back = Codec().decode(Codec().encode(datetime(2024, 1, 2, 3, 4, 5, 6)))
    assert back.tzinfo is None
    assert back == datetime(2024, 1, 2, 3, 4, 5, 6)


def test_msgpack_decimal_nan_round_trips() -> None:
    for text in ("NaN", "-NaN", "sNaN"):
        back = Codec().decode(Codec().encode(Decimal(text)))
        assert type(back) is Decimal
        assert str(back) == text


def test_msgpack_tuple_nested_in_list_and_dict_values_stays_tuple() -> None:
    value = {"k": [(1, 2), ((3,),)]}
    back = Codec().decode(Codec().encode(value))
    assert type(back["k"][0]) is tuple
    assert type(back["k"][1][0]) is tuple


@HYPOTHESIS
@given(msgpack_values)
def test_msgpack_round_trips_nested_structures(value: Any) -> None:
    ser = MsgpackSerializer()
    assert canon(ser.loads(ser.dumps(value))) == canon(value)


@HYPOTHESIS
@given(msgpack_values)
def test_codec_round_trips_nested_structures_compressed_and_encrypted(value: Any) -> None:
    codec = Codec(compression="zstd", compression_threshold=0, encryption_keys=[K32])
    assert canon(codec.decode(codec.encode(value, "k"), "k")) == canon(value)


class Color(enum.IntEnum):
    RED = 1


class Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        (Opaque(), "Opaque"),
        (Color.RED, "Color"),
        (collections.OrderedDict(a=1), "OrderedDict"),
        ([1, {"a": Opaque()}], "Opaque"),
        ((1, Opaque()), "Opaque"),
        ({Color.RED}, "Color"),
        (range(3), "range"),
    ],
)
def test_msgpack_rejects_unsupported_types_naming_them(value: Any, type_name: str) -> None:
    with pytest.raises(SerializationError, match=type_name):
        MsgpackSerializer().dumps(value)
    with pytest.raises(SerializationError, match=type_name) as info:
        Codec().encode(value, key="user:42")
    assert "'user:42'" in str(info.value)


def test_msgpack_cyclic_values_raise_serialization_error() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(SerializationError, match="list"):
        Codec().encode(cyclic)
    holder: list[Any] = []
    cyclic_tuple = (holder,)
    holder.append(cyclic_tuple)
    with pytest.raises(SerializationError):
        Codec().encode(cyclic_tuple)


def test_msgpack_packer_is_reusable_after_a_failure() -> None:
    ser = MsgpackSerializer()
    with pytest.raises(SerializationError):
        ser.dumps([1, 2, Opaque()])
    assert ser.loads(ser.dumps([9])) == [9]


def test_msgpack_malformed_data_raises_serialization_error_with_cause() -> None:
    ser = MsgpackSerializer()
    for data in (b"\xc1", b"\x92\x01", b"\x01\x02", b"\xd4\x63x", b"\xd4\x02\x01"):
        with pytest.raises(SerializationError) as info:
            ser.loads(data)
        assert not isinstance(info.value.__cause__, SerializationError) or info.value.__cause__ is None


def test_msgpack_unknown_ext_type_is_refused() -> None:
    with pytest.raises(SerializationError, match="ext type 99"):
        MsgpackSerializer().loads(b"\xd4\x63x")


def test_msgpack_concurrent_threads_round_trip() -> None:
    codec = Codec()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                value = {"thread": n, "i": i, "t": (n, i), "s": {n, i}}
                assert codec.decode(codec.encode(value)) == value
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_set_encoding_is_deterministic_whatever_the_insertion_order() -> None:
    first, second = {8, 16}, {16, 8}
    assert list(first) != list(second)  # same set, different iteration order
    codec = Codec()
    assert codec.encode_member(frozenset(first)) == codec.encode_member(frozenset(second))
    assert codec.encode(first) == codec.encode(second)
    assert codec.encode_member(("x", frozenset(first))) == codec.encode_member(("x", frozenset(second)))


def test_optional_packages_are_not_imported_at_module_import() -> None:
    # The package __init__ is bypassed (an empty package object pointing at the source
    # directory), so only stratacache.serializers and what it imports are loaded.
    package_dir = os.path.dirname(sys.modules["stratacache.serializers"].__file__ or "")
    script = (
        "import sys, types\n"
        "pkg = types.ModuleType('stratacache')\n"
        f"pkg.__path__ = [{package_dir!r}]\n"
        "sys.modules['stratacache'] = pkg\n"
        "import stratacache.serializers\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'msgpack', 'orjson', 'lz4', 'zstandard', 'cryptography'})\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- json

JSON_MODES = [pytest.param(True, id="orjson"), pytest.param(False, id="stdlib")]


@pytest.mark.parametrize("use_orjson", JSON_MODES)
@HYPOTHESIS
@given(value=json_values)
def test_json_round_trips(use_orjson: bool, value: Any) -> None:
    ser = JsonSerializer(use_orjson=use_orjson)
    assert canon(ser.loads(ser.dumps(value))) == canon(value)


@pytest.mark.parametrize("use_orjson", JSON_MODES)
def test_json_implementation_is_the_requested_one(use_orjson: bool) -> None:
    assert JsonSerializer(use_orjson=use_orjson).implementation == ("orjson" if use_orjson else "json")


@pytest.mark.parametrize("use_orjson", JSON_MODES)
def test_json_writes_tuples_as_lists(use_orjson: bool) -> None:
    ser = JsonSerializer(use_orjson=use_orjson)
    assert ser.loads(ser.dumps({"t": (1, (2, 3))})) == {"t": [1, [2, 3]]}


@pytest.mark.parametrize("use_orjson", JSON_MODES)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, math.nan], {"x": {"y": math.inf}}])
def test_json_refuses_nan_and_infinity(use_orjson: bool, value: Any) -> None:
    with pytest.raises(SerializationError, match="float"):
        JsonSerializer(use_orjson=use_orjson).dumps(value)


@pytest.mark.parametrize("use_orjson", JSON_MODES)
@pytest.mark.parametrize(("value", "type_name"), [({1: "a"}, "int"), ({"a": {(1, 2): 3}}, "tuple")])
def test_json_refuses_non_str_keys(use_orjson: bool, value: Any, type_name: str) -> None:
    with pytest.raises(SerializationError, match=f"keys must be str, not '{type_name}'"):
        JsonSerializer(use_orjson=use_orjson).dumps(value)


@pytest.mark.parametrize("use_orjson", JSON_MODES)
@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (uuid.UUID(int=1), "uuid.UUID"),
        (datetime(2020, 1, 1), "datetime.datetime"),
        (Color.RED, "Color"),
        ({1, 2}, "set"),
        (b"x", "bytes"),
        ([Opaque()], "Opaque"),
        (Decimal("1"), "decimal.Decimal"),
    ],
)
def test_json_refuses_other_types_naming_them(use_orjson: bool, value: Any, type_name: str) -> None:
    with pytest.raises(SerializationError, match=type_name):
        JsonSerializer(use_orjson=use_orjson).dumps(value)


@pytest.mark.parametrize("use_orjson", JSON_MODES)
def test_json_int_range(use_orjson: bool) -> None:
    ser = JsonSerializer(use_orjson=use_orjson)
    assert ser.loads(ser.dumps([2**64 - 1, -(2**63)])) == [2**64 - 1, -(2**63)]
    with pytest.raises(SerializationError, match="64-bit"):
        ser.dumps([2**64])


@pytest.mark.parametrize("use_orjson", JSON_MODES)
def test_json_lone_surrogate_and_bad_input_raise_serialization_error(use_orjson: bool) -> None:
    ser = JsonSerializer(use_orjson=use_orjson)
    with pytest.raises(SerializationError, match="str"):
        ser.dumps("\ud800")
    for data in (b"{", b"\xff", b"NaN", b"[1,]"):
        with pytest.raises(SerializationError, match="JSON") as info:
            ser.loads(data)
        assert info.value.__cause__ is not None


@pytest.mark.parametrize("use_orjson", JSON_MODES)
def test_json_depth_and_cycles(use_orjson: bool) -> None:
    ser = JsonSerializer(use_orjson=use_orjson)
    deep: list[Any] = []
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    assert ser.loads(ser.dumps(deep)) == deep
    with pytest.raises(SerializationError, match=f"nested deeper than {MAX_DEPTH} levels"):
        ser.dumps([deep])
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(SerializationError, match="cyclic"):
        ser.dumps(cyclic)


def test_json_codec_round_trip_and_header() -> None:
    codec = Codec("json")
    data = codec.encode({"a": [1, "x", None, 2.5]})
    assert data[:4] == header(2)
    assert json.loads(data[4:]) == {"a": [1, "x", None, 2.5]}
    assert codec.decode(data) == {"a": [1, "x", None, 2.5]}
    assert codec.encode(7) == b"7"


def test_codec_reads_other_formats_than_the_one_it_writes() -> None:
    as_json = Codec("json").encode({"a": 1})
    as_msgpack = Codec().encode({"b": (1,)})
    assert Codec().decode(as_json) == {"a": 1}
    assert Codec("json").decode(as_msgpack) == {"b": (1,)}


def test_json_without_orjson_falls_back_or_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # makes `import orjson` fail
    assert JsonSerializer().implementation == "json"
    with pytest.raises(ConfigurationError, match=r"pip install 'stratacache\[json\]'") as info:
        JsonSerializer(use_orjson=True)
    assert isinstance(info.value.__cause__, ImportError)


# --------------------------------------------------------------------------- ints


@pytest.mark.parametrize("serializer", ["msgpack", "json", "pickle"])
def test_ints_are_plain_ascii_decimal_for_every_serializer(serializer: str) -> None:
    codec = Codec(serializer, signing_key="k")
    assert codec.encode(5) == b"5"
    assert codec.encode(-3) == b"-3"
    assert codec.encode(0) == b"0"
    assert codec.decode(b"5") == 5
    assert codec.decode(b"-3") == -3
    assert type(codec.decode(b"42")) is int


def test_ints_are_plain_even_with_compression_and_encryption() -> None:
    codec = Codec(compression="zlib", compression_threshold=0, encryption_keys=[K32])
    assert codec.encode(123456789) == b"123456789"
    assert codec.decode(b"123456789") == 123456789


def test_counter_written_by_incrby_reads_back_as_int() -> None:
    # What Redis returns for a key created by INCRBY 10 then DECRBY 25.
    assert Codec(encryption_keys=[K16]).decode(b"-15") == -15


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_encoded_as_int(value: bool) -> None:
    codec = Codec()
    data = codec.encode(value)
    assert data[0] == MAGIC
    assert data not in (b"0", b"1")
    back = codec.decode(data)
    assert back is value


def test_int_subclass_is_not_encoded_as_plain_int() -> None:
    assert Codec("pickle", signing_key="k").encode(Color.RED)[0] == MAGIC


@pytest.mark.parametrize(
    ("value", "plain"),
    [(2**63 - 1, True), (-(2**63), True), (2**63, False), (-(2**63) - 1, False), (2**300, False)],
)
def test_int_boundaries(value: int, plain: bool) -> None:
    codec = Codec()
    data = codec.encode(value)
    if plain:
        assert data == str(value).encode()
    else:
        assert data[:4] == header(1)
    back = codec.decode(data)
    assert back == value
    assert type(back) is int


@pytest.mark.parametrize("data", [b"12a", b"-", b"1_000", b"12 ", b"--1", b"1.5", b"-\xff"])
def test_invalid_integer_bytes_raise(data: bytes) -> None:
    with pytest.raises(SerializationError, match=r"integer.*\(key 'n'\)"):
        Codec().decode(data, key="n")


def test_encode_member_plain_ints_too() -> None:
    codec = Codec()
    assert codec.encode_member(5) == b"5"
    assert codec.decode_member(b"5") == 5


# --------------------------------------------------------------------------- pickle

UNPICKLED: list[str] = []


def _record_unpickling(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Tripwire:
    """Unpickling this appends to UNPICKLED: proof of whether bytes were unpickled."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_record_unpickling, ("tripwire",))


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


@pytest.fixture
def tripwire() -> bytes:
    UNPICKLED.clear()
    return PickleSerializer(b"right key").dumps(Tripwire())


def test_tripwire_fires_when_signature_is_valid(tripwire: bytes) -> None:
    # Positive control: the payload really does run code when unpickled.
    assert PickleSerializer(b"right key").loads(tripwire) == "tripwire"
    assert UNPICKLED == ["tripwire"]


def test_pickle_round_trip_with_bytes_and_str_keys() -> None:
    for key in (b"secret", "secret", "clé"):
        ser = PickleSerializer(key)
        assert ser.loads(ser.dumps(Point(1, 2))) == Point(1, 2)
    assert PickleSerializer("secret").dumps(1) == PickleSerializer(b"secret").dumps(1)


def test_pickle_layout_is_hmac_sha256_then_pickle() -> None:
    data = PickleSerializer(b"k").dumps({"a": 1})
    body = pickle.dumps({"a": 1}, protocol=5)
    assert data[32:] == body
    assert data[:32] == hmac.new(b"k", body, "sha256").digest()


def test_pickle_codec_round_trip() -> None:
    codec = Codec("pickle", signing_key="s3cret")
    data = codec.encode(Point(3, 4))
    assert data[:4] == header(3, version=BOUND_VERSION)
    assert codec.decode(data) == Point(3, 4)


def test_tampered_pickle_payload_is_never_unpickled(tripwire: bytes) -> None:
    tampered = tripwire[:-1] + bytes([tripwire[-1] ^ 1])
    with pytest.raises(SerializationError, match="signature"):
        PickleSerializer(b"right key").loads(tampered)
    assert UNPICKLED == []


def test_tampered_signature_is_never_unpickled(tripwire: bytes) -> None:
    tampered = bytes([tripwire[0] ^ 1]) + tripwire[1:]
    with pytest.raises(SerializationError, match="signature"):
        PickleSerializer(b"right key").loads(tampered)
    assert UNPICKLED == []


def test_wrong_key_is_never_unpickled(tripwire: bytes) -> None:
    with pytest.raises(SerializationError, match="signature"):
        PickleSerializer(b"wrong key").loads(tripwire)
    assert UNPICKLED == []


def test_absent_or_short_signature_is_never_unpickled(tripwire: bytes) -> None:
    unsigned = tripwire[32:]
    ser = PickleSerializer(b"right key")
    for data in (unsigned, unsigned[:31], b""):
        with pytest.raises(SerializationError):
            ser.loads(data)
    assert UNPICKLED == []


def test_pickle_format_without_signing_key_is_never_unpickled(tripwire: bytes) -> None:
    stored = Codec("pickle", signing_key=b"right key").encode(Tripwire())
    with pytest.raises(SerializationError, match="no signing_key") as info:
        Codec().decode(stored, key="evil")
    assert "'evil'" in str(info.value)
    with pytest.raises(SerializationError):
        Codec("json").decode(stored)
    assert UNPICKLED == []


def test_pickle_format_in_codec_with_wrong_key_is_never_unpickled() -> None:
    UNPICKLED.clear()
    stored = Codec("pickle", signing_key=b"right key").encode(Tripwire())
    with pytest.raises(SerializationError, match="signature"):
        Codec("pickle", signing_key=b"other key").decode(stored)
    assert UNPICKLED == []


def test_msgpack_codec_with_signing_key_reads_pickle_values() -> None:
    stored = Codec("pickle", signing_key="k").encode(Point(5, 6))
    assert Codec("msgpack", signing_key="k").decode(stored) == Point(5, 6)


def test_pickle_unpicklable_value_names_type_and_key() -> None:
    with pytest.raises(SerializationError, match="function") as info:
        Codec("pickle", signing_key="k").encode(lambda: None, key="fn")
    assert "'fn'" in str(info.value)
    assert info.value.__cause__ is not None


def test_pickle_signed_but_broken_payload_raises_serialization_error() -> None:
    body = b"\x80\x05not a pickle"
    data = hmac.new(b"k", body, "sha256").digest() + body
    with pytest.raises(SerializationError, match="unpickle"):
        PickleSerializer(b"k").loads(data)


def test_pickle_repr_hides_the_key() -> None:
    assert "topsecret" not in repr(PickleSerializer("topsecret"))


# --------------------------------------------------------------------------- compression

COMPRESSIONS = [("zlib", 1), ("lz4", 2), ("zstd", 3)]
COMPRESSIBLE = {"text": "stratacache " * 500, "n": list(range(100))}


def uncompressed_size(value: Any) -> int:
    return len(Codec().encode(value))


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_compression_round_trips_and_sets_flag(name: str, flag: int) -> None:
    codec = Codec(compression=name, compression_threshold=100)
    data = codec.encode(COMPRESSIBLE)
    assert data[:4] == header(1, flag)
    assert len(data) < uncompressed_size(COMPRESSIBLE)
    assert codec.decode(data) == COMPRESSIBLE
    # Any codec reads it, whatever its own compression setting.
    assert Codec().decode(data) == COMPRESSIBLE


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_compression_level_is_used(name: str, flag: int) -> None:
    level = {"zlib": 9, "lz4": 12, "zstd": 19}[name]
    codec = Codec(compression=name, compression_threshold=0, compression_level=level)
    data = codec.encode(COMPRESSIBLE)
    assert data[3] == flag
    assert codec.decode(data) == COMPRESSIBLE


def test_below_threshold_is_not_compressed() -> None:
    codec = Codec(compression="zlib", compression_threshold=10_000)
    data = codec.encode(COMPRESSIBLE)
    assert len(data) < 10_000
    assert data[3] == 0
    assert data == Codec().encode(COMPRESSIBLE)


def test_threshold_is_inclusive() -> None:
    value = "a" * 200
    size = len(MsgpackSerializer().dumps(value))
    assert Codec(compression="zlib", compression_threshold=size).encode(value)[3] == 1
    assert Codec(compression="zlib", compression_threshold=size + 1).encode(value)[3] == 0


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_incompressible_value_above_threshold_stays_uncompressed(name: str, flag: int) -> None:
    value = os.urandom(5000)
    codec = Codec(compression=name, compression_threshold=10)
    data = codec.encode(value)
    assert data[3] == 0
    assert data == Codec().encode(value)
    assert codec.decode(data) == value


def test_members_are_never_compressed() -> None:
    codec = Codec(compression="zlib", compression_threshold=0)
    data = codec.encode_member(COMPRESSIBLE)
    assert data[3] == 0
    assert codec.decode_member(data) == COMPRESSIBLE


def _corrupt_middle(data: bytes) -> bytes:
    mid = 4 + (len(data) - 4) // 2
    return data[:mid] + bytes([data[mid] ^ 0x55]) + data[mid + 1 :]


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_corrupt_compressed_payload_raises_serialization_error(name: str, flag: int) -> None:
    codec = Codec(compression=name, compression_threshold=0)
    data = codec.encode(COMPRESSIBLE)
    for broken in (_corrupt_middle(data), data[:-5], data[:6], data[:4] + b"garbage!" * 4):
        with pytest.raises(SerializationError, match=rf"{name}.*\(key 'c'\)"):
            codec.decode(broken, key="c")


def test_zlib_trailing_garbage_is_refused() -> None:
    codec = Codec(compression="zlib", compression_threshold=0)
    with pytest.raises(SerializationError, match="trailing"):
        codec.decode(codec.encode(COMPRESSIBLE) + b"junk")


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_decompression_is_bounded(name: str, flag: int) -> None:
    value = b"\x00" * 200_000
    data = Codec(compression=name, compression_threshold=0).encode(value)
    assert data[3] == flag
    small = Codec(max_decompressed_size=100_000)
    with pytest.raises(SerializationError, match="max_decompressed_size"):
        small.decode(data)
    assert Codec(max_decompressed_size=300_000).decode(data) == value


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_large_values_round_trip_through_the_bounded_path(name: str, flag: int) -> None:
    # A 4 kB random block repeated: compresses well, but to more than limit // 256 bytes,
    # so the lz4 reader takes its streaming (bounded) path rather than the one-shot one.
    value = os.urandom(4000) * 50
    codec = Codec(compression=name, compression_threshold=0, max_decompressed_size=500_000)
    data = codec.encode(value)
    assert data[3] == flag
    assert 500_000 // 256 < len(data) < len(value)
    assert codec.decode(data) == value


def test_zlib_stream_without_end_is_refused() -> None:
    compressor = zlib.compressobj()
    partial = compressor.compress(MsgpackSerializer().dumps("x" * 5000)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(SerializationError, match="truncated"):
        Codec().decode(header(1, 1) + partial)


# --------------------------------------------------------------------------- encryption


def test_encryption_round_trip_and_layout() -> None:
    codec = Codec(encryption_keys=[K32])
    plain = Codec().encode({"secret": "hunter2"})
    data = codec.encode({"secret": "hunter2"})
    assert data[:4] == header(1, 0x04, version=BOUND_VERSION)
    assert data[4:8] == key_id(K32)
    assert len(data) == 4 + 4 + 12 + (len(plain) - 4) + 16
    assert b"hunter2" not in data
    assert codec.decode(data) == {"secret": "hunter2"}
    assert codec.encode({"secret": "hunter2"}) != data  # fresh nonce every time


@pytest.mark.parametrize("key", [K16, K24, K32, bytearray(K32)])
def test_every_aes_key_size_works(key: bytes) -> None:
    codec = Codec(encryption_keys=[key])
    assert codec.decode(codec.encode("x")) == "x"


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_encryption_with_compression(name: str, flag: int) -> None:
    codec = Codec(compression=name, compression_threshold=0, encryption_keys=[K16])
    data = codec.encode(COMPRESSIBLE)
    assert data[3] == 0x04 | flag
    assert len(data) < uncompressed_size(COMPRESSIBLE)
    assert codec.decode(data) == COMPRESSIBLE


@pytest.mark.parametrize(
    "text_key",
    [
        base64.urlsafe_b64encode(K32).decode(),
        base64.b64encode(K32).decode(),
        base64.urlsafe_b64encode(K32).decode().rstrip("="),
    ],
)
def test_str_keys_are_base64(text_key: str) -> None:
    data = Codec(encryption_keys=[text_key]).encode("v")
    assert data[4:8] == key_id(K32)
    assert Codec(encryption_keys=[K32]).decode(data) == "v"


def test_key_rotation() -> None:
    old = Codec(encryption_keys=[K32]).encode(["old"])
    rotated = Codec(encryption_keys=[K32B, K32])
    assert rotated.decode(old) == ["old"]
    new = rotated.encode(["new"])
    assert new[4:8] == key_id(K32B)
    assert Codec(encryption_keys=[K32B]).decode(new) == ["new"]
    with pytest.raises(SerializationError, match="not in encryption_keys"):
        Codec(encryption_keys=[K32]).decode(new)


def test_unknown_key_id() -> None:
    data = Codec(encryption_keys=[K32]).encode("x")
    with pytest.raises(SerializationError, match="encrypted with a key that is not in encryption_keys"):
        Codec(encryption_keys=[K16]).decode(data, key="k")


def test_same_key_id_different_key_fails_authentication() -> None:
    data = Codec(encryption_keys=[K32]).encode("x")
    forged = data[:4] + key_id(K16) + data[8:]
    with pytest.raises(SerializationError, match="authentication") as info:
        Codec(encryption_keys=[K16]).decode(forged)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("offset", [8, 15, 20, -1, -16])
def test_tampered_ciphertext_nonce_or_tag(offset: int) -> None:
    codec = Codec(encryption_keys=[K32])
    data = bytearray(codec.encode({"a": 1}))
    data[offset] ^= 0x01
    with pytest.raises(SerializationError, match="authentication"):
        codec.decode(bytes(data))


@pytest.mark.parametrize(
    "new_header",
    [
        header(2, 0x04, version=BOUND_VERSION),  # format flipped: would be read as JSON
        header(1, 0x05, version=BOUND_VERSION),  # compression flag set: would be decompressed
        header(3, 0x04, version=BOUND_VERSION),  # pickle
    ],
)
def test_tampered_header_under_encryption_is_detected(new_header: bytes) -> None:
    codec = Codec(encryption_keys=[K32], signing_key="k")
    data = codec.encode({"a": 1})
    with pytest.raises(SerializationError, match="authentication"):
        codec.decode(new_header + data[4:])


def test_truncated_encrypted_value() -> None:
    codec = Codec(encryption_keys=[K32])
    with pytest.raises(SerializationError, match="truncated"):
        codec.decode(codec.encode("x")[:30])


def test_encrypted_value_without_keys() -> None:
    data = Codec(encryption_keys=[K32]).encode("x")
    with pytest.raises(SerializationError, match="no encryption_keys"):
        Codec().decode(data)


def test_encrypting_codec_refuses_unencrypted_values() -> None:
    plain = Codec().encode("injected")
    with pytest.raises(SerializationError, match="not encrypted"):
        Codec(encryption_keys=[K32]).decode(plain)


def test_members_are_deterministic_and_unencrypted_under_encryption() -> None:
    codec = Codec(encryption_keys=[K32])
    member = codec.encode_member(("a", 1))
    assert member == codec.encode_member(("a", 1))
    assert member == Codec().encode_member(("a", 1))
    assert member[3] == 0
    assert codec.decode_member(member) == ("a", 1)


# --------------------------------------------------------------------------- header


@pytest.mark.parametrize("data", [b"hello", b"\x00\x01\x01\x00", b"\x82\xa1a\x01", b"{}"])
def test_wrong_magic(data: bytes) -> None:
    with pytest.raises(SerializationError, match=r"not stratacache data.*\(key 'x'\)"):
        Codec().decode(data, key="x")


def test_newer_version() -> None:
    with pytest.raises(SerializationError, match="newer stratacache"):
        Codec().decode(header(1, version=BOUND_VERSION + 1) + b"\xc0")


def test_version_zero_is_invalid() -> None:
    with pytest.raises(SerializationError, match="version 0"):
        Codec().decode(header(1, version=0) + b"\xc0")


@pytest.mark.parametrize("fmt", [0, 4, 99, 255])
def test_unknown_format(fmt: int) -> None:
    with pytest.raises(SerializationError, match=f"format id {fmt}"):
        Codec().decode(header(fmt) + b"\xc0")


@pytest.mark.parametrize("flags", [0x10, 0x20, 0x80, 0xFF])
def test_unknown_flags(flags: int) -> None:
    with pytest.raises(SerializationError, match="unknown flags"):
        Codec().decode(header(1, flags) + b"\xc0")


@pytest.mark.parametrize("data", [b"", b"\xfe", b"\xfe\x01", b"\xfe\x01\x01"])
def test_empty_or_truncated_header(data: bytes) -> None:
    with pytest.raises(SerializationError):
        Codec().decode(data)


def test_decode_accepts_bytearray_and_memoryview_but_not_str() -> None:
    data = Codec().encode(["x"])
    assert Codec().decode(bytearray(data)) == ["x"]  # type: ignore[arg-type]
    assert Codec().decode(memoryview(data)) == ["x"]  # type: ignore[arg-type]
    assert Codec().decode(memoryview(bytearray(data))) == ["x"]  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="str"):
        Codec().decode("\xfe\x01\x01\x00")  # type: ignore[arg-type]


def test_header_layout() -> None:
    assert Codec().encode("x") == bytes([0xFE, 0x01, 0x01, 0x00]) + b"\xa1x"


@HYPOTHESIS
@given(
    fmt=st.sampled_from([1, 2, 3]),
    flags=st.integers(0, 7),
    body=st.binary(max_size=200),
    encrypted=st.booleans(),
)
def test_arbitrary_bytes_never_leak_library_exceptions(
    fmt: int, flags: int, body: bytes, encrypted: bool
) -> None:
    codec = Codec(signing_key="k", encryption_keys=[K32] if encrypted else None)
    for data in (header(fmt, flags) + body, body):
        # Returning a value or raising SerializationError are the only acceptable outcomes.
        with contextlib.suppress(SerializationError):
            codec.decode(data)
        with contextlib.suppress(SerializationError):
            codec.decode_member(data)


# --------------------------------------------------------------------------- raw


def test_raw_stores_bytes_as_given() -> None:
    codec = Codec("raw")
    assert codec.encode(b"abc") == b"abc"
    assert codec.encode(bytearray(b"ab")) == b"ab"
    assert type(codec.encode(bytearray(b"ab"))) is bytes
    assert codec.encode(memoryview(b"mv")) == b"mv"
    assert codec.encode(b"\xfe\x01\x01\x00") == b"\xfe\x01\x01\x00"
    assert codec.encode(12) == b"12"
    assert codec.encode(-(2**70)) == str(-(2**70)).encode()


def test_raw_decode_returns_bytes_unchanged() -> None:
    codec = Codec("raw", signing_key="k")
    for data in (b"123", b"-5", b"", b"\xfe\x01\x01\x00\xc0", Codec("pickle", signing_key="k").encode([1])):
        back = codec.decode(data)
        assert back == data
        assert type(back) is bytes
    assert codec.decode(bytearray(b"12")) == b"12"  # type: ignore[arg-type]


def test_raw_members() -> None:
    codec = Codec("raw")
    assert codec.encode_member(b"m") == b"m"
    assert codec.decode_member(b"7") == b"7"


@pytest.mark.parametrize(
    ("value", "type_name"), [("text", "str"), (True, "bool"), (1.5, "float"), (None, "NoneType")]
)
def test_raw_refuses_other_types(value: Any, type_name: str) -> None:
    with pytest.raises(SerializationError, match=type_name) as info:
        Codec("raw").encode(value, key="rk")
    assert "'rk'" in str(info.value)
    with pytest.raises(SerializationError, match=type_name):
        RawSerializer().dumps(value)


def test_raw_serializer_directly() -> None:
    ser = RawSerializer()
    assert ser.dumps(b"x") == b"x"
    assert ser.dumps(5) == b"5"
    assert ser.loads(b"5") == b"5"
    assert ser.loads(bytearray(b"5")) == b"5"  # type: ignore[arg-type]
    assert ser.format_id == 0
    assert ser.name == "raw"


@pytest.mark.parametrize(
    "kwargs",
    [{"compression": "zlib"}, {"encryption_keys": [K32]}, {"compression": "lz4", "encryption_keys": [K16]}],
)
def test_raw_with_compression_or_encryption_is_a_configuration_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="raw"):
        Codec("raw", **kwargs)


# --------------------------------------------------------------------------- get_serializer / config


def test_get_serializer_names() -> None:
    assert isinstance(get_serializer("msgpack"), MsgpackSerializer)
    assert isinstance(get_serializer("json"), JsonSerializer)
    assert isinstance(get_serializer("raw"), RawSerializer)
    assert isinstance(get_serializer("pickle", signing_key="k"), PickleSerializer)
    assert isinstance(get_serializer("MsgPack"), MsgpackSerializer)
    for name, fid in (("msgpack", 1), ("json", 2), ("pickle", 3), ("raw", 0)):
        ser = get_serializer(name, signing_key="k")
        assert (ser.name, ser.format_id) == (name, fid)
        assert isinstance(ser, Serializer)


def test_get_serializer_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigurationError, match="'yaml'") as info:
        get_serializer("yaml")
    for name in ("msgpack", "json", "pickle", "raw"):
        assert name in str(info.value)


def test_get_serializer_pickle_needs_signing_key() -> None:
    with pytest.raises(ConfigurationError, match="signing_key"):
        get_serializer("pickle")
    with pytest.raises(ConfigurationError, match="signing_key"):
        Codec("pickle")


@pytest.mark.parametrize("key", [b"", ""])
def test_empty_signing_key(key: bytes | str) -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        PickleSerializer(key)
    with pytest.raises(ConfigurationError, match="empty"):
        Codec("pickle", signing_key=key)
    with pytest.raises(ConfigurationError, match="empty"):
        Codec(signing_key=key)


def test_signing_key_of_wrong_type() -> None:
    with pytest.raises(ConfigurationError, match="int"):
        PickleSerializer(123)  # type: ignore[arg-type]


class Rot13Serializer:
    """A custom serializer with its own format id."""

    name = "rot13"
    format_id = 42

    def dumps(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"rot13 wants str, got {type(value).__name__}")
        return value.translate(str.maketrans("abc", "nop")).encode()

    def loads(self, data: bytes) -> Any:
        if data == b"boom":
            raise ValueError("boom")
        return data.decode().translate(str.maketrans("nop", "abc"))


def test_custom_serializer_is_used_as_is() -> None:
    custom = Rot13Serializer()
    assert get_serializer(custom) is custom
    codec = Codec(custom)
    assert codec.serializer is custom
    data = codec.encode("abc")
    assert data == header(42) + b"nop"
    assert codec.decode(data) == "abc"
    assert codec.decode(Codec().encode([1])) == [1]  # msgpack stays readable


def test_custom_serializer_exceptions_become_serialization_errors() -> None:
    codec = Codec(Rot13Serializer())
    with pytest.raises(SerializationError, match=r"float.*'c1'") as info:
        codec.encode(1.5, key="c1")
    assert isinstance(info.value.__cause__, TypeError)
    with pytest.raises(SerializationError, match="boom") as info:
        codec.decode(header(42) + b"boom", key="c2")
    assert isinstance(info.value.__cause__, ValueError)
    assert "'c2'" in str(info.value)


def test_custom_serializer_returning_non_bytes() -> None:
    class Bad(Rot13Serializer):
        def dumps(self, value: Any) -> bytes:
            return value  # type: ignore[no-any-return]

    with pytest.raises(SerializationError, match="not bytes"):
        Codec(Bad()).encode("x")


@pytest.mark.parametrize("format_id", [-1, 256, "1", None, 3])
def test_custom_serializer_bad_format_id(format_id: Any) -> None:
    custom = Rot13Serializer()
    custom.format_id = format_id
    with pytest.raises(ConfigurationError, match="format_id"):
        Codec(custom)


@pytest.mark.parametrize("bad", [MsgpackSerializer, object(), 42])
def test_get_serializer_rejects_non_serializers(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        get_serializer(bad)


@pytest.mark.parametrize("compression", ["gzip", "ZLIB", "", 1])
def test_unknown_compression(compression: Any) -> None:
    with pytest.raises(ConfigurationError, match="compression"):
        Codec(compression=compression)


@pytest.mark.parametrize("threshold", [-1, 1.5, None, True])
def test_bad_compression_threshold(threshold: Any) -> None:
    with pytest.raises(ConfigurationError, match="compression_threshold"):
        Codec(compression="zlib", compression_threshold=threshold)


@pytest.mark.parametrize(("name", "level"), [("zlib", 42), ("zlib", "9"), ("zstd", 10_000), ("lz4", 1.5)])
def test_bad_compression_level(name: str, level: Any) -> None:
    with pytest.raises(ConfigurationError, match="compression_level"):
        Codec(compression=name, compression_level=level)


@pytest.mark.parametrize("size", [0, -5, 1.5])
def test_bad_max_decompressed_size(size: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_decompressed_size"):
        Codec(max_decompressed_size=size)


@pytest.mark.parametrize(
    ("module", "compression"), [("lz4.frame", "lz4"), ("zstandard", "zstd")], ids=["lz4", "zstd"]
)
def test_missing_compression_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, compression: str
) -> None:
    stored = Codec(compression=compression, compression_threshold=0).encode(COMPRESSIBLE)
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(ConfigurationError, match=r"pip install 'stratacache\[compression\]'") as info:
        Codec(compression=compression)
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(ConfigurationError, match=r"stratacache\[compression\]"):
        Codec().decode(stored)


def test_missing_cryptography_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'stratacache\[crypto\]'") as info:
        Codec(encryption_keys=[K32])
    assert isinstance(info.value.__cause__, ImportError)


SECRET_TEXT = "c2VjcmV0LWJ1dC13cm9uZy1sZW5ndGg"  # base64 of 23 bytes


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ([b"short"], "5 bytes"),
        ([K32, b"x" * 31], r"encryption_keys\[1\] is 31 bytes"),
        ([SECRET_TEXT], "base64"),
        (["not base64 at all!"], "base64"),
        (["", K32], "base64"),
        ([12345], "int"),
        ([], "at least one"),
        (K32, "list"),
        (base64.b64encode(K32).decode(), "list"),
    ],
)
def test_bad_encryption_keys(keys: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        Codec(encryption_keys=keys)
    message = str(info.value)
    assert SECRET_TEXT not in message
    assert "short" not in message
    assert repr(K32) not in message


# --------------------------------------------------------------------------- messages


def test_serialization_error_names_type_and_key_and_chains_cause() -> None:
    with pytest.raises(SerializationError) as info:
        Codec("json").encode({"when": datetime(2020, 1, 1)}, key="report:7")
    assert "datetime.datetime" in str(info.value)
    assert "'report:7'" in str(info.value)
    with pytest.raises(SerializationError) as info:
        Codec().decode(header(1) + b"\xc1", key="k9")
    assert "'k9'" in str(info.value)
    cause = info.value.__cause__
    while isinstance(cause, SerializationError) and cause.__cause__ is not None:
        cause = cause.__cause__
    assert cause is not None
    assert not isinstance(cause, SerializationError)


def test_error_without_key_has_no_key_suffix() -> None:
    with pytest.raises(SerializationError) as info:
        Codec().encode(Opaque())
    assert "key" not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2000, 1, 1, tzinfo=timezone(timedelta(microseconds=1))),
        datetime(2000, 1, 1, 12, tzinfo=timezone(-timedelta(hours=3, seconds=7))),
        time(1, 2, 3, 4, tzinfo=timezone(timedelta(microseconds=-1))),
    ],
    ids=repr,
)
def test_sub_second_utc_offsets_survive(value: Any) -> None:
    # Regression: Python 3.11's fromisoformat drops an offset's sub-second part.
    back = Codec().decode(Codec().encode(value))
    assert back == value
    assert back.utcoffset() == value.utcoffset()


# --------------------------------------------------------------------------- nesting depth


def nested_tuple(levels: int) -> Any:
    """``levels`` tuples, each holding the next (the innermost is empty)."""
    value: Any = ()
    for _ in range(levels - 1):
        value = (value,)
    return value


def planted_deep_tuple(levels: int) -> bytes:
    """The msgpack bytes of :func:`nested_tuple`, built by hand (as a hostile writer would)."""
    payload = b"\x90"  # an empty array: the innermost tuple's items
    for _ in range(levels - 1):
        payload = b"\x91" + msgpack_ext(2, payload)
    return header(1) + msgpack_ext(2, payload)


def msgpack_ext(code: int, payload: bytes) -> bytes:
    import msgpack

    packed: bytes = msgpack.packb(msgpack.ExtType(code, payload))
    return packed


def run_isolated(code: str, *, pure_python: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: a crash there fails the test instead of killing pytest."""
    env = dict(os.environ)
    if pure_python:
        env["MSGPACK_PUREPYTHON"] = "1"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def assert_refused_in_child(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"reader died (rc {result.returncode}): {result.stderr[-2000:]}"
    assert "REFUSED SerializationError" in result.stdout, result.stdout + result.stderr[-2000:]
    assert f"{MAX_DEPTH} levels" in result.stdout


READ_PLANTED = """
import sys
from stratacache.serializers import Codec
from stratacache._exceptions import SerializationError
data = bytes.fromhex(sys.argv[1] if len(sys.argv) > 1 else {hex!r})
try:
    Codec({codec_args}).decode(data, "planted")
    print("DECODED")
except SerializationError as exc:
    print("REFUSED", type(exc).__name__, exc)
"""


@pytest.mark.parametrize("pure_python", [False, True], ids=["msgpack-c", "msgpack-pure-python"])
@pytest.mark.parametrize("levels", [250, 5000])
def test_planted_deep_value_is_refused_without_crashing(pure_python: bool, levels: int) -> None:
    data = planted_deep_tuple(levels)
    code = READ_PLANTED.format(hex=data.hex(), codec_args="")
    assert_refused_in_child(run_isolated(code, pure_python=pure_python))


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_planted_deep_value_is_refused_when_compressed_and_encrypted(name: str, flag: int) -> None:
    plain = planted_deep_tuple(300)
    compressed = {"zlib": zlib.compress, "lz4": _lz4_compress, "zstd": _zstd_compress}[name](plain[4:])
    aead = AESGCM(K32)
    nonce = bytes(12)
    head = header(1, flag | 0x04, version=BOUND_VERSION)
    data = head + key_id(K32) + nonce + aead.encrypt(nonce, compressed, head + b"planted")
    code = READ_PLANTED.format(hex=data.hex(), codec_args=f"encryption_keys=[{K32!r}]")
    assert_refused_in_child(run_isolated(code))


def _lz4_compress(data: bytes) -> bytes:
    import lz4.frame

    out: bytes = lz4.frame.compress(data)
    return out


def _zstd_compress(data: bytes) -> bytes:
    import zstandard

    out: bytes = zstandard.ZstdCompressor().compress(data)
    return out


def test_deepest_allowed_value_round_trips_and_one_more_is_refused_naming_key_and_limit() -> None:
    codec = Codec()
    deepest = nested_tuple(MAX_DEPTH)
    assert codec.decode(codec.encode(deepest, "k"), "k") == deepest
    assert codec.decode(planted_deep_tuple(MAX_DEPTH), "k") == deepest
    with pytest.raises(SerializationError, match=rf"deeper than {MAX_DEPTH} levels.*'k'"):
        codec.encode(nested_tuple(MAX_DEPTH + 1), "k")
    with pytest.raises(SerializationError, match=rf"deeper than {MAX_DEPTH} levels.*'k'"):
        codec.decode(planted_deep_tuple(MAX_DEPTH + 1), "k")


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda v: (v,), id="tuple"),
        pytest.param(lambda v: frozenset([v]), id="frozenset"),
        pytest.param(lambda v: ([{"k": v}],), id="tuple-list-dict"),
        pytest.param(lambda v: {frozenset([1]): ([v],), "x": (1,)}, id="dict"),
    ],
)
def test_write_refuses_values_nested_past_the_limit_below_any_crash(wrap: Any) -> None:
    # Lists between the extension containers count too: they multiply the C recursion.
    value: Any = (1,)
    for _ in range(400):
        value = wrap(value)
    code = f"""
from stratacache.serializers import Codec
from stratacache._exceptions import SerializationError
value = (1,)
wrap = {_source_of(wrap)}
for _ in range(400):
    value = wrap(value)
try:
    Codec().encode(value, "deep")
    print("ENCODED")
except SerializationError as exc:
    print("REFUSED", type(exc).__name__, exc)
"""
    assert_refused_in_child(run_isolated(code))
    with pytest.raises(SerializationError, match=f"{MAX_DEPTH} levels"):
        Codec().encode(value, "deep")


def _source_of(wrap: Any) -> str:
    import inspect

    source = inspect.getsource(wrap)
    return source[source.index("lambda") : source.index(", id=")]


@pytest.mark.parametrize("fmt", ["json", "pickle"])
def test_other_formats_refuse_or_survive_deep_values(fmt: str) -> None:
    codec = Codec(fmt, signing_key="s")
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(SerializationError, match="'k'"):
        codec.encode(deep, "k")
    # Planted deep JSON is refused by the parser itself (orjson's limit, or the stdlib's
    # recursion limit), as a SerializationError naming the key.
    with pytest.raises(SerializationError, match="'k'"):
        Codec("json").decode(header(2) + b"[" * 100_000 + b"]" * 100_000, "k")


def plant_and_read_in_child(url_or_kwargs: str, key: str, data: bytes) -> subprocess.CompletedProcess[str]:
    code = f"""
from stratacache import Cache
from stratacache._exceptions import SerializationError
kwargs = {url_or_kwargs}
writer = Cache(**kwargs, serializer="raw")
writer.set({key!r}, bytes.fromhex({data.hex()!r}))
reader = Cache(**kwargs)
try:
    reader.get({key!r})
    print("DECODED")
except SerializationError as exc:
    print("REFUSED", type(exc).__name__, exc)
"""
    return run_isolated(code)


def test_planted_deep_value_on_redis_is_refused(redis_server: Any) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("planted-deep", planted_deep_tuple(700))
    finally:
        client.close()
    code = f"""
from stratacache import Cache
from stratacache._exceptions import SerializationError
try:
    Cache({redis_server.url!r}).get("planted-deep")
    print("DECODED")
except SerializationError as exc:
    print("REFUSED", type(exc).__name__, exc)
"""
    assert_refused_in_child(run_isolated(code))


def test_planted_deep_value_on_memcached_is_refused(memcached_server: Any) -> None:
    kwargs = f"{{'backend': {memcached_server.url!r}}}"
    assert_refused_in_child(plant_and_read_in_child(kwargs, "planted-deep", planted_deep_tuple(700)))


def test_planted_deep_value_in_the_cache_directory_is_refused(tmp_path: Any) -> None:
    kwargs = f"{{'backend': 'file', 'directory': {str(tmp_path)!r}}}"
    assert_refused_in_child(plant_and_read_in_child(kwargs, "planted-deep", planted_deep_tuple(700)))


# --------------------------------------------------------------------------- values bound to keys

BOUND_CODECS = [
    pytest.param({"encryption_keys": [K32]}, id="aes-gcm"),
    pytest.param({"serializer": "pickle", "signing_key": "s3cret"}, id="signed-pickle"),
    pytest.param(
        {"serializer": "pickle", "signing_key": "s3cret", "encryption_keys": [K32], "compression": "zlib"},
        id="pickle-compressed-encrypted",
    ),
]


@pytest.mark.parametrize("kwargs", BOUND_CODECS)
def test_value_copied_to_another_key_is_refused(kwargs: dict[str, Any]) -> None:
    codec = Codec(**{"compression_threshold": 0, **kwargs})
    data = codec.encode({"role": "admin"}, "app:user:1")
    assert data[1] == BOUND_VERSION
    assert codec.decode(data, "app:user:1") == {"role": "admin"}
    for other in ("app:user:2", "app:user:1 ", "", None):
        with pytest.raises(SerializationError, match=r"copied from another key"):
            codec.decode(data, other)


def test_key_binding_is_length_prefixed() -> None:
    # Without the length prefix, key "ab" + pickle "c..." and key "a" + pickle "bc..." would
    # sign the same bytes.
    pickler = PickleSerializer("s")
    data = pickler.dumps_bound(1, b"ab")
    assert pickler.loads_bound(data, b"ab") == 1
    with pytest.raises(SerializationError, match="invalid signature"):
        pickler.loads_bound(data, b"a")


def test_signed_pickle_members_are_bound_to_their_set() -> None:
    codec = Codec("pickle", signing_key="s")
    member = codec.encode_member(Point(1, 2), "set:a")
    assert codec.encode_member(Point(1, 2), "set:a") == member  # still deterministic
    assert codec.decode_member(member, "set:a") == Point(1, 2)
    with pytest.raises(SerializationError, match="copied from another key"):
        codec.decode_member(member, "set:b")


def legacy_encrypted(value: Any) -> bytes:
    """An encrypted value as the release before key binding wrote it (version 1)."""
    head = header(1, 0x04)
    nonce = os.urandom(12)
    return head + key_id(K32) + nonce + AESGCM(K32).encrypt(nonce, Codec().encode(value)[4:], head)


def legacy_pickle(value: Any, signing_key: bytes = b"s3cret") -> bytes:
    pickled = pickle.dumps(value, protocol=5)
    return header(3) + hmac.digest(signing_key, pickled, "sha256") + pickled


@pytest.mark.parametrize(
    ("kwargs", "legacy"),
    [
        pytest.param({"encryption_keys": [K32]}, legacy_encrypted({"a": 1}), id="aes-gcm"),
        pytest.param({"serializer": "pickle", "signing_key": "s3cret"}, legacy_pickle({"a": 1}), id="pickle"),
        pytest.param({"signing_key": "s3cret"}, legacy_pickle({"a": 1}), id="msgpack-reading-pickle"),
    ],
)
def test_legacy_unbound_values_are_read_only_with_the_migration_option(
    kwargs: dict[str, Any], legacy: bytes
) -> None:
    with pytest.raises(SerializationError, match=r"accept_unbound_values.*'k'"):
        Codec(**kwargs).decode(legacy, "k")
    migrating = Codec(**kwargs, accept_unbound_values=True)
    assert migrating.decode(legacy, "k") == {"a": 1}
    # What a migrating codec writes is bound, and read by a codec without the option.
    assert Codec(**kwargs).decode(migrating.encode({"a": 2}, "k"), "k") == {"a": 2}


def test_migration_option_never_lets_a_bound_signature_pass_as_unbound() -> None:
    codec = Codec("pickle", signing_key="s3cret", accept_unbound_values=True)
    data = codec.encode(Point(1, 2), "k")
    downgraded = header(3) + data[4:]  # the version byte is not signed: try version 1
    with pytest.raises(SerializationError):
        codec.decode(downgraded, "k")


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_accept_unbound_values_must_be_a_bool(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="accept_unbound_values"):
        Codec(accept_unbound_values=bad)


def test_accept_unbound_values_is_a_cache_and_url_option() -> None:
    from stratacache import Cache

    legacy = legacy_pickle({"a": 1})
    for cache in (
        Cache("memory://?serializer=pickle&signing_key=s3cret&accept_unbound_values=true"),
        Cache("memory", serializer="pickle", signing_key="s3cret", accept_unbound_values=True),
    ):
        assert cache._codec is not None
        assert cache._codec.decode(legacy, "k") == {"a": 1}
    with pytest.raises(ConfigurationError, match="accept_unbound_values"):
        Cache("memory://?accept_unbound_values=maybe")


BOUND_CACHE_OPTIONS = [
    pytest.param({"encryption_keys": [K32]}, id="aes-gcm"),
    pytest.param({"serializer": "pickle", "signing_key": "s3cret"}, id="signed-pickle"),
]


def _copy_between_keys(writer: Any, raw: Any, reader: Any) -> None:
    writer.set("user:1", {"role": "admin"})
    writer.set("user:2", {"role": "guest"})
    raw.set("user:2", raw.get("user:1"))
    with pytest.raises(SerializationError, match=r"copied from another key.*user:2"):
        reader.get("user:2")
    assert reader.get("user:1") == {"role": "admin"}


@pytest.mark.parametrize("options", BOUND_CACHE_OPTIONS)
def test_copied_value_is_refused_on_memory(options: dict[str, Any]) -> None:
    from stratacache import Cache, MemoryBackend

    backend = MemoryBackend()
    cache = Cache(backend, **options)
    _copy_between_keys(cache, Cache(backend, serializer="raw"), cache)


@pytest.mark.parametrize("options", BOUND_CACHE_OPTIONS)
def test_copied_value_is_refused_on_file(options: dict[str, Any], tmp_path: Any) -> None:
    from stratacache import Cache

    cache = Cache("file", directory=str(tmp_path), namespace="app", **options)
    raw = Cache("file", directory=str(tmp_path), namespace="app", serializer="raw")
    try:
        _copy_between_keys(cache, raw, cache)
    finally:
        cache.close()
        raw.close()


@pytest.mark.parametrize("options", BOUND_CACHE_OPTIONS)
def test_copied_value_is_refused_on_redis(options: dict[str, Any], redis_server: Any) -> None:
    import redis

    from stratacache import Cache

    cache = Cache(redis_server.url, **options)
    client = redis.Redis.from_url(redis_server.url)
    try:
        cache.set("user:1", {"role": "admin"})
        client.set("user:2", client.get("user:1"))  # a raw copy, as anyone with access could make
        with pytest.raises(SerializationError, match=r"copied from another key.*user:2"):
            cache.get("user:2")
        assert cache.get("user:1") == {"role": "admin"}
        # A legacy value planted in redis is refused, and read with the migration option.
        client.set("old", legacy_pickle({"a": 1}) if "signing_key" in options else legacy_encrypted({"a": 1}))
        with pytest.raises(SerializationError, match="accept_unbound_values"):
            cache.get("old")
        migrating = Cache(redis_server.url, accept_unbound_values=True, **options)
        try:
            assert migrating.get("old") == {"a": 1}
        finally:
            migrating.close()
    finally:
        client.close()
        cache.close()


# --------------------------------------------------------------------------- decompression bombs


def zero_bomb(name: str, size: int) -> bytes:
    """``size`` zero bytes compressed by ``name``, streamed (zstd then states no content size)."""
    chunk = bytes(1 << 20)
    if name == "zlib":
        z = zlib.compressobj(1)
        return b"".join(z.compress(chunk) for _ in range(size >> 20)) + z.flush()
    if name == "lz4":
        import lz4.frame

        lz = lz4.frame.LZ4FrameCompressor()
        return lz.begin() + b"".join(lz.compress(chunk) for _ in range(size >> 20)) + lz.flush()
    import zstandard

    zs = zstandard.ZstdCompressor().compressobj()
    return b"".join(zs.compress(chunk) for _ in range(size >> 20)) + zs.flush()


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_bomb_is_refused_fast_and_in_bounded_memory(name: str, flag: int) -> None:
    import time as time_module
    import tracemalloc

    from stratacache.serializers import MAX_DECOMPRESSED_SIZE

    bomb = header(1, flag) + zero_bomb(name, 4 * MAX_DECOMPRESSED_SIZE)
    tracemalloc.start()
    try:
        started = time_module.perf_counter()
        with pytest.raises(SerializationError, match=rf"{name}.*beyond {MAX_DECOMPRESSED_SIZE} bytes.*'k'"):
            Codec().decode(bomb, "k")
        elapsed = time_module.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Streamed: output stops just past the cap (before: all of it, ~1 GiB for a 1 GiB bomb).
    assert peak < MAX_DECOMPRESSED_SIZE * 1.5, peak
    assert elapsed < 10, elapsed


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_streamed_decompression_round_trips_values_near_the_cap(name: str, flag: int) -> None:
    codec = Codec(compression=name, max_decompressed_size=3 << 20)
    value = os.urandom(1 << 20).hex().encode()  # 2 MiB, compressible, several chunks
    assert codec.decode(codec.encode(value, "k"), "k") == value
    bomb = header(1, flag) + zero_bomb(name, 4 << 20)
    with pytest.raises(SerializationError, match=r"beyond 3145728 bytes \(max_decompressed_size\)"):
        codec.decode(bomb, "k")


def test_zstd_and_lz4_declared_sizes_past_the_cap_are_refused_before_allocating() -> None:
    import lz4.frame
    import zstandard

    codec = Codec(max_decompressed_size=1 << 20)
    stated = zstandard.ZstdCompressor().compress(bytes(2 << 20))
    with pytest.raises(SerializationError, match=r"zstd.*beyond 1048576"):
        codec.decode(header(1, 3) + stated, "k")
    frame = bytearray(lz4.frame.compress(bytes(100), store_size=True))
    frame[6:14] = (1 << 40).to_bytes(8, "little")  # forged: claims 1 TiB
    with pytest.raises(SerializationError, match="'k'"):
        codec.decode(header(1, 2) + bytes(frame), "k")


@pytest.mark.parametrize(("name", "flag"), COMPRESSIONS)
def test_truncated_or_padded_streams_are_refused(name: str, flag: int) -> None:
    body = zero_bomb(name, 1 << 20)
    for data in (body[: len(body) // 2], body + b"\x00junk"):
        with pytest.raises(SerializationError, match="'k'"):
            Codec().decode(header(1, flag) + data, "k")


@pytest.mark.parametrize("pure_python", [False, True], ids=["msgpack-c", "msgpack-pure-python"])
def test_depth_limit_fits_a_small_thread_stack(pure_python: bool) -> None:
    # 512 KiB, far below the 8 MiB Linux default: values at the limit round-trip and deeper
    # ones are refused, in a thread that has little stack to spare.
    code = f"""
import threading
from stratacache.serializers import Codec
from stratacache._exceptions import SerializationError
threading.stack_size(512 * 1024)
def run():
    codec = Codec()
    deepest = ()
    for _ in range({MAX_DEPTH} - 1):
        deepest = (deepest,)
    assert codec.decode(codec.encode(deepest, "k"), "k") == deepest
    assert codec.decode(bytes.fromhex({planted_deep_tuple(MAX_DEPTH).hex()!r}), "k") == deepest
    for data in ({planted_deep_tuple(MAX_DEPTH + 1).hex()!r}, {planted_deep_tuple(3000).hex()!r}):
        try:
            codec.decode(bytes.fromhex(data), "k")
        except SerializationError as exc:
            print("REFUSED", type(exc).__name__, exc)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""
    result = run_isolated(code, pure_python=pure_python)
    assert_refused_in_child(result)
    assert result.stdout.count("REFUSED") == 2, result.stdout + result.stderr[-2000:]

"""Serializers and the value envelope (:class:`Codec`) used by every out-of-process backend.

A *serializer* turns one Python value into bytes and back (:class:`MsgpackSerializer`,
:class:`JsonSerializer`, :class:`PickleSerializer`, :class:`RawSerializer`, or any object
with ``dumps``/``loads``). The :class:`Codec` wraps a serializer with the envelope that
is actually written to a backend: plain integers, a versioned header, optional
compression and optional AES-GCM encryption.

Stored layout
-------------

* A 64-bit ``int`` (``type(value) is int``, not ``bool``, ``-2**63 <= value < 2**63``) is
  stored as its ASCII decimal (``5`` -> ``b"5"``), with no header, for every serializer.
  That is what Redis ``INCRBY`` and Memcached ``incr`` operate on, so counters work on
  values written by ``set(k, 5)`` and counters they create read back as ``int``.
  Consequently such integers are never compressed or encrypted.
* Every other value is ``header + payload``. The 4-byte header is::

      byte 0  MAGIC    0xFE (never an ASCII digit or "-", so it cannot look like an int)
      byte 1  VERSION  1 plain; 2 (BOUND_VERSION) bound to its key: encrypted or signed pickle
      byte 2  format   1 msgpack, 2 json, 3 pickle (a custom serializer's format_id)
      byte 3  flags    bits 0-1 compression: 0 none, 1 zlib, 2 lz4 (lz4.frame), 3 zstd;
                       bit 2 encrypted; bit 3 envelope (the payload is the serializer's
                       encoding of ``[value, tags, fresh_until, delta, created]``, see
                       :mod:`stratacache.core.envelope`); bits 4-7 must be 0

  When encrypted, the payload is ``key id (4) + nonce (12) + AES-GCM ciphertext+tag``,
  with the 4 header bytes and then the stored key (UTF-8) as associated data. A signed
  pickle's HMAC covers the key too (:meth:`PickleSerializer.dumps_bound`). Version-1
  encrypted or pickle values (written before key binding) are read only with
  ``accept_unbound_values``.
* With the raw serializer nothing is added: bytes are stored exactly as given.

Limits
------

Stored bytes are untrusted input: decoding only ever raises :class:`SerializationError`.
Extension containers (tuple, set, frozenset) nest at most :data:`MAX_DEPTH` levels, on write
(the outermost one's whole subtree is checked) and on read (each level is a nested unpack,
i.e. C recursion; ~250 levels overflowed the main thread's stack). JSON writes allow :data:`MAX_DEPTH`
levels too. Decompression streams and stops past ``max_decompressed_size``.

Types that round-trip through :class:`MsgpackSerializer`
-------------------------------------------------------

Only the exact types below are accepted; subclasses (``IntEnum``, ``OrderedDict``,
numpy scalars, pandas ``Timestamp`` ...) raise :class:`SerializationError`, because they
would silently come back as their base type.

====================================  ==================  ===========================
Python value                          msgpack encoding    read back as
====================================  ==================  ===========================
``None``, ``bool``                    native              same
``int`` in ``[-2**63, 2**64)``        native              ``int``
``int`` of any other size             ext 1               ``int``
``float`` (incl. nan, ±inf)           float64             ``float`` (bit-exact)
``str``                               str                 ``str``
``bytes``                             bin                 ``bytes``
``bytearray``, ``memoryview``         bin                 ``bytes`` (not the original type)
``list``                              array               ``list``
``dict`` (keys: any hashable here)    map                 ``dict`` (insertion order kept)
``tuple``                             ext 2               ``tuple`` (nested ones too)
``set``                               ext 3               ``set``
``frozenset``                         ext 4               ``frozenset``
``datetime.datetime``                 ext 5 (ISO 8601)    naive stays naive; aware keeps
                                                          its ``utcoffset()`` as a fixed
                                                          ``datetime.timezone`` (the
                                                          ``ZoneInfo``/tz name and ``fold``
                                                          are not kept); microseconds kept
``datetime.date``                     ext 6               ``date``
``datetime.time``                     ext 7 (ISO 8601)    like datetime; a time whose
                                                          tzinfo gives no ``utcoffset()``
                                                          (e.g. ``ZoneInfo``) reads back naive
``datetime.timedelta``                ext 8               ``timedelta``
``decimal.Decimal``                   ext 9               ``Decimal`` (exact, incl. NaN)
``uuid.UUID``                         ext 10              ``UUID``
``complex``                           ext 11              ``complex``
====================================  ==================  ===========================

Set and frozenset elements are written in sorted order of their encodings, so equal sets
always produce equal bytes (see :meth:`Codec.encode_member`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import pickle
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from ._exceptions import ConfigurationError, SerializationError
from .core.envelope import FLAG_ENVELOPE, Envelope, from_wire, to_wire

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "Codec",
    "JsonSerializer",
    "MAGIC",
    "BOUND_VERSION",
    "MAX_DECOMPRESSED_SIZE",
    "MAX_DEPTH",
    "MsgpackSerializer",
    "PickleSerializer",
    "RawSerializer",
    "Serializer",
    "VERSION",
    "get_serializer",
]

MAGIC: Final = 0xFE
"""First byte of every headered value."""

VERSION: Final = 1
"""Envelope version written by this release; higher versions are refused on read."""

BOUND_VERSION: Final = 2
"""Envelope version of values bound to their key: encrypted (the key is AES-GCM associated
data) or signed pickle (the key is in the HMAC input). Plain values keep :data:`VERSION`."""

MAX_DECOMPRESSED_SIZE: Final = 64 * 1024 * 1024
"""Default cap on a decompressed value, see :class:`Codec`: the decompressors stream and stop
as soon as their output passes it, so a compression bomb costs at most this much memory."""

MAX_DEPTH: Final = 100
"""Deepest nesting of containers accepted in a value (see the module docstring)."""

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1
_INT_FIRST_BYTES: Final = frozenset(b"-0123456789")

_FLAG_COMPRESSION_MASK: Final = 0x03
_FLAG_ENCRYPTED: Final = 0x04
# Bit 3 marks a value envelope (stratacache.core.envelope): tags and freshness metadata.
_FLAG_KNOWN: Final = _FLAG_COMPRESSION_MASK | _FLAG_ENCRYPTED | FLAG_ENVELOPE

_COMPRESSION_IDS: Final = {"zlib": 1, "lz4": 2, "zstd": 3}
_COMPRESSION_NAMES: Final = {v: k for k, v in _COMPRESSION_IDS.items()}

_AES_KEY_SIZES: Final = (16, 24, 32)
_KEY_ID_SIZE: Final = 4
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
_ENCRYPTED_MIN_SIZE: Final = 4 + _KEY_ID_SIZE + _NONCE_SIZE + _TAG_SIZE

_SIGNATURE_SIZE: Final = 32  # HMAC-SHA256 digest
# Pinned rather than HIGHEST_PROTOCOL: a newer Python writing protocol 6 would make values
# unreadable by older processes sharing the same cache during a rolling upgrade.
_PICKLE_PROTOCOL: Final = 5

# Decompression output is produced (and counted against the cap) this much at a time.
_DECOMPRESS_CHUNK: Final = 256 * 1024
# zstd input is fed this much at a time when the frame does not state its size: one input
# byte can expand ~32768x (an RLE block), so this bounds the output of each step to ~8 MiB.
_ZSTD_INPUT_STEP: Final = 256
# An LZ4 frame this small is decompressed in one call: LZ4 expands at most ~255x.
_LZ4_ONE_SHOT: Final = 64 * 1024

# Key-bound HMAC input starts with this tag, then the key's length and the key: 0xFF is no
# pickle opcode, so such bytes can never be accepted as the unbound (legacy) layout.
_BOUND_MAC_TAG: Final = b"\xffstratacache-bound\x00"

_SERIALIZER_NAMES: Final = ("json", "msgpack", "pickle", "raw")

_EXTRA_HINT: Final = "install it with: pip install 'stratacache[{extra}]'"


def _type_name(obj: object) -> str:
    """``int`` for builtins, ``module.Qualname`` for everything else."""
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(exc: BaseException) -> str:
    """``ExcType: message``; several libraries raise exceptions with an empty message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _for_key(key: str | None) -> str:
    return "" if key is None else f" (key {key!r})"


def _missing_extra(package: str, extra: str) -> ConfigurationError:
    # Callers chain the ImportError themselves with ``raise ... from exc``.
    return ConfigurationError(f"{package} is not installed; {_EXTRA_HINT.format(extra=extra)}")


@runtime_checkable
class Serializer(Protocol):
    """What :class:`Codec` needs from a serializer.

    ``format_id`` goes into byte 2 of the header so that readers know how to decode a value:
    1-3 are taken by msgpack, json and pickle; custom serializers should use 16-255. The
    special id 0 means *headerless*: the serializer's bytes are stored exactly as produced
    (this is what :class:`RawSerializer` uses).
    """

    name: str
    format_id: int

    def dumps(self, value: Any) -> bytes:
        """Return the bytes for ``value``; raise :class:`SerializationError` if impossible."""
        ...

    def loads(self, data: bytes) -> Any:
        """Return the value for ``data``; raise :class:`SerializationError` if impossible."""
        ...


# --------------------------------------------------------------------------- nesting depth

_CONTAINERS: Final = frozenset((list, tuple, dict, set, frozenset))


def _too_deep() -> SerializationError:
    return SerializationError(
        f"value is nested deeper than {MAX_DEPTH} levels (stratacache.serializers.MAX_DEPTH), or is cyclic"
    )


def _check_depth(value: Any) -> None:
    """Raise :func:`_too_deep` if containers nest deeper than :data:`MAX_DEPTH` in ``value``.

    Iterative, so a deep (or cyclic) value costs a bounded walk and never a recursion.
    ``value`` itself counts as level 1 when it is a container; dict keys are walked too
    (tuple and frozenset keys are containers).
    """
    containers = _CONTAINERS
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        obj, depth = pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        for item in (*obj.keys(), *obj.values()) if type(obj) is dict else obj:
            if type(item) in containers:
                push((item, depth + 1))


# --------------------------------------------------------------------------- msgpack

_EXT_BIGINT: Final = 1
_EXT_TUPLE: Final = 2
_EXT_SET: Final = 3
_EXT_FROZENSET: Final = 4
_EXT_DATETIME: Final = 5
_EXT_DATE: Final = 6
_EXT_TIME: Final = 7
_EXT_TIMEDELTA: Final = 8
_EXT_DECIMAL: Final = 9
_EXT_UUID: Final = 10
_EXT_COMPLEX: Final = 11

_COMPLEX: Final = struct.Struct("<dd")
# Ext types whose payload is itself msgpack (decoded by a nested unpack).
_NESTED_EXTS: Final = frozenset((_EXT_TUPLE, _EXT_SET, _EXT_FROZENSET, _EXT_TIMEDELTA))
# Nested ext levels decoded with unpackb() (C stack context); deeper ones use an Unpacker.
_UNPACKB_LEVELS: Final = 2


def _array_header(length: int) -> bytes:
    """The msgpack array header for ``length`` items (fixarray / array16 / array32)."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 0x10000:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def _iso_with_offset(value: datetime | time, offset: timedelta | None) -> bytes:
    """The naive ISO text, then ``|`` and the UTC offset in microseconds when aware.

    Not ``isoformat()`` with its offset: Python 3.11's ``fromisoformat`` drops an offset's
    sub-second part (``+00:00:00.000001``), which would silently shift the value.
    """
    text = value.replace(tzinfo=None).isoformat()
    if offset is not None:
        text += f"|{offset // timedelta(microseconds=1)}"
    return text.encode("ascii")


def _with_offset(parse: Callable[[str], Any], data: bytes) -> Any:
    text, _, offset = data.decode("ascii").partition("|")
    value = parse(text)
    if offset:
        value = value.replace(tzinfo=timezone(timedelta(microseconds=int(offset))))
    return value


class MsgpackSerializer:
    """The default serializer: compact, fast, and exact for the types in the module table.

    ``msgpack`` is imported here rather than at module import so that importing
    stratacache stays cheap and a missing package is reported as a
    :class:`ConfigurationError` only by whoever actually uses msgpack.
    """

    name: str = "msgpack"
    format_id: int = 1

    def __init__(self) -> None:
        """Import msgpack; raise :class:`ConfigurationError` if it is not installed."""
        try:
            import msgpack
        except ImportError as exc:  # pragma: no cover - msgpack is a core dependency
            raise _missing_extra("msgpack", "msgpack") from exc
        self._ext_type = msgpack.ExtType
        self._packer_class = msgpack.Packer
        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb
        self._unpacker_class = msgpack.Unpacker
        # One reusable Packer per thread for top-level dumps(): building a Packer costs more
        # than packing a small value, and a Packer must not be shared between threads.
        self._local = threading.local()
        self._ext_decoders: dict[int, Callable[[bytes], Any]] = {
            _EXT_BIGINT: lambda b: int.from_bytes(b, "big", signed=True),
            _EXT_TUPLE: lambda b: tuple(self._unpack_list(b)),
            _EXT_SET: lambda b: set(self._unpack_list(b)),
            _EXT_FROZENSET: lambda b: frozenset(self._unpack_list(b)),
            _EXT_DATETIME: lambda b: _with_offset(datetime.fromisoformat, b),
            _EXT_DATE: lambda b: date.fromisoformat(b.decode("ascii")),
            _EXT_TIME: lambda b: _with_offset(time.fromisoformat, b),
            _EXT_TIMEDELTA: self._decode_timedelta,
            _EXT_DECIMAL: lambda b: Decimal(b.decode("ascii")),
            _EXT_UUID: lambda b: uuid.UUID(bytes=b),
            _EXT_COMPLEX: lambda b: complex(*_COMPLEX.unpack(b)),
        }

    def _pack(self, value: Any) -> bytes:
        # strict_types: tuples and subclasses reach _default instead of being flattened
        # into lists / base types, which is what makes the round trip exact.
        data: bytes = self._packb(value, default=self._default, use_bin_type=True, strict_types=True)
        return data

    def _unpack(self, data: bytes) -> Any:
        # An ext payload, unpacked while _ext_hook has counted its level. unpackb() keeps
        # its ~40 KiB context on the C stack, an Unpacker on the heap (but costs ~0.8 us
        # more): the few outer levels, where real values live, take the fast call, deeper
        # ones the Unpacker, so MAX_DEPTH levels fit a small thread stack.
        if self._local.unpack_depth <= _UNPACKB_LEVELS:
            # strict_map_key=False: int, tuple, ... keys are legitimate dict keys here.
            return self._unpackb(
                data, ext_hook=self._ext_hook, raw=False, strict_map_key=False, use_list=True
            )
        unpacker = self._unpacker_class(
            ext_hook=self._ext_hook,
            raw=False,
            strict_map_key=False,
            use_list=True,
            max_buffer_size=max(len(data), 1),
        )
        unpacker.feed(data)
        value = unpacker.unpack()
        if unpacker.tell() != len(data):
            raise SerializationError("malformed msgpack ext payload: trailing bytes")
        return value

    def _unpack_list(self, data: bytes) -> list[Any]:
        items = self._unpack(data)
        if type(items) is not list:
            raise SerializationError("malformed msgpack ext payload: expected an array")
        return items

    def _decode_timedelta(self, data: bytes) -> timedelta:
        days, seconds, microseconds = self._unpack_list(data)
        return timedelta(days=days, seconds=seconds, microseconds=microseconds)

    def _default(self, obj: Any) -> Any:
        cls = type(obj)
        ext = self._ext_type
        if cls is int:
            # Only reached for ints outside msgpack's native [-2**63, 2**64) range.
            return ext(_EXT_BIGINT, obj.to_bytes((obj.bit_length() + 8) // 8, "big", signed=True))
        if cls is tuple or cls is set or cls is frozenset:
            return self._pack_container(obj)
        if cls is datetime:
            return ext(_EXT_DATETIME, _iso_with_offset(obj, obj.utcoffset()))
        if cls is date:
            return ext(_EXT_DATE, obj.isoformat().encode("ascii"))
        if cls is time:
            return ext(_EXT_TIME, _iso_with_offset(obj, obj.utcoffset()))
        if cls is timedelta:
            return ext(_EXT_TIMEDELTA, self._pack([obj.days, obj.seconds, obj.microseconds]))
        if cls is Decimal:
            return ext(_EXT_DECIMAL, str(obj).encode("ascii"))
        if cls is uuid.UUID:
            return ext(_EXT_UUID, obj.bytes)
        if cls is complex:
            return ext(_EXT_COMPLEX, _COMPLEX.pack(obj.real, obj.imag))
        raise SerializationError(f"msgpack cannot serialize a value of type {_type_name(obj)!r}")

    def _pack_container(self, obj: tuple[Any, ...] | set[Any] | frozenset[Any]) -> Any:
        # Each extension container is packed by a nested packb(), i.e. one more level of C
        # recursion, with msgpack's own 511-level budget for lists and dicts inside it: the
        # outermost one checks its whole subtree against MAX_DEPTH, so neither multiplies.
        local = self._local
        depth: int = getattr(local, "pack_depth", 0)
        if not depth:
            _check_depth(obj)
        local.pack_depth = depth + 1
        try:
            if type(obj) is tuple:
                return self._ext_type(_EXT_TUPLE, self._pack(list(obj)))
            # Sorted encodings: equal sets must give equal bytes whatever their iteration
            # order, or set members (Codec.encode_member) would not be found again.
            items = sorted([self._pack(item) for item in obj])
            payload = _array_header(len(items)) + b"".join(items)
            return self._ext_type(_EXT_SET if type(obj) is set else _EXT_FROZENSET, payload)
        finally:
            local.pack_depth = depth

    def _ext_hook(self, code: int, data: bytes) -> Any:
        decoder = self._ext_decoders.get(code)
        if decoder is None:
            raise SerializationError(f"unknown msgpack ext type {code}")
        if code not in _NESTED_EXTS:
            return decoder(data)
        # Each level is a nested unpack, i.e. C recursion: without a bound, ~250 levels
        # overflowed the stack (SIGSEGV). See _unpack for the stack each level takes.
        local = self._local
        depth: int = getattr(local, "unpack_depth", 0)
        if depth >= MAX_DEPTH:
            raise _too_deep()
        local.unpack_depth = depth + 1
        try:
            return decoder(data)
        finally:
            local.unpack_depth = depth

    def dumps(self, value: Any) -> bytes:
        """Serialize ``value``; unsupported types raise :class:`SerializationError` naming them."""
        packer = getattr(self._local, "packer", None)
        if packer is None:
            packer = self._local.packer = self._packer_class(
                default=self._default, use_bin_type=True, strict_types=True
            )
        try:
            # _default packs nested values with a fresh packb(), never with this Packer,
            # which is in the middle of a pack() and not re-entrant. A failed pack() resets it.
            data: bytes = packer.pack(value)
            return data
        except SerializationError:
            raise
        except Exception as exc:  # msgpack raises TypeError/ValueError/OverflowError
            raise SerializationError(
                f"msgpack cannot serialize a value of type {_type_name(value)!r}: {_describe(exc)}"
            ) from exc

    @property
    def fast_loads(self) -> Callable[[bytes], Any]:
        """``loads`` without its error wrapping: one frame and no exception handler per
        decode. Its exceptions are raw; the Codec retries a failure through ``loads``."""
        unpackb, ext_hook = self._unpackb, self._ext_hook

        # A closure, not functools.partial: a partial with keywords builds a fresh kwargs
        # dict on every call (~300 ns for a small value, measured), where a direct call
        # passes them by vectorcall. raw=False and use_list=True are msgpack>=1.0 defaults.
        def fast_loads(data: bytes) -> Any:
            return unpackb(data, ext_hook=ext_hook, strict_map_key=False)

        return fast_loads

    def loads(self, data: bytes) -> Any:
        """Deserialize msgpack bytes; malformed data raises :class:`SerializationError`."""
        try:
            return self._unpackb(
                data, ext_hook=self._ext_hook, raw=False, strict_map_key=False, use_list=True
            )
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(f"cannot decode msgpack data: {_describe(exc)}") from exc


# --------------------------------------------------------------------------- json


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _check_json(value: Any) -> None:
    """Refuse anything JSON would change or that only one implementation accepts.

    A walk is needed because orjson silently writes NaN as null and natively encodes
    UUID, datetime, enums and dataclasses as strings/objects that would not round-trip;
    running the same check before both orjson and the stdlib fallback also makes the
    accepted values independent of which one is installed.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop = stack.pop
    push = stack.append
    while stack:
        obj, depth = pop()
        cls = type(obj)
        if cls is str or cls is bool or obj is None:
            continue
        if cls is int:
            # orjson only handles 64-bit ints and reads bigger ones back as floats.
            if not _INT_MIN <= obj <= _UINT64_MAX:
                raise SerializationError("JSON cannot hold an int outside the 64-bit range; use msgpack")
            continue
        if cls is float:
            if not math.isfinite(obj):
                raise SerializationError(f"JSON cannot represent the float {obj!r}; use msgpack")
            continue
        if cls is list or cls is tuple or cls is dict:
            if depth >= MAX_DEPTH:
                raise _too_deep()
            if cls is dict:
                for k, v in obj.items():
                    if type(k) is not str:
                        raise SerializationError(
                            f"JSON object keys must be str, not {_type_name(k)!r}; use msgpack"
                        )
                    push((v, depth + 1))
            else:
                for item in obj:
                    push((item, depth + 1))
            continue
        raise SerializationError(f"JSON cannot serialize a value of type {_type_name(obj)!r}")


def _import_orjson(*, required: bool) -> Any:
    try:
        import orjson
    except ImportError as exc:
        if required:
            raise _missing_extra("orjson", "json") from exc
        return None
    return orjson


class JsonSerializer:
    """JSON: ``None``, ``bool``, 64-bit ``int``, finite ``float``, ``str``, ``list``, ``dict``.

    Dict keys must be ``str`` (no silent conversion of int keys to strings). Tuples are
    written as JSON arrays and read back as lists, since JSON has no tuple. NaN and ±inf
    raise :class:`SerializationError` instead of becoming ``null``. Uses orjson when
    importable (``use_orjson=None``), else the stdlib; ``use_orjson=True`` requires orjson
    and ``False`` forces the stdlib.
    """

    name: str = "json"
    format_id: int = 2

    def __init__(self, *, use_orjson: bool | None = None) -> None:
        """Pick the JSON implementation; see the class docstring."""
        self._dump: Callable[[Any], bytes]
        self._load: Callable[[bytes], Any]
        orjson = _import_orjson(required=bool(use_orjson)) if use_orjson is not False else None
        if orjson is not None:
            self.implementation = "orjson"
            self._dump = orjson.dumps
            self._load = orjson.loads
        else:
            self.implementation = "json"
            encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            decoder = json.JSONDecoder(parse_constant=_reject_constant)
            encode = encoder.encode
            decode = decoder.decode
            self._dump = lambda value: encode(value).encode("utf-8")
            self._load = lambda data: decode(data.decode("utf-8"))

    def dumps(self, value: Any) -> bytes:
        """Serialize ``value`` as compact UTF-8 JSON."""
        _check_json(value)
        try:
            return self._dump(value)
        except Exception as exc:  # e.g. lone surrogates in a str
            raise SerializationError(
                f"JSON cannot serialize a value of type {_type_name(value)!r}: {_describe(exc)}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Parse UTF-8 JSON bytes."""
        try:
            return self._load(bytes(data))
        except Exception as exc:
            raise SerializationError(f"cannot decode JSON data: {_describe(exc)}") from exc


# --------------------------------------------------------------------------- pickle


def _signing_key_bytes(signing_key: object) -> bytes:
    if isinstance(signing_key, str):
        key = signing_key.encode("utf-8")
    elif isinstance(signing_key, (bytes, bytearray)):
        key = bytes(signing_key)
    else:
        raise ConfigurationError(f"signing_key must be bytes or str, not {_type_name(signing_key)}")
    if not key:
        raise ConfigurationError("signing_key must not be empty")
    return key


class PickleSerializer:
    """Pickle, signed with HMAC-SHA256 so that only bytes this application wrote are unpickled.

    Unpickling runs arbitrary code, so anyone able to write to the cache backend could
    otherwise execute code in every reader. Stored bytes are
    ``HMAC-SHA256(signing_key, pickled) + pickled``; :meth:`loads` checks the signature with
    :func:`hmac.compare_digest` before unpickling and raises :class:`SerializationError`
    on a missing, short or wrong signature. The algorithm is fixed here and never read
    from the stored bytes. A ``str`` key is UTF-8 encoded.
    """

    name: str = "pickle"
    format_id: int = 3

    def __init__(self, signing_key: bytes | str) -> None:
        """Keep the signing key; empty or non-bytes/str keys raise :class:`ConfigurationError`."""
        self._key = _signing_key_bytes(signing_key)

    def __repr__(self) -> str:
        return "PickleSerializer(signing_key=<hidden>)"

    def dumps(self, value: Any) -> bytes:
        """Pickle ``value`` (protocol 5) and prefix the 32-byte signature (not bound to a key)."""
        pickled = _pickle(value)
        return hmac.digest(self._key, pickled, "sha256") + pickled

    def loads(self, data: bytes) -> Any:
        """Verify the signature, then unpickle; bytes failing verification are never unpickled."""
        return self._verified_loads(data, b"")

    def dumps_bound(self, value: Any, key: bytes) -> bytes:
        """Like :meth:`dumps`, with ``key`` in the signed bytes (what :class:`Codec` writes).

        The HMAC input is ``_BOUND_MAC_TAG + len(key) (4 bytes, big-endian) + key + pickled``:
        the length prefix makes the split unambiguous, and the tag's first byte (0xFF, no
        pickle opcode) keeps such a signature from ever verifying an unbound value.
        """
        pickled = _pickle(value)
        return hmac.digest(self._key, _bound_prefix(key) + pickled, "sha256") + pickled

    def loads_bound(self, data: bytes, key: bytes) -> Any:
        """Like :meth:`loads`, for bytes from :meth:`dumps_bound` under the same ``key``."""
        return self._verified_loads(data, _bound_prefix(key))

    @staticmethod
    def _split(data: bytes) -> tuple[bytes, bytes]:
        if len(data) < _SIGNATURE_SIZE:
            raise SerializationError("pickled data has no signature; refusing to unpickle it")
        return data[:_SIGNATURE_SIZE], data[_SIGNATURE_SIZE:]

    def _verified_loads(self, data: bytes, prefix: bytes) -> Any:
        signature, body = self._split(data)
        if not hmac.compare_digest(signature, hmac.digest(self._key, prefix + body, "sha256")):
            raise SerializationError(
                "pickled data has an invalid signature (tampered, copied from another key, or "
                "written with another signing_key); refusing to unpickle it"
            )
        try:
            return pickle.loads(body)
        except Exception as exc:
            raise SerializationError(f"cannot unpickle data: {_describe(exc)}") from exc


def _pickle(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
    except Exception as exc:  # PicklingError, TypeError, AttributeError (local objects), RecursionError
        raise SerializationError(
            f"pickle cannot serialize a value of type {_type_name(value)!r}: {_describe(exc)}"
        ) from exc


def _bound_prefix(key: bytes) -> bytes:
    """What precedes the pickle in a key-bound HMAC input (see :meth:`PickleSerializer.dumps_bound`)."""
    return _BOUND_MAC_TAG + len(key).to_bytes(4, "big") + key


def _key_bytes(key: str | bytes | None) -> bytes:
    """The bytes a value is bound to: the stored key, UTF-8 (lone surrogates kept), or empty."""
    if key is None:
        return b""
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    return bytes(key)


# --------------------------------------------------------------------------- raw


class RawSerializer:
    """Bytes in, bytes out, for sharing keys with clients that do not speak stratacache.

    Accepts ``bytes``, ``bytearray`` and ``memoryview`` (stored as their bytes) and ``int``
    (stored as ASCII decimal); :meth:`loads` always returns ``bytes`` unchanged, so a
    stored ``b"123"`` reads back as ``b"123"``. ``format_id`` 0 tells :class:`Codec` to
    store the bytes without a header.
    """

    name: str = "raw"
    format_id: int = 0

    def dumps(self, value: Any) -> bytes:
        """Return ``value`` as bytes; other types raise :class:`SerializationError`."""
        cls = type(value)
        if cls is bytes:
            return value  # type: ignore[no-any-return]
        if cls is bytearray or cls is memoryview:
            return bytes(value)
        if cls is int:
            try:
                return b"%d" % value
            except ValueError as exc:  # over sys.get_int_max_str_digits()
                raise SerializationError(f"int too large to write as decimal: {_describe(exc)}") from exc
        raise SerializationError(
            f"the raw serializer stores bytes, bytearray, memoryview or int, not {_type_name(value)!r}"
        )

    def loads(self, data: bytes) -> Any:
        """Return ``data`` unchanged (as ``bytes``)."""
        return data if type(data) is bytes else bytes(data)


def get_serializer(name_or_obj: str | Serializer, *, signing_key: bytes | str | None = None) -> Serializer:
    """Return a serializer for ``"msgpack"``, ``"json"``, ``"pickle"`` or ``"raw"``.

    An object with ``dumps`` and ``loads`` methods is returned as is. ``"pickle"`` needs
    ``signing_key`` (see :class:`PickleSerializer`); other names ignore it. Unknown names
    raise :class:`ConfigurationError` listing the valid ones.
    """
    if isinstance(name_or_obj, str):
        name = name_or_obj.lower()
        if name == "msgpack":
            return MsgpackSerializer()
        if name == "json":
            return JsonSerializer()
        if name == "raw":
            return RawSerializer()
        if name == "pickle":
            if signing_key is None:
                raise ConfigurationError(
                    "the pickle serializer needs a signing_key: unpickling runs arbitrary code, so "
                    "stratacache only unpickles bytes signed with HMAC-SHA256 under that key"
                )
            return PickleSerializer(signing_key)
        valid = ", ".join(repr(n) for n in _SERIALIZER_NAMES)
        raise ConfigurationError(f"unknown serializer {name_or_obj!r}; valid names are {valid}")
    if isinstance(name_or_obj, type):
        raise ConfigurationError(
            f"serializer must be an instance, not the class {name_or_obj.__qualname__}; "
            f"pass {name_or_obj.__qualname__}()"
        )
    if callable(getattr(name_or_obj, "dumps", None)) and callable(getattr(name_or_obj, "loads", None)):
        return name_or_obj
    raise ConfigurationError(
        f"serializer must be a name or an object with dumps() and loads(), not {_type_name(name_or_obj)}"
    )


# --------------------------------------------------------------------------- compression

_zstd_local = threading.local()  # zstandard contexts must not be shared between threads


def _import_lz4() -> Any:
    try:
        import lz4.frame
    except ImportError as exc:
        raise _missing_extra("lz4", "compression") from exc
    return lz4.frame


def _import_zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise _missing_extra("zstandard", "compression") from exc
    return zstandard


def _too_large(name: str, limit: int) -> SerializationError:
    return SerializationError(f"{name}-compressed value expands beyond {limit} bytes (max_decompressed_size)")


def _decompress_zlib(data: memoryview, limit: int) -> bytes:
    # Streamed: each step yields at most _DECOMPRESS_CHUNK bytes, so a bomb is refused as
    # soon as its output passes the cap instead of after inflating all of it.
    decompressor = zlib.decompressobj()
    chunks: list[bytes] = []
    total = 0
    pending: bytes | memoryview = data
    while True:
        out = decompressor.decompress(pending, _DECOMPRESS_CHUNK)
        total += len(out)
        if total > limit:
            raise _too_large("zlib", limit)
        chunks.append(out)
        pending = decompressor.unconsumed_tail
        # A full chunk may leave output pending inside zlib even with all input consumed.
        if decompressor.eof or (not pending and len(out) < _DECOMPRESS_CHUNK):
            break
    if not decompressor.eof or decompressor.unused_data:
        raise SerializationError("zlib-compressed value is truncated or has trailing bytes")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _lz4_declared_size(data: memoryview) -> int:
    """The content size an LZ4 frame header declares, or -1 (absent or not a frame header)."""
    # magic (4), FLG (1: bit 3 = content size present), BD (1), then the size (8, little-endian)
    if len(data) >= 14 and data[4] & 0x08:
        return int.from_bytes(data[6:14], "little")
    return -1


def _decompress_lz4(data: memoryview, limit: int) -> bytes:
    lz4_frame = _import_lz4()
    # LZ4 cannot expand data more than ~255x, so a small frame is bounded by construction and
    # takes the one-shot path (a streaming decompressor costs ~20x more per call); the one-shot
    # call allocates the size the header declares, so that is checked first.
    if len(data) <= _LZ4_ONE_SHOT and _lz4_declared_size(data) <= limit:
        out: bytes = lz4_frame.decompress(data)
        if len(out) > limit:
            raise _too_large("lz4", limit)
        return out
    decompressor = lz4_frame.LZ4FrameDecompressor()
    chunks: list[bytes] = []
    total = 0
    pending: bytes | memoryview = data
    while not decompressor.eof:
        out = decompressor.decompress(pending, max_length=_DECOMPRESS_CHUNK)
        pending = b""
        total += len(out)
        if total > limit:
            raise _too_large("lz4", limit)
        chunks.append(out)
        if decompressor.needs_input:
            break
    if not decompressor.eof:
        raise SerializationError("lz4-compressed value is truncated")
    if decompressor.unused_data:
        raise SerializationError("lz4-compressed value has trailing bytes")
    return b"".join(chunks)


def _decompress_zstd(data: memoryview, limit: int) -> bytes:
    zstandard = _import_zstd()
    declared = zstandard.frame_content_size(data)
    if declared > limit:
        raise _too_large("zstd", limit)
    decompressor = getattr(_zstd_local, "decompressor", None)
    if decompressor is None:
        decompressor = _zstd_local.decompressor = zstandard.ZstdDecompressor()
    if declared >= 0:
        # The frame states its size (stratacache always writes it): decompress() allocates
        # exactly that, at most the cap, and fails if the frame does not fill it.
        out: bytes = decompressor.decompress(data)
        return out
    # No size stated: feed the input a little at a time, so each step's output is bounded
    # (~8 MiB) and the total is checked as it grows.
    stream = decompressor.decompressobj()
    chunks: list[bytes] = []
    total = 0
    end = 0
    while end < len(data) and not stream.eof:
        start, end = end, end + _ZSTD_INPUT_STEP
        out = stream.decompress(data[start:end])
        total += len(out)
        if total > limit:
            raise _too_large("zstd", limit)
        chunks.append(out)
    if not stream.eof:
        raise SerializationError("zstd-compressed value is truncated")
    if stream.unused_data or end < len(data):
        raise SerializationError("zstd-compressed value has trailing bytes")
    return b"".join(chunks)


_DECOMPRESSORS: Final[dict[int, Callable[[memoryview, int], bytes]]] = {
    1: _decompress_zlib,
    2: _decompress_lz4,
    3: _decompress_zstd,
}


def _make_compressor(name: str, level: int | None) -> Callable[[bytes], bytes]:
    if name == "zlib":
        zlib_level = -1 if level is None else level
        return lambda data: zlib.compress(data, zlib_level)
    if name == "lz4":
        lz4_frame = _import_lz4()
        compress = lz4_frame.compress
        lz4_level = 0 if level is None else level
        # content_checksum: lets a corrupted stored value fail loudly instead of decoding to garbage.
        return lambda data: compress(data, compression_level=lz4_level, content_checksum=True)
    zstandard = _import_zstd()
    zstd_level = 3 if level is None else level
    attr = f"compressor_{zstd_level}"

    def compress_zstd(data: bytes) -> bytes:
        compressor = getattr(_zstd_local, attr, None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=zstd_level, write_checksum=True)
            setattr(_zstd_local, attr, compressor)
        out: bytes = compressor.compress(data)
        return out

    return compress_zstd


# --------------------------------------------------------------------------- encryption


def _aes_key_bytes(index: int, key: object) -> bytes:
    # Messages name the position and type only: key material must never reach logs.
    if isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
        if len(raw) not in _AES_KEY_SIZES:
            raise ConfigurationError(
                f"encryption_keys[{index}] is {len(raw)} bytes; AES keys must be 16, 24 or 32 bytes"
            )
        return raw
    if isinstance(key, str):
        text = key.strip().replace("-", "+").replace("_", "/")
        text += "=" * (-len(text) % 4)
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) not in _AES_KEY_SIZES:
            raise ConfigurationError(
                f"encryption_keys[{index}] is a str that is not (urlsafe) base64 of a 16, 24 or 32 byte key"
            )
        return raw
    raise ConfigurationError(f"encryption_keys[{index}] must be bytes or a base64 str, not {_type_name(key)}")


# --------------------------------------------------------------------------- codec


class Codec:
    """Turns values into the bytes stored by a backend, and back.

    Parameters:
        serializer: a serializer name (see :func:`get_serializer`) or object.
        signing_key: key for pickle. Needed for ``serializer="pickle"``; with another
            serializer it lets this codec also read pickle-format values. Without it,
            pickle-format values raise :class:`SerializationError` and are never unpickled.
        compression: ``None``, ``"zlib"``, ``"lz4"`` or ``"zstd"``.
        compression_threshold: payloads shorter than this many bytes are not compressed;
            longer ones are stored compressed only when that is actually smaller.
        compression_level: passed to the compressor (library default when ``None``).
        encryption_keys: AES-GCM keys (bytes of 16/24/32, or base64 str of those). The first
            encrypts; all are accepted on decode, for key rotation. When set, :meth:`decode`
            refuses unencrypted headered values, so someone able to write to the backend
            cannot inject values (AES-GCM authenticates as well as hides).
        max_decompressed_size: a compressed value that would expand beyond this raises
            :class:`SerializationError` as soon as the output passes it (decompression
            streams), so a compression bomb costs at most about this much memory.
        accept_unbound_values: also read encrypted and signed-pickle values written before
            values were bound to their key (envelope version 1). Off by default: such a value
            can be copied to another key undetected. Turn it on only while migrating (see
            docs/serialization.md).

    Encrypted and signed values are bound to the key they are stored under (``key`` of
    :meth:`encode`, the full stored key): the key is AES-GCM associated data and part of the
    HMAC input, so bytes copied to another key fail authentication.

    64-bit ints are stored as ASCII decimal without header (see the module docstring),
    so they are never compressed or encrypted. Decoding accepts msgpack and json values
    whatever the configured serializer, so the serializer can be changed on a live cache.
    The raw serializer stores bytes as given (no header) and cannot be combined with
    compression or encryption.
    """

    __slots__ = (
        "_accept_unbound",
        "_aead",
        "_aeads",
        "_bound_headers",
        "_compress",
        "_compression_id",
        "_dumps",
        "_headerless",
        "_headers",
        "_invalid_tag",
        "_key_id",
        "_loaders",
        "_max_size",
        "_pickle",
        "_plain_envelopes",
        "_plain_members",
        "_plain_values",
        "_serializer",
        "_signing_key",
        "_threshold",
    )

    def __init__(
        self,
        serializer: str | Serializer = "msgpack",
        *,
        signing_key: bytes | str | None = None,
        compression: str | None = None,
        compression_threshold: int = 1024,
        compression_level: int | None = None,
        encryption_keys: Sequence[bytes | str] | None = None,
        max_decompressed_size: int = MAX_DECOMPRESSED_SIZE,
        accept_unbound_values: bool = False,
    ) -> None:
        """Validate the configuration; every problem raises :class:`ConfigurationError`."""
        if signing_key is not None:
            # Validated even when the serializer is not pickle, so a bad key fails at startup.
            signing_key = _signing_key_bytes(signing_key)
        self._signing_key = signing_key
        ser = get_serializer(serializer, signing_key=signing_key)
        format_id = getattr(ser, "format_id", None)
        if type(format_id) is not int or not 0 <= format_id <= 255:
            raise ConfigurationError(f"serializer.format_id must be an int in 0..255, not {format_id!r}")
        if format_id == 3 and not isinstance(ser, PickleSerializer):
            # Format 3 is read as signed pickle, bound to the key; another serializer's bytes
            # under that id could never be read back.
            raise ConfigurationError("serializer.format_id 3 is reserved for the signed pickle serializer")
        self._serializer = ser
        self._dumps: Callable[[Any], bytes] = ser.dumps
        self._headerless = format_id == 0
        self._headers = tuple(bytes((MAGIC, VERSION, format_id, flags)) for flags in range(_FLAG_KNOWN + 1))
        self._bound_headers = tuple(
            bytes((MAGIC, BOUND_VERSION, format_id, flags)) for flags in range(_FLAG_KNOWN + 1)
        )
        if type(accept_unbound_values) is not bool:
            raise ConfigurationError(
                f"accept_unbound_values must be True or False, not {accept_unbound_values!r}"
            )
        self._accept_unbound = accept_unbound_values
        self._loaders: dict[int, Callable[[bytes], Any]] = {}
        self._plain_members: dict[bytes, Callable[[bytes], Any]] = {}
        self._plain_values = self._plain_members
        # The same fast path for envelopes (header flag FLAG_ENVELOPE): header -> loader.
        self._plain_envelopes: dict[bytes, Callable[[bytes], Any]] = {}
        # Signed pickle is decoded apart from the other formats (it needs the key), never
        # through the header -> loader fast path.
        self._pickle: PickleSerializer | None = None
        if isinstance(ser, PickleSerializer):
            self._pickle = ser
        elif signing_key is not None:
            self._pickle = PickleSerializer(signing_key)
        if format_id == 0:
            # Headerless: decode hands every value to ser.loads, so no other format is registered.
            self._loaders[0] = ser.loads
        elif self._pickle is not ser:
            self._add_loader(format_id, ser.loads, getattr(ser, "fast_loads", None))

        if self._headerless and (compression is not None or encryption_keys is not None):
            raise ConfigurationError(
                f"the {getattr(ser, 'name', 'raw')!r} serializer stores bytes as given, without a "
                "header, so it cannot be combined with compression or encryption"
            )

        if type(max_decompressed_size) is not int or max_decompressed_size <= 0:
            raise ConfigurationError(
                f"max_decompressed_size must be a positive int, not {max_decompressed_size!r}"
            )
        self._max_size = max_decompressed_size

        if type(compression_threshold) is not int or compression_threshold < 0:
            raise ConfigurationError(
                f"compression_threshold must be an int >= 0, not {compression_threshold!r}"
            )
        self._threshold = compression_threshold
        self._compress: Callable[[bytes], bytes] | None = None
        self._compression_id = 0
        if compression is not None:
            compression_id = _COMPRESSION_IDS.get(compression) if isinstance(compression, str) else None
            if compression_id is None:
                valid = ", ".join(repr(n) for n in _COMPRESSION_IDS)
                raise ConfigurationError(
                    f"unknown compression {compression!r}; valid values are None, {valid}"
                )
            if compression_level is not None and type(compression_level) is not int:
                raise ConfigurationError(f"compression_level must be an int, not {compression_level!r}")
            compress = _make_compressor(compression, compression_level)
            try:
                compress(b"stratacache" * 8)  # an out-of-range level only fails when used
            except Exception as exc:
                raise ConfigurationError(
                    f"compression_level {compression_level!r} is not valid for {compression}: "
                    + _describe(exc)
                ) from exc
            self._compress = compress
            self._compression_id = compression_id

        self._aead: AESGCM | None = None
        self._aeads: dict[bytes, list[AESGCM]] | None = None
        self._key_id = b""
        self._invalid_tag: type[Exception] = Exception
        if encryption_keys is not None:
            self._setup_encryption(encryption_keys)

    def _setup_encryption(self, encryption_keys: Sequence[bytes | str]) -> None:
        if isinstance(encryption_keys, (bytes, bytearray, str)):
            raise ConfigurationError("encryption_keys must be a list of keys, not a single key")
        keys = [_aes_key_bytes(i, key) for i, key in enumerate(encryption_keys)]
        if not keys:
            raise ConfigurationError("encryption_keys must list at least one key (or be None)")
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise _missing_extra("cryptography", "crypto") from exc
        aeads: dict[bytes, list[AESGCM]] = {}
        for key in keys:
            # A list per id: two keys may share a 4-byte id, then each is tried in turn.
            aeads.setdefault(hashlib.sha256(key).digest()[:_KEY_ID_SIZE], []).append(AESGCM(key))
        self._aeads = aeads
        self._plain_values = {}  # unencrypted values are refused, so no plain fast path
        self._plain_envelopes = {}
        self._aead = AESGCM(keys[0])
        self._key_id = hashlib.sha256(keys[0]).digest()[:_KEY_ID_SIZE]
        self._invalid_tag = InvalidTag

    @property
    def serializer(self) -> Serializer:
        """The serializer this codec writes with."""
        return self._serializer

    @property
    def plain_loaders(self) -> Mapping[bytes, Callable[[bytes], Any]]:
        """The fast path of :meth:`decode`, for callers that inline it in a loop: a value
        whose first 4 bytes are a key here is ``loader(data[4:])``. A loader's exception is
        raw; the caller must then call :meth:`decode`, which raises the precise error.
        Empty when plain values are refused (encryption)."""
        return self._plain_values

    # ---------------------------------------------------------------- encode

    def _serialize(self, value: Any, key: str | None) -> bytes:
        try:
            pickler = self._pickle
            if pickler is not None and pickler is self._serializer:
                payload = pickler.dumps_bound(value, _key_bytes(key))
            else:
                payload = self._dumps(value)
        except SerializationError as exc:
            if key is None:
                raise
            raise SerializationError(f"{exc}{_for_key(key)}") from exc
        except Exception as exc:  # a custom serializer's own exception
            raise SerializationError(
                f"{getattr(self._serializer, 'name', 'serializer')} cannot serialize a value of "
                f"type {_type_name(value)!r}{_for_key(key)}: {_describe(exc)}"
            ) from exc
        if type(payload) is not bytes:
            if not isinstance(payload, (bytearray, memoryview)):
                raise SerializationError(
                    f"serializer returned {_type_name(payload)}, not bytes{_for_key(key)}"
                )
            payload = bytes(payload)
        return payload

    def encode(self, value: Any, key: str | None = None) -> bytes:
        """Return the bytes to store for ``value`` under ``key`` (the full stored key).

        Encrypted and signed values are bound to ``key`` (``None`` binds to the empty key):
        :meth:`decode` must be given the same key. ``key`` also names the value in errors.
        """
        if type(value) is int and _INT_MIN <= value <= _INT_MAX:
            return b"%d" % value
        payload = self._serialize(value, key)
        if self._headerless:
            return payload
        return self._frame(payload, key, 0)

    def encode_envelope(self, envelope: Envelope, key: str | None = None) -> bytes:
        """The bytes to store for ``envelope`` (see :mod:`stratacache.core.envelope`).

        The header's envelope flag marks them, so :meth:`decode` returns an
        :class:`~stratacache.core.envelope.Envelope`; compression and encryption apply as
        for any value. The raw serializer has no header to carry the flag: it raises
        :class:`SerializationError` saying so.
        """
        if self._headerless:
            raise SerializationError(
                f"the {getattr(self._serializer, 'name', 'raw')!r} serializer stores bytes exactly as "
                f"given, with no header to mark a value carrying tags or freshness metadata{_for_key(key)}"
            )
        return self._frame(self._serialize(to_wire(envelope), key), key, FLAG_ENVELOPE)

    def _frame(self, payload: bytes, key: str | None, flags: int) -> bytes:
        """Header + ``payload``, compressed and encrypted as configured; ``flags`` preset."""
        compress = self._compress
        if compress is not None and len(payload) >= self._threshold:
            try:
                packed = compress(payload)
            except Exception as exc:
                raise SerializationError(f"cannot compress value{_for_key(key)}: {_describe(exc)}") from exc
            # Incompressible data (already compressed, random) would only grow: keep it plain.
            if len(packed) < len(payload):
                payload = packed
                flags |= self._compression_id
        aead = self._aead
        if aead is None:
            headers = self._bound_headers if self._pickle is self._serializer else self._headers
            return headers[flags] + payload
        header = self._bound_headers[flags | _FLAG_ENCRYPTED]
        nonce = os.urandom(_NONCE_SIZE)
        try:
            sealed = aead.encrypt(nonce, payload, header + _key_bytes(key))
        except Exception as exc:
            raise SerializationError(f"cannot encrypt value{_for_key(key)}: {_describe(exc)}") from exc
        return b"".join((header, self._key_id, nonce, sealed))

    def encode_member(self, value: Any, key: str | None = None) -> bytes:
        """Encode a set member: header + serializer output, never compressed or encrypted.

        Set membership is decided by the backend comparing bytes, so equal values must
        encode to equal bytes; random nonces and size-dependent compression would break
        that. Set members are therefore stored unencrypted, like keys. 64-bit ints are
        ASCII decimal here too. Determinism is the serializer's: msgpack sorts set
        elements; values of different types that compare equal (``1``, ``1.0``, ``True``)
        still give different bytes. Signed pickle members are bound to ``key`` like values
        (HMAC is deterministic, so that keeps them comparable).
        """
        if type(value) is int and _INT_MIN <= value <= _INT_MAX:
            return b"%d" % value
        payload = self._serialize(value, key)
        if self._headerless:
            return payload
        if self._pickle is self._serializer:
            return self._bound_headers[0] + payload
        return self._headers[0] + payload

    # ---------------------------------------------------------------- decode

    def decode(self, data: bytes, key: str | None = None) -> Any:
        """Return the value stored as ``data`` under ``key`` (the key :meth:`encode` was given).

        Anything undecodable raises :class:`SerializationError` naming ``key``: malformed or
        hostile bytes, values nested past :data:`MAX_DEPTH`, decompression past the cap, and
        encrypted or signed values stored under another key than the one they were bound to.
        """
        # _decode_with inlined: this is every remote cache hit's path.
        loads = self._plain_values.get(data[:4]) if type(data) is bytes else None
        if loads is not None:
            try:
                return loads(data[4:])
            except Exception:  # decoded again below, which raises the precise error
                pass
        elif type(data) is bytes:
            # A plain (uncompressed, unencrypted, unsigned) envelope: tagged values' hit path.
            loads = self._plain_envelopes.get(data[:4])
            if loads is not None:
                try:
                    return from_wire(loads(data[4:]), key)
                except Exception:  # decoded again below, which raises the precise error
                    pass
        return self._decode(data, key, False)

    def decode_member(self, data: bytes, key: str | None = None) -> Any:
        """Decode bytes produced by :meth:`encode_member` (unencrypted values are accepted)."""
        return self._decode_with(self._plain_members, data, key, True)

    def _decode_with(self, plain: dict[bytes, Any], data: bytes, key: str | None, member: bool) -> Any:
        # Fast path: a known plain header (no flags) maps straight to its loader, skipping
        # the field-by-field checks of _decode, which only matter for the other cases.
        loads = plain.get(data[:4]) if type(data) is bytes else None
        if loads is None:
            return self._decode(data, key, member)
        try:
            return loads(data[4:])
        except Exception:  # decoded again below, which raises the precise error
            pass
        return self._decode(data, key, member)

    def _decode(self, data: bytes, key: str | None, member: bool) -> Any:
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise SerializationError(f"can only decode bytes, not {_type_name(data)}{_for_key(key)}")
            data = bytes(data)
        if self._headerless:
            return self._deserialize(self._loaders[0], data, key)
        if not data:
            raise SerializationError(f"cannot decode an empty value{_for_key(key)}")
        first = data[0]
        if first != MAGIC:
            if first in _INT_FIRST_BYTES:
                return _parse_int(data, key)
            raise SerializationError(
                f"not stratacache data (first byte 0x{first:02x}, expected 0x{MAGIC:02x}){_for_key(key)}"
            )
        if len(data) < 4:
            raise SerializationError(f"truncated stratacache header{_for_key(key)}")
        version = data[1]
        if version not in (VERSION, BOUND_VERSION):
            if version > BOUND_VERSION:
                raise SerializationError(
                    f"value was written by a newer stratacache (format version {version}, this "
                    f"release reads versions {VERSION} and {BOUND_VERSION}); upgrade stratacache"
                    + _for_key(key)
                )
            raise SerializationError(f"invalid stratacache format version {version}{_for_key(key)}")
        flags = data[3]
        if flags & ~_FLAG_KNOWN:
            raise SerializationError(f"unknown flags 0x{flags:02x} in stratacache header{_for_key(key)}")
        if flags & FLAG_ENVELOPE and member:
            raise SerializationError(f"a value envelope cannot be a set member{_for_key(key)}")
        fmt = data[2]
        bound = version == BOUND_VERSION
        if fmt == 3:
            loads = self._pickle_loader(bound, key)
        else:
            loader = self._loaders.get(fmt)
            loads = loader if loader is not None else self._loader_for(fmt, key)
        compression_id = flags & _FLAG_COMPRESSION_MASK
        if bound != (fmt == 3 or bool(flags & _FLAG_ENCRYPTED)):
            if bound:
                raise SerializationError(
                    f"invalid stratacache header: version {BOUND_VERSION} on a value that is "
                    f"neither encrypted nor signed{_for_key(key)}"
                )
            if not self._accept_unbound:
                raise SerializationError(
                    "value is not bound to its key (format version 1: written before stratacache "
                    "bound values to their key, or forged); refusing it. To read such values while "
                    "migrating, set accept_unbound_values (see docs/serialization.md)" + _for_key(key)
                )
        if flags & _FLAG_ENCRYPTED:
            payload = self._decrypt(data, key, bound)
            if compression_id:
                payload = self._decompress(compression_id, payload, key)
        elif self._aead is not None and not member:
            raise SerializationError(
                "value is not encrypted but this cache requires encryption (encryption_keys is set)"
                + _for_key(key)
            )
        elif compression_id:
            # A view, not data[4:]: the decompressors read buffers, so skip the copy.
            payload = self._decompress(compression_id, memoryview(data)[4:], key)
        else:
            payload = data[4:]
        if flags & FLAG_ENVELOPE:
            return from_wire(self._deserialize(loads, payload, key), key)
        return self._deserialize(loads, payload, key)

    def _pickle_loader(self, bound: bool, key: str | None) -> Callable[[bytes], Any]:
        pickler = self._pickle
        if pickler is None:
            raise SerializationError(
                f"value is pickled but this cache has no signing_key; refusing to unpickle it{_for_key(key)}"
            )
        if not bound:
            return pickler.loads
        key_bytes = _key_bytes(key)
        return lambda payload: pickler.loads_bound(payload, key_bytes)

    def _loader_for(self, fmt: int, key: str | None) -> Callable[[bytes], Any]:
        # Built on first use so a msgpack cache never imports orjson, and vice versa.
        loads: Callable[[bytes], Any]
        fast: Callable[[bytes], Any] | None = None
        if fmt == 1:
            msgpack_serializer = MsgpackSerializer()
            loads, fast = msgpack_serializer.loads, msgpack_serializer.fast_loads
        elif fmt == 2:
            loads = JsonSerializer().loads
        else:  # pickle (3) never gets here: _decode routes it to _pickle_loader
            raise SerializationError(
                f"unknown serializer format id {fmt} in stratacache header{_for_key(key)}"
            )
        self._add_loader(fmt, loads, fast)
        return loads

    def _add_loader(
        self, fmt: int, loads: Callable[[bytes], Any], fast: Callable[[bytes], Any] | None = None
    ) -> None:
        self._loaders[fmt] = loads
        # The plain fast path may use a loader that raises raw errors: _decode_with then
        # retries through the full path, which reports them precisely.
        self._plain_members[bytes((MAGIC, VERSION, fmt, 0))] = fast or loads
        # _plain_values is the same dict unless encryption is required (then it stays empty).
        if self._plain_values is self._plain_members:
            self._plain_envelopes[bytes((MAGIC, VERSION, fmt, FLAG_ENVELOPE))] = fast or loads

    def _decrypt(self, data: bytes, key: str | None, bound: bool) -> bytes:
        aeads = self._aeads
        if aeads is None:
            raise SerializationError(
                f"value is encrypted but this cache has no encryption_keys{_for_key(key)}"
            )
        if len(data) < _ENCRYPTED_MIN_SIZE:
            raise SerializationError(f"encrypted value is truncated{_for_key(key)}")
        candidates = aeads.get(data[4 : 4 + _KEY_ID_SIZE])
        if candidates is None:
            raise SerializationError(
                f"value was encrypted with a key that is not in encryption_keys{_for_key(key)}"
            )
        view = memoryview(data)
        # Bound values authenticate the key too: bytes copied to another key fail here.
        header = data[:4] + _key_bytes(key) if bound else view[:4]
        nonce = view[4 + _KEY_ID_SIZE : 4 + _KEY_ID_SIZE + _NONCE_SIZE]
        sealed = view[4 + _KEY_ID_SIZE + _NONCE_SIZE :]
        invalid_tag = self._invalid_tag
        failure: Exception | None = None
        for aead in candidates:
            try:
                return aead.decrypt(nonce, sealed, header)
            except invalid_tag as exc:
                failure = exc
            except Exception as exc:
                raise SerializationError(f"cannot decrypt value{_for_key(key)}: {_describe(exc)}") from exc
        raise SerializationError(
            f"encrypted value failed authentication (tampered, corrupt, or copied from another "
            f"key){_for_key(key)}"
        ) from failure

    def _decompress(self, compression_id: int, payload: bytes | memoryview, key: str | None) -> bytes:
        decompress = _DECOMPRESSORS[compression_id]
        name = _COMPRESSION_NAMES[compression_id]
        try:
            return decompress(payload if type(payload) is memoryview else memoryview(payload), self._max_size)
        except (SerializationError, ConfigurationError) as exc:
            if key is None:
                raise
            raise type(exc)(f"{exc}{_for_key(key)}") from exc
        except Exception as exc:  # zlib.error, lz4 RuntimeError, ZstdError, MemoryError
            raise SerializationError(
                f"corrupt {name}-compressed value{_for_key(key)}: {_describe(exc)}"
            ) from exc

    def _deserialize(self, loads: Callable[[bytes], Any], payload: bytes, key: str | None) -> Any:
        try:
            return loads(payload)
        except Exception as exc:
            if key is None and isinstance(exc, SerializationError):
                raise
            raise _load_error(exc, key) from exc


def _load_error(exc: Exception, key: str | None) -> SerializationError:
    """The error to raise when a serializer's ``loads`` failed with ``exc``."""
    if isinstance(exc, SerializationError):
        return SerializationError(f"{exc}{_for_key(key)}")
    # A custom serializer's own exception.
    return SerializationError(f"cannot deserialize value{_for_key(key)}: {_describe(exc)}")


def _parse_int(data: bytes, key: str | None) -> int:
    # bytes.isdigit() is ASCII-only, unlike int(), which would also accept "1_000" or " 12\n".
    digits = data[1:] if data[0] == 0x2D else data
    if not digits.isdigit():
        raise SerializationError(f"value starts like an integer but is not one{_for_key(key)}")
    try:
        return int(data)
    except ValueError as exc:  # more digits than sys.get_int_max_str_digits()
        raise SerializationError(f"integer value is too long{_for_key(key)}: {_describe(exc)}") from exc

"""The snapshot format (``.scs``): a point-in-time copy of a keyspace, pure codec.

The server (SAVE, BGSAVE, load at start) and the library's memory backend (``snapshot=``)
write and read the same files through :class:`SnapshotWriter` and :class:`SnapshotReader`,
which only see a binary file object: opening, fsync and rename are the caller's.

Layout (integers little-endian)::

    header   b"SCSNAP" | version u8 (1) | flags u8 (bit 0: blocks zlib-compressed)
             | created u64 (Unix ms)                                      16 bytes
    block*   length u32 (> 0) | payload (length bytes) | crc u32
    end      0 u32 | record count u64 | crc u32

Every ``crc`` is CRC-32 of the block's own bytes (length and payload, or length and
count) *chained* from the previous block's crc, starting from the header's CRC-32: each
check covers the whole file up to that point, so a flipped bit, a dropped or reordered
block and a cut anywhere (header, inside a block, at a block boundary, inside the end
block) are all detected, and the error names the offset of the block at fault. A block
is checked before any of its records is decoded, so a reader never acts on corrupt
bytes; records are decoded lazily, one block (about 64 KiB, or one big record) in
memory at a time.

A payload is a run of records::

    tag u8     type (0 string, 1 list, 2 set, 3 hash, 4 zset) | 0x08 deadline | 0x10 db
    db         varint, when tag & 0x10 (else database 0)
    deadline   u64 Unix ms, when tag & 0x08 (else no expiry)
    key        varint length | bytes
    value      string: varint length | bytes
               list, set: varint count | (varint length | bytes)*
               hash: varint count | (field, value)*   each varint length | bytes
               zset: varint count | (member varint length | bytes | score f64)*

Lengths are LEB128 varints (one byte below 128), so a small string record costs
its key and value plus four bytes.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any, NamedTuple

from .._exceptions import SnapshotError

__all__ = [
    "HASH",
    "KIND_NAMES",
    "LIST",
    "MAGIC",
    "SET",
    "STRING",
    "VERSION",
    "ZSET",
    "Record",
    "SnapshotReader",
    "SnapshotWriter",
    "dumps",
    "loads",
]

MAGIC = b"SCSNAP"
"""The first six bytes of every snapshot file."""
VERSION = 1
"""The format version this module writes and reads."""

STRING, LIST, SET, HASH, ZSET = 0, 1, 2, 3, 4
KIND_NAMES = ("string", "list", "set", "hash", "zset")
"""Type names by record type code (what Redis's TYPE answers)."""

_FLAG_ZLIB = 0x01
_TAG_DEADLINE = 0x08
_TAG_DB = 0x10
_TAG_KIND = 0x07
_HEADER = struct.Struct("<6sBBQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_BLOCK_TARGET = 64 * 1024


class Record(NamedTuple):
    """One key of a snapshot.

    ``value`` is ``bytes`` for a string, a list of ``bytes`` for a list or a set, a list of
    (field, value) pairs for a hash and of (member, score) pairs for a zset.
    ``deadline_ms`` is the Unix time in milliseconds at which the key expires, or None.
    """

    db: int
    key: bytes
    kind: int
    value: Any
    deadline_ms: int | None


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class SnapshotWriter:
    """Write a snapshot to a binary file object, a block at a time.

    ``add_string``/``add`` append records; :meth:`finish` writes the end block (without it
    the file reads as truncated) and returns the record count. ``compress`` deflates each
    block (zlib level 1): smaller files for text-like values, more CPU. The caller owns the
    file (opening, fsync, rename: see the server's and the memory backend's atomic write).
    """

    def __init__(
        self,
        file: IO[bytes],
        *,
        compress: bool = False,
        created_ms: int | None = None,
        block_size: int = _BLOCK_TARGET,
    ) -> None:
        self._file = file
        self._compress = compress
        self._block_size = block_size
        self._buf = bytearray()
        self.count = 0
        created = int(time.time() * 1000) if created_ms is None else created_ms
        header = _HEADER.pack(MAGIC, VERSION, _FLAG_ZLIB if compress else 0, created)
        self._crc = zlib.crc32(header)
        self.bytes_written = len(header)
        file.write(header)
        self._finished = False

    def add_string(self, db: int, key: bytes, value: bytes, deadline_ms: int | None = None) -> None:
        """Append a string record (the common case, kept short)."""
        buf = self._buf
        tag = STRING
        if db:
            tag |= _TAG_DB
        if deadline_ms is not None:
            tag |= _TAG_DEADLINE
        buf.append(tag)
        if db:
            buf += _varint(db)
        if deadline_ms is not None:
            buf += _U64.pack(deadline_ms)
        n = len(key)
        buf += bytes((n,)) if n < 0x80 else _varint(n)
        buf += key
        n = len(value)
        buf += bytes((n,)) if n < 0x80 else _varint(n)
        buf += value
        self.count += 1
        if len(buf) >= self._block_size:
            self._flush()

    def add(self, db: int, key: bytes, kind: int, value: Any, deadline_ms: int | None = None) -> None:
        """Append a record of any type (see :class:`Record` for ``value``'s shape)."""
        if kind == STRING:
            self.add_string(db, key, value, deadline_ms)
            return
        if not LIST <= kind <= ZSET:
            raise ValueError(f"unknown record type {kind!r}")
        buf = self._buf
        tag = kind
        if db:
            tag |= _TAG_DB
        if deadline_ms is not None:
            tag |= _TAG_DEADLINE
        buf.append(tag)
        if db:
            buf += _varint(db)
        if deadline_ms is not None:
            buf += _U64.pack(deadline_ms)
        buf += _varint(len(key))
        buf += key
        items = value if isinstance(value, (list, tuple)) else list(value)
        buf += _varint(len(items))
        if kind in (LIST, SET):
            for item in items:
                buf += _varint(len(item))
                buf += item
        elif kind == HASH:
            for field, val in items:
                buf += _varint(len(field))
                buf += field
                buf += _varint(len(val))
                buf += val
        else:
            for member, score in items:
                buf += _varint(len(member))
                buf += member
                buf += _F64.pack(score)
        self.count += 1
        if len(buf) >= self._block_size:
            self._flush()

    def _flush(self) -> None:
        buf = self._buf
        if not buf:
            return
        payload = zlib.compress(buf, 1) if self._compress else bytes(buf)
        if len(payload) >= 1 << 32:
            raise ValueError("a snapshot record cannot exceed 4 GiB")
        head = _U32.pack(len(payload))
        crc = zlib.crc32(payload, zlib.crc32(head, self._crc))
        self._crc = crc
        self._file.write(head)
        self._file.write(payload)
        self._file.write(_U32.pack(crc))
        self.bytes_written += len(payload) + 8
        buf.clear()

    def finish(self) -> int:
        """Write the last block and the end block; returns the number of records."""
        if not self._finished:
            self._flush()
            end = _U32.pack(0) + _U64.pack(self.count)
            crc = zlib.crc32(end, self._crc)
            self._file.write(end + _U32.pack(crc))
            self.bytes_written += len(end) + 4
            self._finished = True
        return self.count


class SnapshotReader:
    """Read a snapshot from a binary file object; iterate for :class:`Record` objects.

    Every problem raises :class:`~stratacache.SnapshotError` naming ``name`` (the file) and
    the byte offset: a bad magic or version, a truncated file, a checksum mismatch, a
    malformed record, bytes after the end. Iteration stops only after the end block is
    checked (its record count included), so a complete iteration means an intact file.
    """

    def __init__(self, file: IO[bytes], name: str = "<snapshot>", *, size: int | None = None) -> None:
        self._file = file
        self.name = name
        self._size = size
        header = file.read(_HEADER.size)
        if len(header) < 6 or header[:6] != MAGIC:
            raise SnapshotError("not a stratacache snapshot (bad magic)", path=name, offset=0)
        if len(header) < _HEADER.size:
            raise SnapshotError("truncated header", path=name, offset=len(header))
        _, version, flags, created = _HEADER.unpack(header)
        if version != VERSION:
            raise SnapshotError(f"unsupported snapshot version {version}", path=name, offset=6)
        if flags & ~_FLAG_ZLIB:
            raise SnapshotError(f"unknown flags 0x{flags:02x}", path=name, offset=7)
        self.compressed = bool(flags & _FLAG_ZLIB)
        self.created_ms: int = created
        self.count: int | None = None
        self._crc = zlib.crc32(header)
        self._offset = _HEADER.size

    def _error(self, message: str, offset: int) -> SnapshotError:
        return SnapshotError(message, path=self.name, offset=offset)

    def _read(self, n: int, what: str, start: int) -> bytes:
        data = self._file.read(n)
        if len(data) != n:
            raise self._error(f"truncated {what} (file ends {len(data)} of {n} bytes into it)", start)
        return data

    def blocks(self) -> Iterator[tuple[int, bytes]]:
        """(file offset, checked and inflated payload) for each block, then the end check."""
        while True:
            start = self._offset
            head = self._file.read(4)
            if len(head) != 4:
                raise self._error("truncated file: the end block is missing", start)
            (length,) = _U32.unpack(head)
            if length == 0:
                rest = self._read(12, "end block", start)
                crc = zlib.crc32(rest[:8], zlib.crc32(head, self._crc))
                if _U32.unpack_from(rest, 8)[0] != crc:
                    raise self._error("checksum mismatch in the end block", start)
                self.count = _U64.unpack_from(rest)[0]
                self._offset = start + 16
                if self._file.read(1):
                    raise self._error("unexpected bytes after the end block", start + 16)
                return
            if self._size is not None and start + 8 + length > self._size:
                raise self._error(
                    f"block of {length} bytes runs past the end of the file (truncated or corrupt)", start
                )
            payload = self._read(length, "block", start)
            tail = self._read(4, "block checksum", start)
            crc = zlib.crc32(payload, zlib.crc32(head, self._crc))
            if _U32.unpack(tail)[0] != crc:
                raise self._error("checksum mismatch (corrupt block)", start)
            self._crc = crc
            self._offset = start + 8 + length
            if self.compressed:
                try:
                    payload = zlib.decompress(payload)
                except zlib.error as exc:
                    raise self._error(f"cannot inflate block: {exc}", start) from exc
            yield start, payload

    def __iter__(self) -> Iterator[Record]:
        seen = 0
        for start, payload in self.blocks():
            for record in self._records(start, payload):
                seen += 1
                yield record
        if self.count != seen:
            message = f"the end block counts {self.count} records, the file holds {seen}"
            raise self._error(message, self._offset)

    def _records(self, start: int, data: bytes) -> Iterator[Record]:
        pos = at = 0
        end = len(data)
        u64 = _U64.unpack_from
        f64 = _F64.unpack_from
        try:
            while pos < end:
                at = pos
                tag = data[pos]
                pos += 1
                kind = tag & _TAG_KIND
                if tag & ~(_TAG_KIND | _TAG_DB | _TAG_DEADLINE) or kind > ZSET:
                    raise ValueError(f"bad record tag 0x{tag:02x}")
                db = 0
                if tag & _TAG_DB:
                    db, pos = _read_varint(data, pos)
                deadline: int | None = None
                if tag & _TAG_DEADLINE:
                    deadline = u64(data, pos)[0]
                    pos += 8
                n = data[pos]
                if n < 0x80:
                    pos += 1
                else:
                    n, pos = _read_varint(data, pos)
                key = data[pos : pos + n]
                pos += n
                value: Any
                if kind == STRING:
                    n = data[pos]
                    if n < 0x80:
                        pos += 1
                    else:
                        n, pos = _read_varint(data, pos)
                    value = data[pos : pos + n]
                    pos += n
                else:
                    count, pos = _read_varint(data, pos)
                    items: list[Any] = []
                    for _ in range(count):
                        n, pos = _read_varint(data, pos)
                        item = data[pos : pos + n]
                        pos += n
                        if kind == HASH:
                            n, pos = _read_varint(data, pos)
                            items.append((item, data[pos : pos + n]))
                            pos += n
                        elif kind == ZSET:
                            items.append((item, f64(data, pos)[0]))
                            pos += 8
                        else:
                            items.append(item)
                    value = items
                if pos > end:
                    raise ValueError("record runs past the end of its block")
                yield Record(db, key, kind, value, deadline)
        except (IndexError, ValueError, struct.error) as exc:
            # Only a writer bug or a forged checksum gets here: the block's CRC matched.
            where = start + 8 + at if not self.compressed else start
            raise self._error(f"malformed record: {exc}", where) from None


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def dumps(records: Iterable[Record], *, compress: bool = False, created_ms: int | None = None) -> bytes:
    """A whole snapshot as bytes (small snapshots, tests)."""
    import io

    out = io.BytesIO()
    writer = SnapshotWriter(out, compress=compress, created_ms=created_ms)
    for record in records:
        writer.add(record.db, record.key, record.kind, record.value, record.deadline_ms)
    writer.finish()
    return out.getvalue()


def loads(data: bytes, name: str = "<snapshot>") -> list[Record]:
    """Every record of a snapshot given as bytes (checked whole: see :class:`SnapshotReader`)."""
    import io

    return list(SnapshotReader(io.BytesIO(data), name, size=len(data)))

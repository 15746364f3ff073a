"""Reading an append-only log without running it: where it ends well, and what is wrong after.

:func:`scan` walks the RESP of a log (arrays of bulk strings, as Redis writes them) and
answers a :class:`ScanResult`: how many whole commands it holds, the offset just after the
last good one, and the problem, if any, classified as Redis classifies it:

* ``truncated``: the file ends inside a command (a torn tail: the crash came mid-write), or
  inside a MULTI block with no EXEC (then the good end is the MULTI: a transaction applies
  whole or not at all);
* ``corrupt``: bytes that are no RESP command where one must start or continue.

The server's loader uses the compiled batch parser for speed and calls :func:`scan` only to
describe a problem it met; ``stratacache check-log`` (:func:`check_log`) uses it for the
whole file. This module imports nothing of the server, so the command line stays light.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ScanResult", "check_log", "scan"]

_COMMAND_START = re.compile(rb"\*[1-9][0-9]*\r\n\$")


@dataclass(slots=True)
class ScanResult:
    """What :func:`scan` found (offsets are bytes from the start of the file)."""

    size: int
    """Bytes scanned to (the end of the file)."""
    commands: int
    """Whole commands before :attr:`good`."""
    good: int
    """Offset just after the last command that may be kept (the safe truncation point)."""
    kind: str
    """``ok``, ``truncated`` or ``corrupt``."""
    problem: str = ""
    """What is wrong, in words (empty when ``ok``)."""
    at: int = 0
    """Offset of the problem: the byte that is wrong, or where the torn command starts."""


def _digits(buf: Any, start: int, end: int) -> int | None:
    text = bytes(buf[start:end])
    if not text or not text.isdigit():
        return None
    return int(text)


def _partial_line_ok(buf: Any, start: int, end: int) -> bool:
    """Whether the bytes from ``start`` to the end are a prefix of ``<digits>\\r``."""
    text = bytes(buf[start:end]).removesuffix(b"\r")
    return text.isdigit() or not text


def scan(buf: Any, start: int = 0, *, stop_after: int | None = None) -> ScanResult:
    """Walk the commands of ``buf`` (bytes or an mmap) from ``start`` (a command boundary).

    ``stop_after``: stop (kind ``ok``) after that many commands, to find a command's offset.
    """
    size = len(buf)
    pos = start
    count = 0
    good = start
    multi_at: int | None = None
    multi_count = 0

    def truncated(at: int, why: str) -> ScanResult:
        if multi_at is not None:
            return ScanResult(
                size,
                count - multi_count,
                multi_at,
                "truncated",
                f"{why}, inside a MULTI block opened at byte {multi_at} (the block is dropped whole)",
                at,
            )
        return ScanResult(size, count, good, "truncated", why, at)

    def corrupt(at: int, why: str) -> ScanResult:
        return ScanResult(size, count, good, "corrupt", why, at)

    while pos < size:
        if stop_after is not None and count >= stop_after:
            return ScanResult(size, count, good, "ok")
        begin = pos
        if buf[pos] != 0x2A:  # "*"
            return corrupt(pos, f"expected '*' (a command) but found {bytes(buf[pos : pos + 1])!r}")
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if _partial_line_ok(buf, pos + 1, size):
                return truncated(begin, "the last command is incomplete")
            return corrupt(pos + 1, "bad multibulk count")
        argc = _digits(buf, pos + 1, eol)
        if argc is None or argc < 1:
            return corrupt(pos + 1, f"bad multibulk count {bytes(buf[pos + 1 : eol])!r}")
        pos = eol + 2
        name = b""
        for index in range(argc):
            if pos >= size:
                return truncated(begin, "the last command is incomplete")
            if buf[pos] != 0x24:  # "$"
                return corrupt(pos, f"expected '$' (an argument) but found {bytes(buf[pos : pos + 1])!r}")
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if _partial_line_ok(buf, pos + 1, size):
                    return truncated(begin, "the last command is incomplete")
                return corrupt(pos + 1, "bad bulk length")
            length = _digits(buf, pos + 1, eol)
            if length is None:
                return corrupt(pos + 1, f"bad bulk length {bytes(buf[pos + 1 : eol])!r}")
            end = eol + 2 + length
            if end + 2 > size:
                if end < size and buf[end] != 0x0D:
                    return corrupt(end, "an argument is not followed by CRLF")
                return truncated(begin, "the last command is incomplete")
            if buf[end : end + 2] != b"\r\n":
                return corrupt(end, "an argument is not followed by CRLF")
            if index == 0:
                name = bytes(buf[eol + 2 : end]).lower()
            pos = end + 2
        count += 1
        if name == b"multi":
            multi_at = begin
            multi_count = 1
        elif multi_at is not None:
            multi_count += 1
            if name in (b"exec", b"discard"):
                multi_at = None
        if multi_at is None:
            good = pos
    if multi_at is not None:
        return truncated(size, "the log ends inside a MULTI block with no EXEC")
    return ScanResult(size, count, good, "ok")


def _lost_commands(buf: Any, start: int) -> int:
    """About how many commands the bytes from ``start`` hold (starts of commands found)."""
    return len(_COMMAND_START.findall(bytes(buf[start:])))


def check_log(path: str, *, fix: bool, truncate_at_corruption: bool, out: Callable[[str], None]) -> int:
    """``stratacache check-log``: explain a log, and with ``fix`` repair it. Exit status:
    0 when the log is whole (or was repaired), 1 when a problem remains, 2 when unreadable."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                out(f"{path}: empty (0 bytes, no commands): nothing to check")
                return 0
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                result = scan(buf)
                lost_commands = _lost_commands(buf, result.good) if result.kind == "corrupt" else 0
    except OSError as exc:
        out(f"{path}: cannot read the log: {exc.strerror}")
        return 2
    out(f"{path}: {size} bytes, {result.commands} whole commands, last good offset {result.good}")
    if result.kind == "ok":
        out("ok: every command is whole; the log loads as is")
        return 0
    lost = size - result.good
    if result.kind == "truncated":
        out(
            f"torn tail: {result.problem} (from byte {result.at}); "
            f"the {lost} bytes after offset {result.good} would be dropped at load "
            f"(aof-load-truncated yes) or refused (aof-load-truncated no)"
        )
        if not fix:
            out(f"run: stratacache check-log --fix {path}   to truncate it to {result.good} bytes")
            return 1
    else:
        out(f"corrupt: at byte offset {result.at}: {result.problem}")
        out(
            f"the server refuses this log; truncating at the corruption would lose {lost} bytes "
            f"(about {lost_commands} commands) after offset {result.good}"
        )
        if not (fix and truncate_at_corruption):
            out(
                f"run: stratacache check-log --fix --truncate-at-corruption {path}   "
                "to keep only what precedes it (look at the bytes first)"
            )
            return 1
    try:
        os.truncate(path, result.good)
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
    except OSError as exc:
        out(f"{path}: cannot truncate: {exc.strerror}")
        return 2
    what = "an incomplete command" if result.kind == "truncated" else f"about {lost_commands} commands"
    out(f"fixed: truncated {path} to {result.good} bytes ({lost} bytes, {what}, removed)")
    return 0

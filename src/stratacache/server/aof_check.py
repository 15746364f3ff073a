"""Reading an append-only log without running it: where it ends well, and what is wrong after.

:func:`scan` walks the RESP of a log (arrays of bulk strings, as Redis writes them) and
answers a :class:`ScanResult`: how many whole commands it holds, the offset just after the
last good one, and the problem, if any, classified as Redis classifies it:

* ``truncated``: the file ends inside a command (a torn tail: the crash came mid-write), or
  inside a MULTI block with no EXEC (then the good end is the MULTI: a transaction applies
  whole or not at all);
* ``corrupt``: bytes that are no RESP command where one must start or continue.

The RESP itself is read by the server's pure parser (:class:`~.resp.RequestParser`), which
reports the offset of a problem and whether the input just ends inside a command. The
server's loader uses the compiled batch parser for speed and calls :func:`scan` only to
describe a problem it met; ``stratacache check-log`` (:func:`check_log`) uses it for the
whole file.
"""

from __future__ import annotations

import mmap
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .resp import IncompleteCommand, ProtocolViolation, RequestParser

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


_SCAN_CHUNK = 1 << 20  # bytes handed to the parser at a time (the log may be an mmap)


def scan(buf: Any, start: int = 0, *, stop_after: int | None = None) -> ScanResult:
    """Walk the commands of ``buf`` (bytes or an mmap) from ``start`` (a command boundary).

    The RESP is read by the server's pure parser (:class:`~.resp.RequestParser`, with no
    inline requests and no length limit), which says where a problem is and whether the
    input merely ends inside a command; this adds what a log means: a MULTI block is kept
    or dropped whole. ``stop_after``: stop (kind ``ok``) after that many commands, to find
    a command's offset.
    """
    size = len(buf)
    parser = RequestParser(sys.maxsize, inline=False)
    count = 0
    good = start
    multi_at: int | None = None
    multi_count = 0
    fed = start
    begin = start  # where the command being read starts (commands are back to back)

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

    def corrupt(at: int, expected: str) -> ScanResult:
        found = bytes(buf[at : at + 16])
        return ScanResult(size, count, good, "corrupt", f"expected {expected}, found {found!r}", at)

    next_command = parser.next
    try:
        while True:
            if stop_after is not None and count >= stop_after:
                return ScanResult(size, count, good, "ok")
            args = next_command()
            if args is None:
                if fed >= size:
                    parser.finish()
                    break
                parser.feed(buf[fed : fed + _SCAN_CHUNK])
                fed += _SCAN_CHUNK
                continue
            if not args:  # '*0' or '*-1': the parser's empty command, never in a log
                return corrupt(begin + 1, "an argument count of 1 or more")
            count += 1
            name = args[0].lower()
            if name == b"multi":
                multi_at = begin
                multi_count = 1
            elif multi_at is not None:
                multi_count += 1
                if name in (b"exec", b"discard"):
                    multi_at = None
            begin = start + parser.offset
            if multi_at is None:
                good = begin
    except IncompleteCommand as exc:
        return truncated(start + exc.offset, "the last command is incomplete")
    except ProtocolViolation as exc:
        return corrupt(start + exc.offset, exc.expected)
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

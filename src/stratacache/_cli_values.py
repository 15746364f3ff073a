"""How the command line shows values, parses them, and reads a file of entries to warm.

* Shown (``get``): text as it is, other values as Python writes them (``repr``); ``--json``
  writes JSON (bytes that are UTF-8 as text, sets and tuples as lists); ``--raw`` writes
  the stored bytes or text exactly, with no newline added.
* Parsed (``set``): text by default; ``--json`` parses the argument as JSON (numbers,
  lists, objects, ``null``); ``--raw`` stores the argument's UTF-8 bytes. A value of ``-``
  is read from stdin.
* Entry files (``warm --from``): JSON lines (``{"key": ..., "value": ...}`` or
  ``[key, value]`` per line) or CSV (``key,value`` rows; a first row ``key,value`` is a
  header). Chosen by the file's extension, or ``--format``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._exceptions import InvalidArgument

__all__ = ["FORMATS", "format_value", "parse_value", "read_entries", "to_json"]

#: Entry-file formats by name, and the extensions that select them.
FORMATS = {"jsonl": (".jsonl", ".ndjson", ".json"), "csv": (".csv",)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError("bytes that are not UTF-8 text") from None
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"a {type(value).__name__}")


def to_json(value: Any) -> str:
    """``value`` as JSON text; :class:`InvalidArgument` when it has no JSON form."""
    try:
        return json.dumps(value, default=_jsonable, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"the value cannot be shown as JSON ({exc}); try --raw or no flag") from exc


def format_value(value: Any, *, as_json: bool = False) -> str:
    """The text ``get`` prints for ``value`` (see the module docstring)."""
    if as_json:
        return to_json(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return repr(value)
    return repr(value)


def raw_bytes(value: Any) -> bytes:
    """The bytes ``get --raw`` writes: stored bytes as they are, text as UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise InvalidArgument(f"--raw needs a stored str or bytes, and the value is a {type(value).__name__}")


def parse_value(text: str, *, as_json: bool = False, raw: bool = False) -> Any:
    """The value ``set`` stores for the argument ``text`` (see the module docstring)."""
    if as_json and raw:
        raise InvalidArgument("--json and --raw cannot be combined")
    if as_json:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"the value is not valid JSON: {exc}") from exc
    if raw:
        return text.encode("utf-8")
    return text


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidArgument(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt
    for name, suffixes in FORMATS.items():
        if path.suffix.lower() in suffixes:
            return name
    raise InvalidArgument(
        f"cannot tell the format of {str(path)!r} from its extension; "
        "name it .jsonl or .csv, or pass --format jsonl|csv"
    )


def _jsonl_entries(path: Path, lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InvalidArgument(f"{where}: not valid JSON: {exc}") from exc
        if isinstance(row, dict) and set(row) == {"key", "value"}:
            key, value = row["key"], row["value"]
        elif isinstance(row, list) and len(row) == 2:
            key, value = row
        else:
            raise InvalidArgument(f'{where}: expected {{"key": ..., "value": ...}} or [key, value]')
        if not isinstance(key, str):
            raise InvalidArgument(f"{where}: the key must be a string, not {type(key).__name__}")
        yield key, value


def _csv_entries(path: Path, lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    for number, row in enumerate(csv.reader(lines), 1):
        if not row:
            continue
        if len(row) != 2:
            raise InvalidArgument(f"{path}:{number}: expected 2 columns (key,value), found {len(row)}")
        if number == 1 and [c.strip().lower() for c in row] == ["key", "value"]:
            continue  # the header
        yield row[0], row[1]


def read_entries(path: str | Path, fmt: str | None = None) -> dict[str, Any]:
    """The entries of a JSON lines or CSV file, in file order (a repeated key: the last wins)."""
    path = Path(path)
    kind = _format_of(path, fmt)
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = _jsonl_entries(path, f) if kind == "jsonl" else _csv_entries(path, f)
            return dict(rows)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{str(path)!r} is not UTF-8 text: {exc}") from exc

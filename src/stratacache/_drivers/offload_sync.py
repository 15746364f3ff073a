"""Run the file backend's blocking engine calls (sync flavour): in the caller's thread.

The pair of ``offload_async.py``; the generated sync file backend imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["run"]

_T = TypeVar("_T")


def run(fn: Callable[..., _T], /, *args: object) -> _T:
    """``fn(*args)``, right here."""
    return fn(*args)

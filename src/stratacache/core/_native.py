"""The optional compiled helpers (``core/_speedups.c``), or ``None`` when they are not there.

They are built by ``pip install`` when a C compiler is present (setup.py marks the extension
optional). ``STRATACACHE_NO_SPEEDUPS=1`` in the environment, read at import, makes the package
use its pure-Python code even when they are built: the results are the same, only slower.
Code that uses them reads ``speedups`` from this module at call time, so a test can swap it.
"""

from __future__ import annotations

import os

__all__ = ["speedups"]

try:
    if os.environ.get("STRATACACHE_NO_SPEEDUPS", "") not in ("", "0"):
        raise ImportError("disabled by STRATACACHE_NO_SPEEDUPS")
    from . import _speedups as speedups
except ImportError:
    speedups = None  # type: ignore[assignment]

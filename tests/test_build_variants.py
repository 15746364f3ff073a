"""The build a test run is meant to exercise is the one it imports.

``scripts/pure.sh`` runs the engine's tests on a copy of the package with no compiled
extension (the install a user without a C compiler gets) and ``scripts/sanitize.sh`` on one
built with AddressSanitizer and UBSan. Each sets ``STRATACACHE_EXPECT_EXTENSION`` (``none``, or
the path of the extension it built), so a run that silently picked up another build, such as
the editable install's extension, fails here instead of testing the wrong code.
"""

from __future__ import annotations

import importlib
import os

import pytest

from stratacache.core import _native

EXPECTED = os.environ.get("STRATACACHE_EXPECT_EXTENSION", "")
pytestmark = pytest.mark.skipif(not EXPECTED, reason="STRATACACHE_EXPECT_EXTENSION is not set")


def test_the_run_imports_the_build_it_names() -> None:
    if EXPECTED == "none":
        assert _native.speedups is None
        with pytest.raises(ImportError):
            importlib.import_module("stratacache.core._speedups")
    else:
        assert _native.speedups is not None
        assert os.path.samefile(_native.speedups.__file__ or "", EXPECTED)

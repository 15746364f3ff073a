"""A smoke run of benchmarks/server_bench.py at tiny sizes: it starts both servers, runs
redis-benchmark, loads keys and writes its table into a Markdown file's Server section,
keeping the other sections. No timing is asserted (figures on a shared machine vary)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "server_bench.py"

pytestmark = pytest.mark.skipif(
    shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None,
    reason="needs redis-server and redis-benchmark",
)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("server_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["server_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_the_server_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load()
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Other section\n\nkept\n")
    assert bench.main(["--requests", "2000", "--keys", "500", "--no-pin", "--output", str(doc)]) == 0
    printed = capsys.readouterr().out
    assert "| GET rps, -c 50 -P 16 |" in printed
    text = doc.read_text()
    assert text.index(bench.SECTION) < text.index("## Other section")
    assert "kept" in text
    assert "Intro." in text
    assert "| RSS with 500 keys (MiB) |" in text
    # A second run replaces the block instead of adding one.
    assert bench.main(["--requests", "2000", "--keys", "300", "--no-pin", "--output", str(doc)]) == 0
    text = doc.read_text()
    assert text.count(bench.BEGIN) == 1
    assert "| RSS with 300 keys (MiB) |" in text
    assert "500 keys" not in text

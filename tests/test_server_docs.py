"""docs/server-reference.md is generated from the command and option tables: it must be current.

Run in a fresh interpreter, so that nothing another test registered or changed in the tables
of this process ends up compared.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_server_docs.py"
PAGE = ROOT / "docs" / "server-reference.md"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_server_reference_is_current() -> None:
    result = _run("--check")
    assert result.returncode == 0, (
        f"{result.stdout}\n{result.stderr}\nregenerate it: python scripts/gen_server_docs.py"
    )


def test_check_fails_on_a_stale_page_and_names_the_fix(tmp_path: Path) -> None:
    # The page with one row taken out: --check must notice and say how to regenerate.
    lines = PAGE.read_text(encoding="utf-8").splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if line.startswith("| `GET` |"))
    stale = tmp_path / "server-reference.md"
    stale.write_text("".join(lines[:row] + lines[row + 1 :]), encoding="utf-8")
    result = _run("--check", "--page", str(stale))
    assert result.returncode == 1
    assert "+| `GET` |" in result.stdout  # the diff shows the row the page lacks
    assert "run `python scripts/gen_server_docs.py`" in result.stderr
    assert _run("--page", str(stale)).returncode == 0  # regenerating repairs it
    assert _run("--check", "--page", str(stale)).returncode == 0


def test_every_command_and_option_is_listed() -> None:
    from stratacache.server.commands import load
    from stratacache.server.config import OPTIONS

    page = PAGE.read_text(encoding="utf-8")
    for name, cmd in load().items():
        if "hidden" in cmd.flags:
            assert f"| `{name.decode().upper()}` |" not in page, name
            continue
        assert f"| `{name.decode().upper()}` |" in page, name
        for sub in cmd.subcommands:
            assert f"| `{cmd.name.upper()} {sub.upper()}` |" in page, (name, sub)
    for option in OPTIONS:
        assert f"| `{option}` |" in page, option

"""The documentation site: every page is in the nav, the guides' code runs, the hooks work.

``mkdocs build --strict`` itself runs in scripts/test.sh (it needs the ``docs`` extra and
takes a few seconds); here: what the build cannot check. The Python blocks of the guides
are run as they are written, the canonical local Redis/Memcached URLs they use replaced by
the test servers' (a block preceded by ``<!-- not run: why -->`` is skipped).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REDIS_URL = "redis://127.0.0.1:6379/0"
MEMCACHED_URL = "memcached://127.0.0.1:11211"
_BLOCK = re.compile(r"(<!-- not run: [^>]*-->\n)?```python\n(.*?)```", re.DOTALL)


def _nav_files(items: Any) -> list[str]:
    found: list[str] = []
    for item in items:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                found += _nav_files(value) if isinstance(value, list) else [value]
    return found


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return config


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    nav = _nav_files(_config()["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(set(pages) - set(nav)) == [], "pages missing from the nav in mkdocs.yml"
    assert sorted(set(nav) - set(pages)) == [], "nav entries without a page"
    assert len(nav) == len(set(nav)), "a page is in the nav twice"


def test_docs_extra_and_strict_build_are_wired() -> None:
    assert _config()["strict"] is True
    assert "mkdocs build --strict" in (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'docs = ["mkdocs-material' in pyproject


def _guide_blocks() -> list[Any]:
    params = []
    for page in sorted((DOCS / "guides").glob("*.md")):
        for n, match in enumerate(_BLOCK.finditer(page.read_text(encoding="utf-8"))):
            skip, code = match.groups()
            if not skip:
                params.append(pytest.param(page.name, code, id=f"{page.stem}-{n}"))
    return params


@pytest.mark.parametrize(("page", "code"), _guide_blocks())
def test_guide_code_runs(page: str, code: str, request: pytest.FixtureRequest) -> None:
    if REDIS_URL in code:
        code = code.replace(REDIS_URL, request.getfixturevalue("redis_server").url)
    if MEMCACHED_URL in code:
        code = code.replace(MEMCACHED_URL, request.getfixturevalue("memcached_server").url)
    exec(compile(code, f"docs/guides/{page}", "exec"), {"__name__": "__docs__"})


def test_cli_page_lists_every_command() -> None:
    from stratacache import cli

    text = (DOCS / "guides" / "cli.md").read_text(encoding="utf-8")
    commands = re.findall(r'sub\.add_parser\(\s*"([a-z-]+)"', Path(cli.__file__).read_text(encoding="utf-8"))
    commands += re.findall(r'command\("([a-z]+)"', Path(cli.__file__).read_text(encoding="utf-8"))
    assert len(commands) >= 12
    for name in commands:
        assert f"`stratacache {name}" in text, name


# ------------------------------------------------------------------ the mkdocs hooks


def _script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (registered: its dataclasses look their module up)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _hooks() -> ModuleType:
    return _script("mkdocs_hooks")


class _Page:
    def __init__(self, src_uri: str) -> None:
        self.file = type("File", (), {"src_uri": src_uri})()


def test_hook_links_outside_docs_become_paths(tmp_path: Path) -> None:
    hooks = _hooks()
    text = (
        "see [benchmarks/README.md](../benchmarks/README.md), [the script](../../scripts/x.py#top), "
        "[a page](redis.md), [a site](https://example.org/a.md) and [here](#here)"
    )
    out = hooks.on_page_markdown(text, _Page("guides/a.md"), {"docs_dir": str(tmp_path)}, None)
    assert out == (
        "see [benchmarks/README.md](../benchmarks/README.md), the script (`scripts/x.py`), "
        "[a page](redis.md), [a site](https://example.org/a.md) and [here](#here)"
    )
    out = hooks.on_page_markdown(text, _Page("a.md"), {"docs_dir": str(tmp_path)}, None)
    assert out.startswith("see `benchmarks/README.md`, the script (`../scripts/x.py`)")


def test_hook_escapes_brackets_in_table_rows_only(tmp_path: Path) -> None:
    hooks = _hooks()
    text = "| `CMD [A]` | CMD [PREFIX p ...] [NOLOOP] [link](x.md) |\n[ref] outside a table"
    out = hooks.on_page_markdown(text, _Page("a.md"), {"docs_dir": str(tmp_path)}, None)
    assert out == ("| `CMD [A]` | CMD \\[PREFIX p ...\\] \\[NOLOOP\\] [link](x.md) |\n[ref] outside a table")


def test_hook_lists_the_pages_of_a_folder(tmp_path: Path) -> None:
    hooks = _hooks()
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "tags.md").write_text("intro\n# Tags and `invalidate_tags`\n")
    (tmp_path / "patterns" / "rate-limiting.md").write_text("no heading\n")
    (tmp_path / "patterns" / "index.md").write_text("# Index\n")
    text = "Pages:\n\n<!-- pages: patterns -->\n\n<!-- pages: integrations -->\n"
    out = hooks.on_page_markdown(text, _Page("guides/patterns.md"), {"docs_dir": str(tmp_path)}, None)
    assert out == (
        "Pages:\n\n- [Rate limiting](../patterns/rate-limiting.md)\n"
        "- [Tags and invalidate_tags](../patterns/tags.md)\n\n*(No pages yet.)*\n"
    )


def test_hook_puts_every_other_public_name_in_the_api_reference(tmp_path: Path) -> None:
    import stratacache

    hooks = _hooks()
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "cache.md").write_text(
        "::: stratacache.Cache\n\n::: stratacache._exceptions\n"
        "    options:\n      members:\n        - CacheError\n"
    )
    (tmp_path / "api" / "more.md").write_text("<!-- api: rest -->\n")
    out = hooks.on_page_markdown(
        "# More\n<!-- api: rest -->\n", _Page("api/more.md"), {"docs_dir": str(tmp_path)}, None
    )
    entries = re.findall(r"^::: (\S+)$", out, re.MULTILINE)
    names = {entry.rpartition(".")[2] for entry in entries}
    assert names == {n for n in stratacache.__all__ if not n.startswith("__")} - {"Cache", "CacheError"}
    assert "stratacache._sync.backends.redis.RedisBackend" in entries  # a lazily exported name
    assert "stratacache.MISSING" in entries
    # On the real pages: everything is documented somewhere, so the reference is complete.
    real = hooks.undocumented_names(DOCS / "api", exclude=DOCS / "api" / "more.md")
    assert "<!-- api: rest -->" in (DOCS / "api" / "more.md").read_text(encoding="utf-8")
    assert "Cache" not in real


# ------------------------------------------------------------------ benchmark plots


def _plot_script() -> ModuleType:
    return _script("plot_benchmarks")


def test_benchmark_plots_are_committed_and_shown() -> None:
    plots = _plot_script()
    assert plots.main(["--check"]) == 0
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    for chart in plots.CHARTS:
        assert f"(img/{chart.name}.png)" in page


def test_benchmark_plots_draw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plots = _plot_script()
    page = tmp_path / "benchmarks.md"
    page.write_text(
        "# B\n\n## Server (issue 14): x\n\n| measure | ours | redis | ratio |\n|---|--:|--:|--:|\n"
        "| SET rps | 50 | 100 | 0.50x |\n| p50 ms, lru / tinylfu | 1 | 2 | 0.5x / 2.0x |\n"
        "| no ratio | 1 | 1 | |\n\n## Next\n\n| a | ratio |\n|---|---|\n| b | 9x |\n"
    )
    server = plots.CHARTS[0]
    assert plots.bars(server, page.read_text()) == [
        ("SET rps", 2.0),
        ("p50 ms, lru", 0.5),
        ("p50 ms, tinylfu", 2.0),
    ]
    assert plots.main(["--page", str(page), "--out", str(tmp_path / "img")]) == 1  # the other charts' tables
    err = capsys.readouterr().err
    assert "bench-memcached-listener: no table 0 under '## Memcached listener'" in err
    assert (tmp_path / "img" / "bench-server.png").read_bytes()[:4] == b"\x89PNG"
    assert plots.main(["--page", str(page), "--out", str(tmp_path / "none"), "--check"]) == 1
    assert "is missing" in capsys.readouterr().err

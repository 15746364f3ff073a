"""mkdocs hooks for the documentation site (``hooks:`` in mkdocs.yml).

The pages under ``docs/`` are also read on the repository's web view, where a link to
``../benchmarks/README.md`` works; the site holds only ``docs/``, so:

* a link to a file of the repository outside ``docs/`` is shown as its path in code
  (``benchmarks/README.md``) instead of a link that would be broken on the site;
* ``[WORD]`` inside a table row (command syntax such as ``[NOLOOP]`` in the generated
  server reference) is escaped, so that it is not read as a reference link;
* a line ``<!-- pages: patterns -->`` becomes a list of links to the pages that exist in
  ``docs/patterns/`` (each titled by its first heading), so an index page never links to a
  page that is not there; the same for any other folder of ``docs/``;
* a line ``<!-- api: rest -->`` becomes a mkdocstrings ``:::`` entry for every name of
  ``stratacache.__all__`` that no other page of ``docs/api/`` documents, so a public name
  added later is in the API reference even before someone gives it a place.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

__all__ = ["on_page_markdown"]

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BRACKETS = re.compile(r"(?<![\\!\]])\[([^\]\[]*)\](?![(\[:])")
_PAGES = re.compile(r"^<!-- pages: ([\w./-]+) -->$", re.MULTILINE)
_API_REST = "<!-- api: rest -->"
# "::: stratacache.x.Name" entries, and the names listed under a "members:" option.
_DOCUMENTED = re.compile(r"^:::\s*[\w.]*?(\w+)\s*$|^\s+- (\w+)\s*$", re.MULTILINE)


def _outside_links(markdown: str, page_path: str) -> str:
    base = posixpath.dirname(page_path)

    def replace(match: re.Match[str]) -> str:
        text, target = match.groups()
        if "://" in target or target.startswith(("#", "mailto:")):
            return match.group(0)
        resolved = posixpath.normpath(posixpath.join(base, target.split("#")[0]))
        if not resolved.startswith("../"):
            return match.group(0)
        shown = resolved.removeprefix("../")
        return f"`{shown}`" if text.strip("`") == shown else f"{text} (`{shown}`)"

    return _LINK.sub(replace, markdown)


def _escape_table_brackets(markdown: str) -> str:
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("|"):
            # Only outside code spans (the odd pieces between backticks are code).
            pieces = line.split("`")
            pieces[::2] = [_BRACKETS.sub(r"\\[\1\\]", piece) for piece in pieces[::2]]
            lines[i] = "`".join(pieces)
    return "\n".join(lines)


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip().replace("`", "")
    return path.stem.replace("-", " ").capitalize()


def _page_lists(markdown: str, page_path: str, docs_dir: Path) -> str:
    def replace(match: re.Match[str]) -> str:
        folder = match.group(1)
        pages = sorted(p for p in (docs_dir / folder).glob("*.md") if p.name != "index.md")
        if not pages:
            return "*(No pages yet.)*"
        base = posixpath.dirname(page_path)
        lines = []
        for page in pages:
            target = posixpath.relpath(f"{folder}/{page.name}", base or ".")
            lines.append(f"- [{_title(page)}]({target})")
        return "\n".join(lines)

    return _PAGES.sub(replace, markdown)


def undocumented_names(api_dir: Path, exclude: Path | None = None) -> list[str]:
    """The names of ``stratacache.__all__`` that no ``:::`` entry of ``api_dir``'s pages names."""
    import stratacache

    documented: set[str] = set()
    for page in api_dir.glob("*.md"):
        if page != exclude:
            for entry, member in _DOCUMENTED.findall(page.read_text(encoding="utf-8")):
                documented.add(entry or member)
    return sorted(n for n in stratacache.__all__ if not n.startswith("__") and n not in documented)


def _api_rest(markdown: str, page_path: str, docs_dir: Path) -> str:
    if _API_REST not in markdown:
        return markdown
    import stratacache

    lazy: dict[str, str] = getattr(stratacache, "_LAZY", {})
    entries = [
        f"::: {lazy.get(name, 'stratacache')}.{name}"
        for name in undocumented_names(docs_dir / "api", exclude=docs_dir / page_path)
    ]
    return markdown.replace(_API_REST, "\n\n".join(entries) or "*(Every public name has its page.)*")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite one page's Markdown before it is rendered (see the module docstring)."""
    path = page.file.src_uri
    markdown = _page_lists(markdown, path, Path(config["docs_dir"]))
    markdown = _api_rest(markdown, path, Path(config["docs_dir"]))
    markdown = _outside_links(markdown, path)
    return _escape_table_brackets(markdown)

"""The README is a short front door, and every link and path the documents name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT

README_MAX_BYTES = 15_000
DOCUMENTS = sorted(
    [PROJECT_ROOT / "README.md", PROJECT_ROOT / "CHANGELOG.md", *PROJECT_ROOT.glob("docs/*.md")]
)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path of this repository in backticks: `feeds/http/pages.py`, `config/`, `bench/run.py`.
_PATH = re.compile(r"`((?:feeds|config|bench|tests|docs|seeds)/[A-Za-z0-9_./-]*)`")


# Folders a run writes (listed in .gitignore), named by the documents but never committed.
GENERATED = {
    line for line in (PROJECT_ROOT / ".gitignore").read_text().splitlines() if "/" in line[:-1]
}


def _name(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def test_readme_fits_on_a_screen_or_two() -> None:
    assert (PROJECT_ROOT / "README.md").stat().st_size <= README_MAX_BYTES


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_every_relative_link_resolves(document: Path) -> None:
    text = document.read_text()
    targets = [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)]
    missing = [
        t for t in targets if not (document.parent / t.split("#", 1)[0]).exists() and t[0] != "#"
    ]
    assert missing == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_every_named_path_exists(document: Path) -> None:
    named = set(_PATH.findall(document.read_text())) - GENERATED
    assert sorted(p for p in named if not (PROJECT_ROOT / p).exists()) == []


def test_the_layout_names_every_module() -> None:
    layout = (PROJECT_ROOT / "docs" / "layout.md").read_text()
    modules = [
        _name(path)
        for path in sorted((PROJECT_ROOT / "feeds").rglob("*.py"))
        if path.name != "__init__.py" or path.parent.name == "render"
    ]
    assert [m for m in modules if f"`{m}`" not in layout] == []


def test_every_document_is_reachable_from_the_readme() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert [_name(d) for d in DOCUMENTS if d.name != "README.md" and _name(d) not in readme] == []

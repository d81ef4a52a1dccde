"""The rendering code's identity, and the cache keys that carry it.

A fix deployed without a version bump must not serve what the old code rendered, and old
and new hosts of a rolling deploy must not share keys: every key starts with a hash of the
code that decides rendered bytes and of the rendering libraries' versions. Only that code:
a release that changes anything else (the corpus layer, the indexer, the hub) keeps every
rendered document, so its new workers do not all render at once behind the render gate.
What the parser decides reaches the keys through each feed's version instead.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from feeds.fingerprint import files_hash

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# Distributions whose versions change the bytes we render, beside our own code.
RENDERING_DISTRIBUTIONS = ("feedgen", "lxml", "Jinja2", "MarkupSafe")
# The package's files and folders that decide rendered bytes: what a document holds and in
# which order (publish, the index's reader), how it is written (render, the templates and
# pages), and how it is stored (cache).
RENDERING_CODE = (
    "cache",
    "http/pages.py",
    "http/static",
    "http/templates",
    "index/reader.py",
    "index/records.py",
    "index/search.py",
    "model.py",
    "publish",
    "render",
    "site.py",
)


def render_code_hash(root: Path = PACKAGE_DIR) -> str:
    """A hash of the rendering code's files and of the rendering libraries' versions."""
    files = sorted(
        path
        for part in RENDERING_CODE
        for path in ([root / part] if (root / part).is_file() else (root / part).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    )
    return files_hash(root, files, "".join(map(_installed, RENDERING_DISTRIBUTIONS)))


def _installed(name: str) -> str:
    try:
        return f"\n{name}={version(name)}"
    except PackageNotFoundError:
        return f"\n{name}=none"


RENDER_CODE_HASH = render_code_hash()


def cache_key(corpus_version: str, *parts: str) -> str:
    """Keys start with the code hash and the corpus version: neither code nor corpora share."""
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]
    return f"{RENDER_CODE_HASH[:16]}:{corpus_version[:16]}:{digest}"

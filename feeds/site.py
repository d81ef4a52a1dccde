"""A loaded corpus with its catalog and cache: what every request, command and export reads.

A `Site` never changes once built; a reload builds a new one and swaps the reference.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from feeds.cache import FeedCache, Rendered, cache_key, make_shared_backend, prepare
from feeds.corpus import CorpusError, LoadOptions, LoadReport, load_corpus
from feeds.fastpath import FastPath
from feeds.model import Catalog, build_catalog
from feeds.render import FORMATS, FeedDocument
from feeds.responses import cache_control_value
from feeds.selection import Selection, select

log = logging.getLogger("feeds.site")

# Settings that change the bytes of a feed; they are part of the corpus version.
OUTPUT_SETTINGS = ("SITE_TITLE", "SITE_DESCRIPTION", "MAX_AGE")


def package_version() -> str:
    try:
        return version("feeds")
    except PackageNotFoundError:
        return "0"


@dataclass(frozen=True)
class Site:
    settings: dict[str, Any]
    catalog: Catalog
    report: LoadReport
    cache: FeedCache
    fast_path: FastPath

    def selection(self, kind: str, slug: str | None) -> Selection:
        return select(
            self.catalog, kind, slug, self.settings["SITE_TITLE"], self.settings["SITE_DESCRIPTION"]
        )

    def feed(self, selection: Selection, extension: str, limit: int, base_url: str) -> Rendered:
        """The rendered feed, from the cache or rendered now (at most once per process)."""
        fmt = FORMATS[extension]
        self_url = f"{base_url}{selection.feed_path}.{extension}"
        if limit != self.settings["DEFAULT_ITEMS"]:
            self_url += f"?limit={limit}"
        key = cache_key(self.catalog.version, self_url)

        def render() -> Rendered:
            document = FeedDocument(
                selection,
                selection.articles[:limit],
                base_url,
                self_url,
                ttl_minutes=max(1, self.settings["MAX_AGE"] // 60),
            )
            return prepare(fmt.render(document), document.updated, fmt.mime_type)

        return self.cache.get_or_render(key, render)


def load_site(settings: dict[str, Any]) -> Site:
    corpus = load_corpus(Path(settings["CORPUS_DIR"]), LoadOptions.from_settings(settings))
    if settings["STRICT"] and corpus.report.skipped:
        raise CorpusError(f"strict mode: {len(corpus.report.skipped)} documents were skipped")
    fingerprint = "\n".join(
        [package_version(), corpus.digest, *(str(settings[name]) for name in OUTPUT_SETTINGS)]
    )
    corpus_version = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()
    catalog = build_catalog(corpus.articles, corpus_version)
    cache = FeedCache(make_shared_backend(settings), settings["CACHE_THRESHOLD"])
    fast_path = FastPath(settings["CACHE_THRESHOLD"], cache_control_value(settings["MAX_AGE"]))
    return Site(settings, catalog, corpus.report, cache, fast_path)

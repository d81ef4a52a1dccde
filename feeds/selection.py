"""What goes into each feed: which articles, under which title, at which URLs.

Selections are lookups in the catalog's prebuilt indexes, never scans of the corpus.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from feeds.model import Article, Catalog

KINDS = ("all", "topics", "providers")


class UnknownFeed(LookupError):
    """No feed at that address; the HTTP layer answers 404."""


@dataclass(frozen=True, slots=True)
class Selection:
    kind: str  # "all", "topics" or "providers"
    slug: str | None
    title: str
    description: str
    articles: tuple[Article, ...]

    @property
    def feed_path(self) -> str:
        """The feed's URL path without the format extension, e.g. `/feeds/topics/ai`."""
        return "/feeds/all" if self.kind == "all" else f"/feeds/{self.kind}/{self.slug}"

    @property
    def page_path(self) -> str:
        """The HTML page that shows the same entries, the feeds' `alternate` link."""
        return "/" if self.kind == "all" else f"/{self.kind}/{self.slug}"


def select(
    catalog: Catalog, kind: str, slug: str | None, site_title: str, site_description: str
) -> Selection:
    if kind == "all":
        return Selection("all", None, site_title, site_description, catalog.articles)
    if kind == "topics" and slug in catalog.topics:
        name = catalog.topics[slug].name
        return Selection(
            kind,
            slug,
            f"{name} · {site_title}",
            f"Articles about {name}, newest first.",
            catalog.by_topic[slug],
        )
    if kind == "providers" and slug in catalog.providers:
        name = catalog.providers[slug].name
        return Selection(
            kind,
            slug,
            f"{name} · {site_title}",
            f"Articles from {name}, newest first.",
            catalog.by_provider[slug],
        )
    raise UnknownFeed(f"no {kind[:-1]} '{slug}'")


def all_selections(catalog: Catalog, site_title: str, site_description: str) -> Iterator[Selection]:
    """Every feed the catalog has: all content, then each topic, then each provider."""
    yield select(catalog, "all", None, site_title, site_description)
    for kind, index in (("topics", catalog.topics), ("providers", catalog.providers)):
        for slug in index:
            yield select(catalog, kind, slug, site_title, site_description)

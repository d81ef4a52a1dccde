"""What goes into each feed: which articles, under which title, at which URLs.

Selections are lookups in the index's feed table; articles are read only as far as shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from feeds.index.reader import FeedArticles, View
from feeds.index.search import CustomArticles
from feeds.model import Article
from feeds.publish.urls import feed_path


class UnknownFeed(LookupError):
    """No feed at that address; the HTTP layer answers 404."""


@dataclass(frozen=True, slots=True)
class Selection:
    kind: str  # "all", "topics", "providers" or "custom"
    slug: str | None  # a custom feed's slug is its canonical query
    title: str
    description: str
    articles: FeedArticles | CustomArticles

    @property
    def version(self) -> str:
        """Changes exactly when this feed's articles or their Last-Modified do."""
        changed = int(self.articles.changed.timestamp())
        return f"{self.kind}/{self.slug or ''}/{self.articles.digest}/{changed}"

    def feed_path(self, extension: str, page: int | None = None) -> str:
        """The URL path of this feed (or of one of its archive pages) in a format."""
        return feed_path(self.kind, self.slug, extension, page)

    @property
    def page_path(self) -> str:
        """The HTML page that shows the same entries, the feeds' `alternate` link."""
        if self.kind == "custom":
            return f"/custom?{self.slug}"
        return "/" if self.kind == "all" else f"/{self.kind}/{self.slug}"

    @property
    def archived(self) -> bool:
        """Whether older articles are kept in RFC 5005 archive pages (custom feeds: no)."""
        return self.kind != "custom"


DESCRIPTIONS = {
    "topics": "Articles about {}, newest first.",
    "providers": "Articles from {}, newest first.",
}


def select(
    catalog: View, kind: str, slug: str | None, site_title: str, site_description: str
) -> Selection:
    if kind == "all":
        return Selection("all", None, site_title, site_description, catalog.articles)
    names, articles = _indexes(catalog).get(kind, ({}, {}))
    if slug not in names:
        raise UnknownFeed(f"no {kind[:-1]} '{slug}'")
    name = names[slug].name
    return Selection(
        kind, slug, f"{name} · {site_title}", DESCRIPTIONS[kind].format(name), articles[slug]
    )


def as_sealed(selection: Selection, sealed: Sequence[Article], site_title: str) -> Selection:
    """An archive page's selection, named as its own articles spell the feed (most often,
    then alphabetically first): a sealed page's bytes depend on what it sealed alone, never
    on how newer articles spell the topic or provider."""
    slug = selection.slug
    if selection.kind == "topics":
        spellings = Counter(t.name for a in sealed for t in a.topics if t.slug == slug)
    elif selection.kind == "providers":
        spellings = Counter(a.provider.name for a in sealed if a.provider.slug == slug)
    else:
        return selection
    if not spellings:
        return selection
    name = min(spellings, key=lambda spelling: (-spellings[spelling], spelling))
    description = DESCRIPTIONS[selection.kind].format(name)
    return replace(selection, title=f"{name} · {site_title}", description=description)


def _indexes(catalog: View) -> dict[str, tuple[Mapping, Mapping]]:
    return {
        "topics": (catalog.topics, catalog.by_topic),
        "providers": (catalog.providers, catalog.by_provider),
    }


def all_selections(catalog: View, site_title: str, site_description: str) -> Iterator[Selection]:
    """Every feed the catalog has: all content, then each topic, then each provider."""
    yield select(catalog, "all", None, site_title, site_description)
    for kind, (names, _articles) in _indexes(catalog).items():
        for slug in names:
            yield select(catalog, kind, slug, site_title, site_description)

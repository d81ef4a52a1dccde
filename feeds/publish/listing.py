"""Every feed as a listing: name, size, freshness and URLs.

The directory page and the OPML export read the same `Listing`, so both always name,
count and link the same feeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from feeds.index.reader import View
from feeds.publish.selection import Selection, all_selections

GROUPS = {"all": "All", "topics": "Topics", "providers": "Providers"}
ALL_NAME = "All articles"


@dataclass(frozen=True, slots=True)
class Listing:
    """One feed as lists show it; `name` is the bare topic or provider name."""

    selection: Selection
    name: str
    count: int
    newest: datetime | None

    @property
    def kind(self) -> str:
        return self.selection.kind

    def feed_url(self, base_url: str, extension: str) -> str:
        return f"{base_url}{self.selection.feed_path(extension)}"

    def page_url(self, base_url: str) -> str:
        return base_url + self.selection.page_path


def listings(catalog: View, site_title: str, site_description: str) -> Iterator[Listing]:
    """Every feed of `all_selections` that holds articles, in its order (all, topics,
    providers); an emptied feed is still served, for the pages it sealed, but not listed."""
    for selection in all_selections(catalog, site_title, site_description):
        if selection.kind == "all" or selection.articles:
            yield listing(catalog, selection)


def listing(catalog: View, selection: Selection) -> Listing:
    if selection.slug is None:
        name = ALL_NAME
    elif selection.kind == "topics":
        name = catalog.topics[selection.slug].name
    else:
        name = catalog.providers[selection.slug].name
    newest = selection.articles[0].published if selection.articles else None
    return Listing(selection, name, len(selection.articles), newest)


def sort_key(feed: Listing) -> tuple[str, str]:
    """Readers' order: by name ignoring case, the slug breaking ties so the order is total."""
    return (feed.name.casefold(), feed.selection.slug or "")

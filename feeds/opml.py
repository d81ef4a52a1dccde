"""Every feed as a listing (name, size, freshness, URLs) and as an OPML 2.0 subscription list.

The directory page and the OPML export read the same `Listing`, so both always name,
count and link the same feeds. Pure functions: no Flask, no request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from werkzeug.http import http_date

from feeds.index.reader import View
from feeds.selection import Selection, all_selections

GROUPS = {"all": "All", "topics": "Topics", "providers": "Providers"}
OPML_DOCS = "http://opml.org/spec2.opml"
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
    """Every feed of `all_selections`, in its order (all, topics, providers)."""
    for selection in all_selections(catalog, site_title, site_description):
        yield listing(catalog, selection)


def listing(catalog: View, selection: Selection) -> Listing:
    if selection.kind == "topics":
        name = catalog.topics[selection.slug].name
    elif selection.kind == "providers":
        name = catalog.providers[selection.slug].name
    else:
        name = ALL_NAME
    newest = selection.articles[0].published if selection.articles else None
    return Listing(selection, name, len(selection.articles), newest)


def build(
    feeds: Iterable[Listing], base_url: str, extension: str, title: str, modified: datetime
) -> bytes:
    """OPML 2.0 with one outline per feed, grouped as All, Topics and Providers.

    `type="rss"` is what OPML 2.0 asks of every subscription, whatever the feed's format.
    Outlines inside a group are sorted by name, case-insensitively, as readers show them.
    """
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateModified").text = http_date(modified)
    etree.SubElement(head, "docs").text = OPML_DOCS
    body = etree.SubElement(root, "body")
    groups = {kind: etree.Element("outline", text=label) for kind, label in GROUPS.items()}
    for feed in sorted(feeds, key=sort_key):
        etree.SubElement(
            groups[feed.kind],
            "outline",
            type="rss",
            text=feed.name,
            title=feed.selection.title,
            xmlUrl=feed.feed_url(base_url, extension),
            htmlUrl=feed.page_url(base_url),
        )
    for group in groups.values():
        if len(group):
            body.append(group)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def sort_key(feed: Listing) -> tuple[str, str]:
    """Readers' order: by name ignoring case, the slug breaking ties so the order is total."""
    return (feed.name.casefold(), feed.selection.slug or "")

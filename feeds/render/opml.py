"""OPML 2.0: every feed as a subscription list, grouped as All, Topics and Providers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from lxml import etree
from werkzeug.http import http_date

from feeds.publish.listing import GROUPS, Listing, sort_key

OPML_DOCS = "http://opml.org/spec2.opml"


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

"""RSS 2.0 as the RSS Advisory Board specifies it, with Media RSS and an Atom self link."""

from __future__ import annotations

from feeds.publish.document import FeedDocument
from feeds.render import xmlfeed

MIME_TYPE = "application/rss+xml"


def render(document: FeedDocument) -> bytes:
    return xmlfeed.with_stylesheet(
        xmlfeed.build(document, MIME_TYPE).rss_str(pretty=True), document.base_url
    )

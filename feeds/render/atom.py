"""Atom 1.0 (RFC 4287), with enclosure links and Media RSS for images."""

from __future__ import annotations

from feeds.publish.document import FeedDocument
from feeds.render import xmlfeed

MIME_TYPE = "application/atom+xml"


def render(document: FeedDocument) -> bytes:
    return xmlfeed.with_stylesheet(
        xmlfeed.build(document, MIME_TYPE).atom_str(pretty=True), document.base_url
    )

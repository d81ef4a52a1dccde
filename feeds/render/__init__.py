"""Feed formats, one module each, in a registry keyed by the URL's extension."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from feeds.publish.document import FeedDocument
from feeds.render import atom, jsonfeed, rss


@dataclass(frozen=True, slots=True)
class Format:
    """One format: its URL extension, its types and its renderer.

    `mime_type` is the registered type, which autodiscovery links and OPML announce.
    `content_type` is what every client is sent, one representation per URL so caches
    keep one copy: RSS and Atom go as `application/xml`, which every reader parses and
    Chromium shows through the feed's XSLT (or, without XSLT, as its XML tree), where the
    registered types are shown as unstyled source text.
    """

    extension: str
    mime_type: str
    content_type: str
    render: Callable[[FeedDocument], bytes]


_XML = "application/xml; charset=utf-8"
FORMATS: dict[str, Format] = {
    "rss": Format("rss", "application/rss+xml; charset=utf-8", _XML, rss.render),
    "atom": Format("atom", "application/atom+xml; charset=utf-8", _XML, atom.render),
    "json": Format(
        "json",
        "application/feed+json; charset=utf-8",
        "application/feed+json; charset=utf-8",
        jsonfeed.render,
    ),
}

__all__ = ["FORMATS", "FeedDocument", "Format"]

"""Feed formats, one module each, in a registry keyed by the URL's extension."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from feeds.publish.document import FeedDocument
from feeds.render import atom, jsonfeed, rss


@dataclass(frozen=True, slots=True)
class Format:
    extension: str
    mime_type: str
    render: Callable[[FeedDocument], bytes]


FORMATS: dict[str, Format] = {
    "rss": Format("rss", "application/rss+xml; charset=utf-8", rss.render),
    "atom": Format("atom", "application/atom+xml; charset=utf-8", atom.render),
    "json": Format("json", "application/feed+json; charset=utf-8", jsonfeed.render),
}

__all__ = ["FORMATS", "FeedDocument", "Format"]

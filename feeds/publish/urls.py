"""Feed URL paths, parsed in one place for the routes, the hub and the export."""

from __future__ import annotations

import re
from dataclasses import dataclass

HUB_PATH = "/websub"
_PATH = re.compile(
    r"/feeds/(?:(?P<all>all)|(?P<kind>topics|providers)/(?P<slug>[^/]+?))"
    r"(?:/archive/(?P<page>[1-9][0-9]{0,8}))?\.(?P<extension>[a-z]+)"
)


@dataclass(frozen=True, slots=True)
class FeedAddress:
    kind: str  # "all", "topics" or "providers"
    slug: str | None
    extension: str
    page: int | None = None  # an archive page, or None for the current document


CUSTOM_PATH = "/feeds/custom"


def feed_path(kind: str, slug: str | None, extension: str, page: int | None = None) -> str:
    """The path (with a custom feed's query) of a feed, or of one of its archive pages."""
    if kind == "custom":
        return f"{CUSTOM_PATH}.{extension}?{slug}"
    base = "/feeds/all" if kind == "all" else f"/feeds/{kind}/{slug}"
    archive = f"/archive/{page}" if page is not None else ""
    return f"{base}{archive}.{extension}"


def parse_feed_path(path: str) -> FeedAddress | None:
    """The feed a URL path names, or None; formats are checked by the caller."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    kind = "all" if match["all"] else match["kind"]
    page = int(match["page"]) if match["page"] else None
    return FeedAddress(kind, match["slug"], match["extension"], page)

"""Feed URL paths, parsed in one place for the routes, the hub and the export."""

from __future__ import annotations

import re
from dataclasses import dataclass

from feeds.selection import KINDS

HUB_PATH = "/websub"
_PATH = re.compile(
    r"/feeds/(?:(?P<all>all)|(?P<kind>topics|providers)/(?P<slug>[^/]+?))"
    r"(?:/archive/(?P<page>[1-9][0-9]{0,8}))?\.(?P<extension>[a-z]+)"
)


@dataclass(frozen=True, slots=True)
class FeedAddress:
    kind: str  # one of selection.KINDS
    slug: str | None
    extension: str
    page: int | None = None  # an archive page, or None for the current document

    @property
    def path(self) -> str:
        return feed_path(self.kind, self.slug, self.extension, self.page)


def feed_path(kind: str, slug: str | None, extension: str, page: int | None = None) -> str:
    base = "/feeds/all" if kind == "all" else f"/feeds/{kind}/{slug}"
    archive = f"/archive/{page}" if page is not None else ""
    return f"{base}{archive}.{extension}"


def parse_feed_path(path: str) -> FeedAddress | None:
    """The feed a URL path names, or None; formats are checked by the caller."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    kind = "all" if match["all"] else match["kind"]
    assert kind in KINDS
    page = int(match["page"]) if match["page"] else None
    return FeedAddress(kind, match["slug"], match["extension"], page)

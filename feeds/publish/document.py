"""The one input every renderer takes: a selection cut to size, with absolute URLs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from feeds.model import Article
from feeds.publish.selection import Selection

# An empty document (a custom filter that matches nothing) has no date of its own; a fixed
# one keeps its bytes equal on every host, and validators call dates before 1990 implausible.
EMPTY_DOCUMENT_DATE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FeedDocument:
    selection: Selection
    articles: tuple[Article, ...]
    base_url: str  # origin without a trailing slash, e.g. "https://feeds.example.org"
    self_url: str  # the absolute URL this document is served at
    ttl_minutes: int
    links: tuple[tuple[str, str], ...] = ()  # (rel, absolute URL): hub, archive navigation
    archive: bool = False  # an RFC 5005 archive document (fh:archive)

    def link(self, rel: str) -> str | None:
        return next((href for name, href in self.links if name == rel), None)

    @property
    def page_url(self) -> str:
        return self.base_url + self.selection.page_path

    @property
    def updated(self) -> datetime:
        """The newest entry's date: never the clock, so every render gives the same bytes."""
        return max((a.modified for a in self.articles), default=EMPTY_DOCUMENT_DATE)


def link_header(document: FeedDocument) -> str:
    """The HTTP `Link` header that WebSub and RFC 5005 clients read besides the body."""
    links = (("self", document.self_url), *document.links)
    return ", ".join(f'<{href}>; rel="{rel}"' for rel, href in links)

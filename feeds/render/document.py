"""The one input every renderer takes: a selection cut to size, with absolute URLs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from feeds.model import Article
from feeds.selection import Selection

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GENERATOR = "feeds"
GENERATOR_URI = "https://github.com/feeds/feeds"


@dataclass(frozen=True, slots=True)
class FeedDocument:
    selection: Selection
    articles: tuple[Article, ...]
    base_url: str  # origin without a trailing slash, e.g. "https://feeds.example.org"
    self_url: str  # the absolute URL this document is served at
    ttl_minutes: int

    @property
    def page_url(self) -> str:
        return self.base_url + self.selection.page_path

    @property
    def updated(self) -> datetime:
        """The newest entry's date: never the clock, so every render gives the same bytes."""
        return self.articles[0].published if self.articles else EPOCH

    def feed_url(self, extension: str) -> str:
        return f"{self.base_url}{self.selection.feed_path}.{extension}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

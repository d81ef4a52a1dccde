"""RFC 5005 archive pages: sealed in arrival order, so a complete page never changes.

The index seals each feed's oldest open entries into its next page whenever more than a
page of them has gathered (`feeds.index.writer`). Page 1 is the oldest; the current
document starts with every open entry, so walking `prev-archive` from it reaches every
article the feed holds. A late or edited article is a new open entry: it surfaces in the
current document, as RFC 5005 section 4.2 expects consumers to reconcile, and an older
copy stays in the page that sealed it.

Every page but the newest is immutable. The newest one's `next-archive` is the current
document until a newer page exists, so it is revalidated like a feed until then.
"""

from __future__ import annotations

from dataclasses import dataclass

# A year: RFC 9111 caches keep an immutable response without revalidating it.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Archive:
    pages: int  # sealed pages, 1 being the oldest
    unarchived: int  # open entries: a document leading into the archives holds them all

    def has(self, page: int) -> bool:
        return 1 <= page <= self.pages

    def immutable(self, page: int) -> bool:
        """Whether page `page` can never change again: a newer page follows it."""
        return 1 <= page < self.pages

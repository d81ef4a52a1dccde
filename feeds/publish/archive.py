"""RFC 5005 archive pages: fixed-size pages counted from each feed's oldest article.

Page 1 holds a feed's oldest `size` articles, page 2 the next `size`, and so on; only
complete pages exist. Adding a newer article therefore never changes an existing page:
it joins the current feed, and once `size` such articles have gathered they form the
next page (the page before it then links to it instead of to the current document).
The current feed document holds at least every article newer than the newest page, so
walking `prev-archive` from it reaches every article exactly once in the archives, with
the current document's entries on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feeds.model import Article


@dataclass(frozen=True, slots=True)
class Archive:
    size: int
    total: int

    @property
    def pages(self) -> int:
        """How many complete pages exist; 0 while a feed has fewer than `size` articles."""
        return self.total // self.size

    @property
    def unarchived(self) -> int:
        """Articles newer than the newest page: the current document must hold them all."""
        return self.total - self.pages * self.size

    def has(self, page: int) -> bool:
        return 1 <= page <= self.pages

    def articles(self, newest_first: Sequence[Article], page: int) -> tuple[Article, ...]:
        """Page `page`'s articles, newest first, from the feed's newest-first sequence."""
        end = self.total - (page - 1) * self.size
        return tuple(newest_first[end - self.size : end])

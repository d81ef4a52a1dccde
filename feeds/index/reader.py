"""What workers read: a consistent view of the index, refreshed when the writer commits.

Each worker keeps one small connection that asks SQLite's `data_version` on every
request (a few microseconds); when another connection has committed, a new `View` is
opened. A view holds a read transaction, so every query made through it sees the
index as it was when the view was opened: counts, pages and entries always agree. The
old view's connection closes when the last request using it lets go. A file moved away
(a damaged index set aside, a new one built at its name) is noticed by its inode, so the
workers follow the name, not the file they first opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import overload

from feeds.corpus import LoadReport, Skip
from feeds.index.records import EPOCH, article_from_json, from_microseconds
from feeds.index.schema import ALL, open_reader
from feeds.index.search import CustomArticles, Filter, matching
from feeds.model import Article, Provider, Topic

RECHECK_SECONDS = 0.01  # a commit is seen within 10 ms; each check is 2% of a cached answer


class NotReady(RuntimeError):
    """No complete index yet: feeds answer 503 while the first build runs."""

    def __init__(self, indexed: int, files: int) -> None:
        super().__init__(f"indexing: {indexed} of {files} files")
        self.indexed = indexed
        self.files = files


@dataclass(frozen=True, slots=True)
class FeedRow:
    kind: str
    slug: str
    name: str
    domain: str | None
    count: int
    open: int  # entries not sealed into an archive page yet
    newest: int | None
    digest: str
    changed: int  # when the feed last changed, epoch seconds (its Last-Modified)
    pages: int  # archive pages sealed


# A feed's served articles in its documents' order: open entries, newest first, then
# those of each sealed page from the newest page down.
_CURRENT = (
    "SELECT a.data FROM entries e JOIN articles a ON a.version = e.version"
    " WHERE e.kind = ? AND e.slug = ? AND e.retired = 0"
    " ORDER BY e.page DESC, e.published DESC, e.id ASC LIMIT ? OFFSET ?"
)
# An archive page as sealed: withdrawn and replaced copies read from `retired`.
_PAGE = (
    "SELECT coalesce(a.data, r.data) FROM entries e"
    " LEFT JOIN articles a ON a.version = e.version"
    " LEFT JOIN retired r ON r.version = e.version"
    " WHERE e.kind = ? AND e.slug = ? AND e.page = ? ORDER BY e.published DESC, e.id ASC"
)

_FEEDS = (
    "SELECT f.kind, f.slug, f.name, f.domain, f.count, f.open, f.newest, f.digest,"
    " coalesce(c.changed, 0), coalesce(c.pages, 0)"
    " FROM feeds f LEFT JOIN feed_clock c USING (kind, slug) ORDER BY f.kind, f.slug"
)


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One sealed RFC 5005 page: its articles, newest first, and when it was sealed."""

    articles: tuple[Article, ...]
    sealed: datetime


def _clock(db: sqlite3.Connection, kind: str, slug: str) -> tuple[int, int]:
    row = db.execute(
        "SELECT changed, pages FROM feed_clock WHERE kind = ? AND slug = ?", (kind, slug)
    ).fetchone()
    return row or (0, 0)


class FeedArticles(Sequence[Article]):
    """One feed's articles in its documents' order, fetched only as far as asked.

    Open entries (newest first) come before sealed ones, so the first `open` articles
    are the ones no archive page holds yet.
    """

    __slots__ = ("_db", "_feed")

    def __init__(self, db: sqlite3.Connection, feed: FeedRow) -> None:
        self._db = db
        self._feed = feed

    def __len__(self) -> int:
        return self._feed.count

    @property
    def digest(self) -> str:
        return self._feed.digest

    @property
    def changed(self) -> datetime:
        """When this feed's articles last changed: moves forward with every change."""
        return EPOCH + timedelta(seconds=self._feed.changed)

    @property
    def pages(self) -> int:
        """How many archive pages this feed has sealed (1 is the oldest)."""
        return self._feed.pages

    @property
    def open(self) -> int:
        """Articles in no archive page yet: a document leading into the archives shows them."""
        return self._feed.open

    def page(self, number: int) -> ArchivePage:
        """Archive page `number` exactly as it was sealed; KeyError if there is none."""
        feed = (self._feed.kind, self._feed.slug)
        if not 1 <= number <= self._feed.pages:
            raise KeyError(number)
        sealed = self._db.execute(
            "SELECT sealed FROM archive_pages WHERE kind = ? AND slug = ? AND page = ?",
            (*feed, number),
        ).fetchone()
        rows = self._db.execute(_PAGE, (*feed, number)).fetchall()
        if sealed is None:
            raise KeyError(number)
        articles = tuple(article_from_json(data) for (data,) in rows)
        return ArchivePage(articles, EPOCH + timedelta(seconds=sealed[0]))

    def _fetch(self, start: int, stop: int) -> tuple[Article, ...]:
        if stop <= start:
            return ()
        feed = (self._feed.kind, self._feed.slug)
        rows = self._db.execute(_CURRENT, (*feed, stop - start, start))
        return tuple(article_from_json(data) for (data,) in rows.fetchall())

    @overload
    def __getitem__(self, index: int) -> Article: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Article, ...]: ...
    def __getitem__(self, index: int | slice) -> Article | tuple[Article, ...]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("feeds are read in order")
            return self._fetch(start, stop)
        if index < 0:
            index += len(self)
        found = self._fetch(index, index + 1) if 0 <= index < len(self) else ()
        if not found:
            raise IndexError("article index out of range")
        return found[0]

    def __iter__(self) -> Iterator[Article]:
        return iter(self._fetch(0, len(self)))

    def __repr__(self) -> str:
        return f"<{self._feed.kind} {self._feed.slug!r}: {len(self)} articles>"


class View:
    """The index at one moment: the catalog's interface (articles, topics, providers)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.execute("BEGIN")  # a read transaction: the view does not move under a request
        rows = [FeedRow(*row) for row in db.execute(_FEEDS)]
        self._feeds = {(row.kind, row.slug): row for row in rows}
        empty = FeedRow("all", "", "", None, 0, 0, None, "0" * 64, *_clock(db, *ALL))
        self.articles = FeedArticles(db, self._feeds.get(("all", ""), empty))
        self.version = self.articles.digest
        self.topics: Mapping[str, Topic] = MappingProxyType(
            {r.slug: Topic(r.name, r.slug) for r in rows if r.kind == "topics"}
        )
        self.providers: Mapping[str, Provider] = MappingProxyType(
            {r.slug: Provider(r.name, r.slug, r.domain) for r in rows if r.kind == "providers"}
        )
        self.by_topic = _Feeds(self, "topics")
        self.by_provider = _Feeds(self, "providers")

    def feed(self, kind: str, slug: str) -> FeedArticles:
        return FeedArticles(self._db, self._feeds[(kind, slug)])

    def custom(self, selected: Filter, limit: int) -> CustomArticles:
        """The newest `limit` articles a custom filter selects."""
        found = matching(self._db, selected, limit)
        return CustomArticles(found, found.digest, self.articles.changed)

    def newest(self, kind: str, slug: str) -> object:
        row = self._feeds.get((kind, slug))
        return None if row is None or row.newest is None else from_microseconds(row.newest)

    def report(self) -> LoadReport:
        """What the index holds, listed as a whole load would report it."""
        return index_report(self._db)

    def counts(self) -> dict[str, int]:
        """The report's numbers, from the index's own counts (cheap at any size)."""
        outcomes = dict(
            self._db.execute("SELECT outcome, count(*) FROM documents GROUP BY outcome")
        )
        loaded = self.articles.__len__()
        repaired = self._db.execute(
            "SELECT total(json_array_length(repairs)) FROM documents WHERE repairs != '[]'"
        ).fetchone()[0]
        files = sum(outcomes.values())
        return {
            "files": files,
            "loaded": loaded,
            "skipped": outcomes.get("skipped", 0) + outcomes.get("article", 0) - loaded,
            "filtered": outcomes.get("filtered", 0),
            "scheduled": outcomes.get("scheduled", 0),
            "repaired": int(repaired),
        }


class _Feeds(Mapping[str, FeedArticles]):
    """The topic or provider feeds of a view, by slug."""

    def __init__(self, view: View, kind: str) -> None:
        self._view = view
        self._kind = kind
        self._slugs = view.topics if kind == "topics" else view.providers

    def __getitem__(self, slug: str) -> FeedArticles:
        if slug not in self._slugs:
            raise KeyError(slug)
        return self._view.feed(self._kind, slug)

    def __iter__(self) -> Iterator[str]:
        return iter(self._slugs)

    def __len__(self) -> int:
        return len(self._slugs)


class IndexReader:
    """One worker's access to the index; opens nothing until first asked (after the fork)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pid = 0
        self._probe: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None  # (device, inode) the probe reads
        self._version = -1
        self._view: View | None = None
        self._checked = 0.0

    def view(self) -> View:
        """The current view; raises NotReady until a complete index exists.

        A worker answering thousands of requests a second asks SQLite at most once every
        `RECHECK_SECONDS`: a commit is seen within milliseconds either way.
        """
        now = time.monotonic()
        if self._view is not None and now - self._checked < RECHECK_SECONDS:
            return self._view
        self._checked = now
        probe = self._probe_connection()
        version = probe.execute("PRAGMA data_version").fetchone()[0]
        if self._view is None or version != self._version:
            state = _state(probe)
            if state.get("state") != "ready":
                raise NotReady(int(state.get("indexed", 0)), int(state.get("files", 0)))
            try:
                self._view = View(open_reader(self.path))
            except sqlite3.DatabaseError:  # replaced meanwhile by a file refused or unreadable
                self._close_probe()
                raise NotReady(0, 0) from None
            self._version = version
        return self._view

    def latest(self) -> View:
        """The view at the last commit, asked now: the writer's own process, right after it
        committed, must not render what the commit replaced (a view seen within
        `RECHECK_SECONDS` would be kept)."""
        self._checked = 0.0
        return self.view()

    def progress(self) -> tuple[int, int]:
        """(indexed, files) of the indexer's current or last pass over the directory."""
        try:
            state = _state(self._probe_connection())
        except NotReady:
            return 0, 0
        return int(state.get("indexed", 0)), int(state.get("files", 0))

    def _probe_connection(self) -> sqlite3.Connection:
        mine = self._probe is not None and self._pid == os.getpid()
        if mine and self._inode != _inode(self.path):
            self._close_probe()  # another file at the name now: follow it
        if self._probe is None or self._pid != os.getpid():
            try:
                inode = _inode(self.path)
                self._probe = open_reader(self.path)
            except sqlite3.Error:  # none yet, or refused (the writer sets it aside)
                self._probe = None
                raise NotReady(0, 0) from None
            self._inode = inode
            self._pid = os.getpid()
            self._view = None
        return self._probe

    def _close_probe(self) -> None:
        if self._probe is not None and self._pid == os.getpid():
            self._probe.close()
        self._probe = None
        self._view = None


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _state(db: sqlite3.Connection) -> dict[str, str]:
    """The build's state rows; none while the writer has not created them yet (a file
    just made, still without tables): readers then answer NotReady, never 500."""
    try:
        rows = db.execute("SELECT key, value FROM meta WHERE key IN ('state', 'indexed', 'files')")
        return dict(rows.fetchall())
    except sqlite3.OperationalError:
        return {}


def index_report(db: sqlite3.Connection) -> LoadReport:
    """Skips, filters, repairs and duplicates as the load report lists them."""
    report = LoadReport()
    report.files = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    report.loaded = db.execute("SELECT count(*) FROM articles").fetchone()[0]
    for path, outcome, reason in db.execute(
        "SELECT path, outcome, reason FROM documents WHERE outcome != 'article' ORDER BY path"
    ):
        skip = Skip(path, reason, outcome)
        (report.skipped if outcome == "skipped" else report.filtered).append(skip)
    duplicates = db.execute(
        "SELECT d.path, a.path FROM documents d JOIN articles a ON a.id = d.article_id"
        " WHERE d.path != a.path ORDER BY d.path"
    )
    report.skipped.extend(
        Skip(path, f"duplicate: same article as {winner}") for path, winner in duplicates
    )
    for path, repairs in db.execute(
        "SELECT path, repairs FROM documents WHERE repairs != '[]' ORDER BY path"
    ):
        report.repairs.extend((path, note) for note in json.loads(repairs))
    return report

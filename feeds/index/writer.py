"""Applying one file's outcome to the index, keeping every derived table in step.

A file's row records what it became (an article, or a skip with its reason). Several
files can hold the same article (same link): the one with the higher quality, then the
lower content hash, is served, exactly as a whole load chooses, so an index built change
by change equals one built in one go. Each served article updates the feeds it belongs
to: the all feed, its topics and its provider keep a count, their newest date, the most
used spelling of their name, and a digest (XOR of their articles' content hashes) that
changes whenever their articles do and is equal on every host with the same files.
A served article's title and excerpt words are in the full-text table while it is served.

Each transaction ends with `seal`: every feed whose digest it changed gets a new
`changed` second, one past its last and never behind the clock, so `Last-Modified`
moves forward whenever a feed's bytes do (also for a removal, an edit or a backdated
article), and the changed feeds are what WebSub pushes. A document dated in the future
is `Scheduled`: recorded with its due time, served once that time has come.

Archive pages (RFC 5005) are sealed in arrival order, so a page once complete never
changes. Each served copy of an article is an OPEN entry of its feeds; whenever a feed
holds more than a page of open entries, its oldest open entries are sealed into its next
page. A late (backdated) or edited article is a new open entry, seen in the current
document until its turn to be sealed; a withdrawn or replaced copy leaves the current
document, and its sealed entries keep reading it from `retired`. The first build has no
arrival order: `finish_first_build` derives its feeds and pages them by date once it is
whole, oldest first. While it runs (`live` is false), articles join no feed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from feeds.corpus import Parsed, Skip
from feeds.index.records import article_from_json, article_json, from_microseconds, microseconds
from feeds.index.schema import ALL, ENTRIES_BY_VERSION, OPEN

ZERO_DIGEST = "0" * 64
MOVED = "moved"  # a digest no feed has: the feed changed, whatever its own digest says

Reparse = Callable[[str], "Parsed | Skip"]


@dataclass(frozen=True, slots=True)
class Stamp:
    """A file as the directory shows it: relative path, size and modification time."""

    path: str
    size: int
    mtime_ns: int
    read_ns: int = 0  # when the file was read: a stamp this close to it may hide a change


@dataclass(frozen=True, slots=True)
class Scheduled(Skip):
    """An article held back until `due` (epoch microseconds), its publication time."""

    due: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    path: str
    quality: float
    digest: str


def put(
    db: sqlite3.Connection,
    stamp: Stamp,
    outcome: Parsed | Skip,
    reparse: Reparse,
    live: bool = True,
) -> None:
    """Record what the file at `stamp.path` is now, and settle the articles it touches."""
    old = db.execute("SELECT article_id FROM documents WHERE path = ?", (stamp.path,)).fetchone()
    db.execute(f"INSERT OR REPLACE INTO documents {_DOCUMENT}", _document_row(stamp, outcome))
    in_hand = {stamp.path: outcome} if isinstance(outcome, Parsed) else {}
    new = outcome.article.id if isinstance(outcome, Parsed) else None
    for article_id in {old[0] if old else None, new}:
        if article_id is not None:
            settle(db, article_id, in_hand, reparse, live)


# A copy of an article replaces the one in the row only when the live rule prefers it:
# the higher quality, then the lower digest (then the lower path: the same bytes twice).
_PREFERRED_COPY = """
INSERT INTO articles (id, path, digest, quality, published, provider, data)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET path = excluded.path, digest = excluded.digest,
    quality = excluded.quality, published = excluded.published,
    provider = excluded.provider, data = excluded.data
WHERE excluded.quality > articles.quality OR (excluded.quality = articles.quality
    AND (excluded.digest, excluded.path) < (articles.digest, articles.path))
"""


def load(
    db: sqlite3.Connection, outcomes: list[tuple[Stamp, Parsed | Skip]], reparse: Reparse
) -> None:
    """Record a batch of outcomes in a build nobody reads yet: files new to it in two
    statements, each duplicate's served copy chosen in SQL as `settle` chooses it, instead
    of a round trip per file. A file the build holds already (a resumed build, the walk
    that catches up) goes through `put`, which may serve another copy of its article.
    """
    paths = json.dumps([stamp.path for stamp, _ in outcomes])
    known = {
        path
        for (path,) in db.execute(
            "SELECT path FROM documents WHERE path IN (SELECT value FROM json_each(?))", (paths,)
        )
    }
    new = [(stamp, outcome) for stamp, outcome in outcomes if stamp.path not in known]
    db.executemany(
        f"INSERT INTO documents {_DOCUMENT}",
        [_document_row(stamp, outcome) for stamp, outcome in new],
    )
    db.executemany(
        _PREFERRED_COPY,
        [
            (
                outcome.article.id,
                outcome.path,
                outcome.digest,
                outcome.quality,
                microseconds(outcome.article.published),
                outcome.article.provider.slug,
                article_json(outcome.article),
            )
            for _, outcome in new
            if isinstance(outcome, Parsed)
        ],
    )
    for stamp, outcome in outcomes:
        if stamp.path in known:
            put(db, stamp, outcome, reparse, live=False)


_DOCUMENT = (
    "(path, size, mtime_ns, read_ns, digest, outcome, reason, repairs, article_id, quality,"
    " due) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _document_row(stamp: Stamp, outcome: Parsed | Skip) -> tuple[object, ...]:
    """The `documents` row of what the file at `stamp` became."""
    due = outcome.due if isinstance(outcome, Scheduled) else None
    if isinstance(outcome, Parsed):
        parsed = (outcome.digest, "article", None, json.dumps(outcome.repairs), outcome.article.id)
        return (*_stamp_row(stamp), *parsed, outcome.quality, due)
    return (*_stamp_row(stamp), "", outcome.kind, outcome.reason, "[]", None, None, due)


def _stamp_row(stamp: Stamp) -> tuple[str, int, int, int]:
    return (stamp.path, stamp.size, stamp.mtime_ns, stamp.read_ns)


def remove(db: sqlite3.Connection, path: str, reparse: Reparse, live: bool = True) -> None:
    """The file is gone: forget it, and serve another copy of its article if one exists."""
    old = db.execute("SELECT article_id FROM documents WHERE path = ?", (path,)).fetchone()
    db.execute("DELETE FROM documents WHERE path = ?", (path,))
    if old and old[0]:
        settle(db, old[0], {}, reparse, live)


def settle(
    db: sqlite3.Connection,
    article_id: str,
    in_hand: dict[str, Parsed],
    reparse: Reparse,
    live: bool = True,
) -> None:
    """Serve the preferred copy of an article, or none when no file holds it any more."""
    for candidate in _candidates(db, article_id):
        parsed = in_hand.get(candidate.path)
        if parsed is None:
            served = db.execute(
                "SELECT path, digest FROM articles WHERE id = ?", (article_id,)
            ).fetchone()
            if served == (candidate.path, candidate.digest):
                return  # already served
            outcome = reparse(candidate.path)
            if not isinstance(outcome, Parsed) or (
                outcome.article.id,
                outcome.digest,
            ) != (article_id, candidate.digest):
                # The file changed since it was indexed: record what it is now, which
                # settles this article again with up-to-date candidates.
                stamp = _stamp_of(db, candidate.path)
                put(db, stamp, outcome, reparse, live)
                return
            parsed = outcome
        _serve(db, parsed, live)
        return
    _withdraw(db, article_id, live)


def _candidates(db: sqlite3.Connection, article_id: str) -> Iterator[Candidate]:
    rows = db.execute(
        "SELECT path, quality, digest FROM documents WHERE article_id = ?"
        " ORDER BY quality DESC, digest ASC",
        (article_id,),
    ).fetchall()
    return (Candidate(*row) for row in rows)


def _stamp_of(db: sqlite3.Connection, path: str) -> Stamp:
    size, mtime_ns, read_ns = db.execute(
        "SELECT size, mtime_ns, read_ns FROM documents WHERE path = ?", (path,)
    ).fetchone()
    return Stamp(path, size, mtime_ns, read_ns)


def _serve(db: sqlite3.Connection, parsed: Parsed, live: bool) -> None:
    article = parsed.article
    current = db.execute("SELECT path, digest FROM articles WHERE id = ?", (article.id,)).fetchone()
    if current is not None and current[1] == parsed.digest:
        # The same bytes (a rename, the other copy of a duplicate): the same copy, served on
        # from its new file; no document changes.
        db.execute("UPDATE articles SET path = ? WHERE id = ?", (parsed.path, article.id))
        return
    if current is not None:
        _withdraw(db, article.id, live)
    if live:
        article = replace(article, updated=edit_time(db, parsed))
    published = microseconds(article.published)
    cursor = db.execute(
        "INSERT INTO articles (id, path, digest, quality, published, provider, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            article.id,
            parsed.path,
            parsed.digest,
            parsed.quality,
            published,
            article.provider.slug,
            article_json(article),
        ),
    )
    if live:
        version = cursor.lastrowid
        db.execute(
            "INSERT INTO article_words (rowid, title, excerpt) VALUES (?, ?, ?)",
            (version, article.title, article.excerpt),
        )
        db.executemany(
            "INSERT INTO article_topics (topic, published, id) VALUES (?, ?, ?)",
            [(topic.slug, published, article.id) for topic in article.topics],
        )
        feeds = _memberships(parsed)
        for feed in feeds:
            _join(db, feed, published, parsed.digest)
        db.executemany(
            "INSERT INTO entries (kind, slug, page, published, id, version)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(feed.kind, feed.slug, OPEN, published, article.id, version) for feed in feeds],
        )


def edit_time(db: sqlite3.Connection, parsed: Parsed) -> datetime | None:
    """The copy's edit time: kept from the last copy served, new if the content changed.

    An edit's time is its file's mtime, kept between the last edit and now (no future).
    """
    last = db.execute(
        "DELETE FROM withdrawn WHERE id = ? RETURNING digest, updated", (parsed.article.id,)
    ).fetchone()
    if last is None:
        return None
    digest, updated = last
    if digest == parsed.digest:
        return None if updated is None else from_microseconds(updated)
    (mtime_ns,) = db.execute(
        "SELECT mtime_ns FROM documents WHERE path = ?", (parsed.path,)
    ).fetchone()
    written = min(mtime_ns, time.time_ns()) // 1_000_000_000 * 1_000_000  # whole seconds
    return from_microseconds(max(written, updated or 0, microseconds(parsed.article.published)))


def _withdraw(db: sqlite3.Connection, article_id: str, live: bool) -> None:
    """Stop serving an article."""
    row = db.execute(
        "SELECT version, path, digest, published, data FROM articles WHERE id = ?", (article_id,)
    ).fetchone()
    if row is None:
        return
    version, path, digest, published, data = row
    db.execute("DELETE FROM articles WHERE version = ?", (version,))
    if live:
        article = article_from_json(data)
        # A contentless full-text table forgets a row only when told the words it indexed.
        db.execute(
            "INSERT INTO article_words (article_words, rowid, title, excerpt)"
            " VALUES ('delete', ?, ?, ?)",
            (version, article.title, article.excerpt),
        )
        # By the key, topic first: by id alone this scanned every row (0.38 s at 1,000,000).
        db.executemany(
            "DELETE FROM article_topics WHERE topic = ? AND published = ? AND id = ?",
            [(topic.slug, published, article_id) for topic in article.topics],
        )
        _retire(db, version, data)
        updated = None if article.updated is None else microseconds(article.updated)
        db.execute(
            "INSERT OR REPLACE INTO withdrawn (id, digest, updated) VALUES (?, ?, ?)",
            (article_id, digest, updated),
        )
        for feed in _memberships(Parsed(path, article, digest, 0.0)):
            _leave(db, feed, published, digest)


def _retire(db: sqlite3.Connection, version: int, data: str) -> None:
    """A copy leaves the current documents; archive pages that sealed it keep showing it."""
    db.execute("DELETE FROM entries WHERE version = ? AND page = ?", (version, OPEN))
    sealed = db.execute("UPDATE entries SET retired = 1 WHERE version = ?", (version,)).rowcount
    if sealed:
        db.execute("INSERT INTO retired (version, data) VALUES (?, ?)", (version, data))


@dataclass(frozen=True, slots=True)
class Membership:
    """A feed an article is in, with the spelling of the feed's name that article uses."""

    kind: str
    slug: str
    name: str | None = None
    domain: str | None = None


def _memberships(parsed: Parsed) -> list[Membership]:
    article = parsed.article
    provider = article.provider
    return [
        Membership(*ALL),
        *(Membership("topics", topic.slug, topic.name) for topic in article.topics),
        Membership("providers", provider.slug, provider.name, provider.domain),
    ]


def seal(db: sqlite3.Connection, now: int, page_size: int) -> list[tuple[str, str]]:
    """Move the clock of every feed this transaction changed; those feeds, to push.

    Call it last in each transaction of a live index. `now` is the wall clock in whole
    seconds; each changed feed's clock becomes at least its last plus one. Each touched
    feed also seals its oldest open entries into pages.
    """
    touched = db.execute("SELECT kind, slug FROM touched ORDER BY kind, slug").fetchall()
    changed = db.execute(
        "SELECT t.kind, t.slug FROM touched t LEFT JOIN feeds f USING (kind, slug)"
        " WHERE coalesce(f.digest, ?) != t.before ORDER BY t.kind, t.slug",
        (ZERO_DIGEST,),
    ).fetchall()
    db.executemany(
        "INSERT INTO feed_clock (kind, slug, changed) VALUES (?, ?, ?)"
        " ON CONFLICT (kind, slug) DO UPDATE SET changed = max(changed + 1, excluded.changed)",
        [(kind, slug, now) for kind, slug in changed],
    )
    for kind, slug in touched:
        _seal_pages(db, kind, slug, page_size, now)
    db.execute("DELETE FROM touched")
    return [(kind, slug) for kind, slug in changed]


def reseal(db: sqlite3.Connection, size: int, now: int) -> list[tuple[str, str]]:
    """Seal now what a lowered page size leaves over a page in each current document, as
    any change would; those feeds (their documents changed), to push."""
    db.executemany(
        "INSERT OR IGNORE INTO touched (kind, slug, before) VALUES (?, ?, ?)",
        [
            (*feed, MOVED)
            for feed in db.execute("SELECT kind, slug FROM feeds WHERE open > ?", (size,))
        ],
    )
    return seal(db, now, size)


def _seal_pages(db: sqlite3.Connection, kind: str, slug: str, size: int, now: int) -> None:
    """While a feed has more than a page of open entries, seal the oldest into a new page."""
    feed = (kind, slug)
    (open_count,) = db.execute(
        "SELECT count(*) FROM entries WHERE kind = ? AND slug = ? AND page = ?", (*feed, OPEN)
    ).fetchone()
    row = db.execute("SELECT pages FROM feed_clock WHERE kind = ? AND slug = ?", feed).fetchone()
    sealed = pages = row[0] if row else 0
    while open_count > size:
        pages += 1
        db.execute(
            "UPDATE entries SET page = ? WHERE kind = ? AND slug = ? AND page = ?"
            " AND (published, id) IN (SELECT published, id FROM entries"
            "  WHERE kind = ? AND slug = ? AND page = ? ORDER BY published ASC, id DESC LIMIT ?)",
            (pages, *feed, OPEN, *feed, OPEN, size),
        )
        open_count -= size
    _record_pages(db, kind, slug, range(sealed + 1, pages + 1), open_count, now=now)


def _record_pages(
    db: sqlite3.Connection, kind: str, slug: str, new: range, open_count: int, *, now: int
) -> None:
    """Stamp a feed's newly sealed pages, and keep its page and open-entry counts."""
    db.executemany(
        "INSERT INTO archive_pages (kind, slug, page, sealed) VALUES (?, ?, ?, ?)",
        [(kind, slug, page, now) for page in new],
    )
    db.execute(
        "INSERT INTO feed_clock (kind, slug, changed, pages) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (kind, slug) DO UPDATE SET pages = excluded.pages",
        (kind, slug, now, new.stop - 1),
    )
    db.execute("UPDATE feeds SET open = ? WHERE kind = ? AND slug = ?", (open_count, kind, slug))


# Every served article in each of its feeds: (kind, slug, published, id, version).
MEMBERSHIPS = """
SELECT 'all' AS kind, '' AS slug, published, id, version FROM main.articles
UNION ALL
SELECT 'topics', t.topic, t.published, t.id, a.version
FROM main.article_topics t JOIN main.articles a ON a.id = t.id
UNION ALL
SELECT 'providers', provider, published, id, version FROM main.articles
"""
# The same, numbered oldest first within each feed.
_RANKED_ENTRIES = f"""
SELECT kind, slug, published, id, version,
       row_number() OVER (PARTITION BY kind, slug ORDER BY published ASC, id DESC) AS rank,
       count(*) OVER (PARTITION BY kind, slug) AS total
FROM ({MEMBERSHIPS})
"""


class _XorDigest:
    """SQLite aggregate: the XOR of hex digests, a feed's digest from its articles'."""

    def __init__(self) -> None:
        self.value = 0

    def step(self, digest: str) -> None:
        self.value ^= int(digest, 16)

    def finalize(self) -> str:
        return format(self.value, "064x")


# Each feed's totals over a whole build: (kind, slug, count, newest, domain, digest).
_FEED_TOTALS = """
SELECT 'all', '', count(*), max(published), NULL, xor_digest(digest) FROM articles
HAVING count(*) > 0
UNION ALL
SELECT 'providers', provider, count(*), max(published), max(json_extract(data, '$[3][2]')),
       xor_digest(digest)
FROM articles GROUP BY provider
UNION ALL
SELECT 'topics', t.topic, count(*), max(t.published), NULL, xor_digest(a.digest)
FROM article_topics t JOIN articles a ON a.id = t.id GROUP BY t.topic
"""
# How many articles spell each topic and provider name each way.
_NAME_USES = """
INSERT INTO names (kind, slug, name, uses)
SELECT 'providers', provider, json_extract(data, '$[3][0]'), count(*)
FROM articles GROUP BY 2, 3
UNION ALL
SELECT 'topics', json_extract(t.value, '$[1]'), json_extract(t.value, '$[0]'), count(*)
FROM articles a, json_each(a.data, '$[7]') t GROUP BY 2, 3
"""
_MOST_USED_NAMES = """
SELECT kind, slug, name FROM (
    SELECT kind, slug, name,
           row_number() OVER (PARTITION BY kind, slug ORDER BY uses DESC, name ASC) AS rank
    FROM names
) WHERE rank = 1
"""


def finish_first_build(db: sqlite3.Connection, size: int, now: int) -> list[tuple[str, str]]:
    """Derive every feed from a whole first build at once and page it by date; the feeds,
    to push."""
    feeds = derive_feeds(db)
    _open_archives(db, size, now)
    return feeds


def derive_feeds(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """Count, name and hash every feed of a whole build; the feeds.

    While a build runs, articles join no feed one by one (nobody reads the index yet):
    counting, naming and hashing them here in a few queries gives the same rows as
    joining them in any order, at a fraction of the cost.
    """
    _index_articles(db)
    db.create_aggregate("xor_digest", 1, _XorDigest)  # type: ignore[arg-type]  # typeshed: step(*args)
    db.execute("DELETE FROM feeds")
    db.execute("DELETE FROM names")
    db.execute(_NAME_USES)
    names = {(kind, slug): name for kind, slug, name in db.execute(_MOST_USED_NAMES)}
    rows = [
        (kind, slug, names.get((kind, slug), ""), domain, count, newest, digest)
        for kind, slug, count, newest, domain, digest in db.execute(_FEED_TOTALS).fetchall()
    ]
    db.executemany(
        "INSERT INTO feeds (kind, slug, name, domain, count, newest, digest)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return sorted((kind, slug) for kind, slug, *_ in rows)


def _index_articles(db: sqlite3.Connection) -> None:
    """Every served article's topics and search words, in two statements: a build adds
    none one by one (`_serve` while not live), and the full-text index is written best
    in one go. What an earlier build left is cleared first."""
    db.execute("DELETE FROM article_topics")
    db.execute("INSERT INTO article_words (article_words) VALUES ('delete-all')")
    db.execute(
        "INSERT INTO article_topics (topic, published, id)"
        " SELECT json_extract(t.value, '$[1]'), a.published, a.id"
        " FROM articles a, json_each(a.data, '$[7]') t"
    )
    db.execute(
        "INSERT INTO article_words (rowid, title, excerpt)"
        " SELECT version, json_extract(data, '$[1]'), json_extract(data, '$[5]') FROM articles"
    )


def _open_archives(db: sqlite3.Connection, size: int, now: int) -> None:
    """Page a finished first build by date: what sealing would give had files come in order.

    A feed of n articles gets (n - 1) // size full pages, oldest first, and keeps the rest
    (1 to `size` entries) open, as `_seal_pages` leaves a live feed. A first build has no
    history: what a run cut short before it was marked ready left is cleared first.
    """
    for table in ("entries", "archive_pages", "feed_clock"):
        db.execute(f"DELETE FROM {table}")
    # Inserted in key order, and indexed by version once whole: a sort each, where rows in
    # any order would take a B-tree descent each (half the time of a build's final step).
    db.execute("DROP INDEX entries_by_version")
    db.execute(
        "INSERT INTO entries (kind, slug, page, published, id, version)"
        " SELECT kind, slug,"
        "  CASE WHEN rank <= (total - 1) / ?1 * ?1 THEN (rank - 1) / ?1 + 1 ELSE ?2 END,"
        f"  published, id, version FROM ({_RANKED_ENTRIES})"
        " ORDER BY 1, 2, 3 DESC, 4 DESC, 5",
        (size, OPEN),
    )
    db.execute(ENTRIES_BY_VERSION)
    feeds = db.execute("SELECT kind, slug, count FROM feeds").fetchall()
    for kind, slug, count in feeds:
        pages = (count - 1) // size
        _record_pages(db, kind, slug, range(1, pages + 1), count - pages * size, now=now)


def latest_change(db: sqlite3.Connection) -> int:
    """The newest feed clock: a commit before the wall clock reaches it would run it ahead."""
    return db.execute("SELECT coalesce(max(changed), 0) FROM feed_clock").fetchone()[0]


def _touch(db: sqlite3.Connection, feed: Membership, digest: str) -> None:
    db.execute(
        "INSERT OR IGNORE INTO touched (kind, slug, before) VALUES (?, ?, ?)",
        (feed.kind, feed.slug, digest),
    )


def _xor(left: str, right: str) -> str:
    return format(int(left, 16) ^ int(right, 16), "064x")


def _join(db: sqlite3.Connection, feed: Membership, published: int, digest: str) -> None:
    kind, slug = feed.kind, feed.slug
    row = db.execute(
        "SELECT count, newest, digest FROM feeds WHERE kind = ? AND slug = ?", (kind, slug)
    ).fetchone()
    count, newest, feed_digest = row or (0, None, ZERO_DIGEST)
    _touch(db, feed, feed_digest)
    newest = published if newest is None else max(newest, published)
    if feed.name is not None:
        db.execute(
            "INSERT INTO names (kind, slug, name, uses) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (kind, slug, name) DO UPDATE SET uses = uses + 1",
            (kind, slug, feed.name),
        )
    db.execute(
        "INSERT OR REPLACE INTO feeds (kind, slug, name, domain, count, newest, digest)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            slug,
            _most_used_name(db, kind, slug),
            feed.domain,
            count + 1,
            newest,
            _xor(feed_digest, digest),
        ),
    )


def _leave(db: sqlite3.Connection, feed: Membership, published: int, digest: str) -> None:
    kind, slug = feed.kind, feed.slug
    count, newest, feed_digest = db.execute(
        "SELECT count, newest, digest FROM feeds WHERE kind = ? AND slug = ?", (kind, slug)
    ).fetchone()
    _touch(db, feed, feed_digest)
    if feed.name is not None:
        db.execute(
            "UPDATE names SET uses = uses - 1 WHERE kind = ? AND slug = ? AND name = ?",
            (kind, slug, feed.name),
        )
        db.execute("DELETE FROM names WHERE kind = ? AND slug = ? AND uses <= 0", (kind, slug))
    if count <= 1:
        # Emptied, a feed that sealed pages keeps its row (and name): they are still served.
        sealed = db.execute(
            "SELECT pages FROM feed_clock WHERE kind = ? AND slug = ?", (kind, slug)
        ).fetchone()
        if sealed and sealed[0]:
            db.execute(
                "UPDATE feeds SET count = 0, newest = NULL, digest = ? WHERE kind = ? AND slug = ?",
                (ZERO_DIGEST, kind, slug),
            )
        else:
            db.execute("DELETE FROM feeds WHERE kind = ? AND slug = ?", (kind, slug))
        return
    if published == newest:
        newest = _newest(db, kind, slug)
    db.execute(
        "UPDATE feeds SET name = ?, count = ?, newest = ?, digest = ? WHERE kind = ? AND slug = ?",
        (_most_used_name(db, kind, slug), count - 1, newest, _xor(feed_digest, digest), kind, slug),
    )


def _most_used_name(db: sqlite3.Connection, kind: str, slug: str) -> str:
    """The spelling most articles use; ties go to the alphabetically first, for stability."""
    row = db.execute(
        "SELECT name FROM names WHERE kind = ? AND slug = ? ORDER BY uses DESC, name ASC LIMIT 1",
        (kind, slug),
    ).fetchone()
    return row[0] if row else ""


def _newest(db: sqlite3.Connection, kind: str, slug: str) -> int | None:
    queries = {
        "all": ("SELECT max(published) FROM articles", ()),
        "topics": ("SELECT max(published) FROM article_topics WHERE topic = ?", (slug,)),
        "providers": ("SELECT max(published) FROM articles WHERE provider = ?", (slug,)),
    }
    sql, parameters = queries[kind]
    return db.execute(sql, parameters).fetchone()[0]

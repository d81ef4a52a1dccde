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
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from feeds.corpus import Parsed, Skip
from feeds.index.records import article_from_json, article_json, microseconds
from feeds.index.schema import ALL

ZERO_DIGEST = "0" * 64

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


def put(db: sqlite3.Connection, stamp: Stamp, outcome: Parsed | Skip, reparse: Reparse) -> None:
    """Record what the file at `stamp.path` is now, and settle the articles it touches."""
    old = db.execute("SELECT article_id FROM documents WHERE path = ?", (stamp.path,)).fetchone()
    if isinstance(outcome, Parsed):
        row = (outcome.digest, "article", None, json.dumps(outcome.repairs), outcome.article.id)
        quality: float | None = outcome.quality
    else:
        row = ("", outcome.kind, outcome.reason, "[]", None)
        quality = None
    due = outcome.due if isinstance(outcome, Scheduled) else None
    db.execute(
        "INSERT OR REPLACE INTO documents (path, size, mtime_ns, read_ns, digest, outcome,"
        " reason, repairs, article_id, quality, due) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (stamp.path, stamp.size, stamp.mtime_ns, stamp.read_ns, *row, quality, due),
    )
    in_hand = {stamp.path: outcome} if isinstance(outcome, Parsed) else {}
    for article_id in {old[0] if old else None, row[4]} - {None}:
        settle(db, article_id, in_hand, reparse)


def remove(db: sqlite3.Connection, path: str, reparse: Reparse) -> None:
    """The file is gone: forget it, and serve another copy of its article if one exists."""
    old = db.execute("SELECT article_id FROM documents WHERE path = ?", (path,)).fetchone()
    db.execute("DELETE FROM documents WHERE path = ?", (path,))
    if old and old[0]:
        settle(db, old[0], {}, reparse)


def settle(
    db: sqlite3.Connection, article_id: str, in_hand: dict[str, Parsed], reparse: Reparse
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
                put(db, stamp, outcome, reparse)
                return
            parsed = outcome
        _serve(db, parsed)
        return
    _withdraw(db, article_id)


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


def _serve(db: sqlite3.Connection, parsed: Parsed) -> None:
    article = parsed.article
    current = db.execute("SELECT path, digest FROM articles WHERE id = ?", (article.id,)).fetchone()
    if current == (parsed.path, parsed.digest):
        return
    if current is not None:
        _withdraw(db, article.id)
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
    db.execute(
        "INSERT INTO article_words (rowid, title, excerpt) VALUES (?, ?, ?)",
        (cursor.lastrowid, article.title, article.excerpt),
    )
    db.executemany(
        "INSERT INTO article_topics (topic, published, id) VALUES (?, ?, ?)",
        [(topic.slug, published, article.id) for topic in article.topics],
    )
    for feed in _memberships(parsed):
        _join(db, feed, published, parsed.digest)


def _withdraw(db: sqlite3.Connection, article_id: str) -> None:
    row = db.execute(
        "SELECT rowid, path, digest, published, data FROM articles WHERE id = ?", (article_id,)
    ).fetchone()
    if row is None:
        return
    rowid, path, digest, published, data = row
    article = article_from_json(data)
    # A contentless full-text table forgets a row only when told the words it indexed.
    db.execute(
        "INSERT INTO article_words (article_words, rowid, title, excerpt)"
        " VALUES ('delete', ?, ?, ?)",
        (rowid, article.title, article.excerpt),
    )
    db.execute("DELETE FROM articles WHERE id = ?", (article_id,))
    db.execute("DELETE FROM article_topics WHERE id = ? AND published = ?", (article_id, published))
    parsed = Parsed(path, article, digest, 0.0)
    for feed in _memberships(parsed):
        _leave(db, feed, published, digest)


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


def seal(db: sqlite3.Connection, now: int, step: int = 1) -> list[tuple[str, str]]:
    """Move the clock of every feed this transaction changed; those feeds, to push.

    Call it last in each transaction. `now` is the wall clock in whole seconds; each
    changed feed's clock becomes at least its last plus `step`.
    """
    changed = db.execute(
        "SELECT t.kind, t.slug FROM touched t LEFT JOIN feeds f USING (kind, slug)"
        " WHERE coalesce(f.digest, ?) != t.before ORDER BY t.kind, t.slug",
        (ZERO_DIGEST,),
    ).fetchall()
    db.executemany(
        "INSERT INTO feed_clock (kind, slug, changed) VALUES (?, ?, ?)"
        " ON CONFLICT (kind, slug) DO UPDATE SET changed = max(changed + ?, excluded.changed)",
        [(kind, slug, now, step) for kind, slug in changed],
    )
    db.execute("DELETE FROM touched")
    return [(kind, slug) for kind, slug in changed]


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

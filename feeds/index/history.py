"""The history a new build takes over from the served index before it is served itself.

Derived rows are rebuilt from the files; history was served and promised, so it is
carried, never rebuilt: each sealed page keeps the exact copies it sealed (a copy the new
build serves unchanged is joined to it by article id and content, any other is kept as a
retired copy), pages keep their sealing times and numbers, feeds keep their clocks, and
articles keep their edit times (the rule of `writer.edit_time`, against the last copy
the served index showed). Served articles that no sealed page holds are the open
entries; a feed with more than a page of them seals the oldest, as a live feed does.

A feed's clock moves only when its document may read differently: its articles' files
or their copies changed, or it gained or lost sealed pages or open entries. Those feeds
are returned, to be pushed; a build that changed nothing moves no clock and pushes
nothing. Everything happens in one transaction on the new file: a build killed halfway
is resumed, never half carried.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

from feeds.corpus import Parsed
from feeds.index import writer
from feeds.index.records import article_from_json, article_json
from feeds.index.schema import BUSY_TIMEOUT_MS, OPEN, TABLES
from feeds.sqlite import open_file, transaction

log = logging.getLogger("feeds.index")


class UnreadableHistory(sqlite3.DatabaseError):
    """The served index holds rows this release cannot read: its history is given up."""


# Copies each side serves that the other does not serve identically, by version.
_NEW_COPIES = """
INSERT INTO temp.new_copies SELECT a.version FROM main.articles a
LEFT JOIN old.articles o ON o.id = a.id WHERE o.data IS NOT a.data
"""
_GONE_COPIES = """
INSERT INTO temp.gone_copies
SELECT o.version, o.id, o.digest, o.published, o.provider, o.quality, o.data FROM old.articles o
LEFT JOIN main.articles a ON a.id = o.id WHERE a.data IS NOT o.data
"""
_SCRATCH = """
CREATE TEMP TABLE IF NOT EXISTS new_copies (version INTEGER PRIMARY KEY);
-- What the hub matches against custom filters once the build is served: each gone copy
-- as the served index held it (it is detached by then).
CREATE TEMP TABLE IF NOT EXISTS gone_copies (
    version INTEGER PRIMARY KEY, id TEXT, digest TEXT, published INTEGER, provider TEXT,
    quality REAL, data TEXT
);
CREATE TEMP TABLE IF NOT EXISTS sealed_copies (
    old INTEGER PRIMARY KEY, new INTEGER NOT NULL, retired INTEGER NOT NULL, data TEXT
);
DELETE FROM temp.new_copies;
DELETE FROM temp.gone_copies;
DELETE FROM temp.sealed_copies;
"""


def carry(db: sqlite3.Connection, source: Path, page_size: int, now: int) -> list[tuple[str, str]]:
    """Take the history of the served index at `source` into the whole build on `db` and
    mark it ready; the feeds whose documents changed, to push."""
    # A planted file is refused before anything of it can run.
    open_file(source, TABLES, BUSY_TIMEOUT_MS / 1000, read_only=True).close()
    db.executescript(_SCRATCH)
    db.execute("ATTACH DATABASE ? AS old", (str(source),))
    try:
        with transaction(db):
            _edit_times(db)
            _sealed_pages(db)
            writer.derive_feeds(db)
            # A feed emptied before keeps serving the pages it sealed, under its name.
            db.execute(
                "INSERT INTO feeds (kind, slug, name, domain, count, newest, digest)"
                " SELECT o.kind, o.slug, o.name, o.domain, 0, NULL, ? FROM old.feeds o"
                " JOIN old.feed_clock c USING (kind, slug) WHERE c.pages > 0 AND NOT EXISTS"
                "  (SELECT 1 FROM main.feeds f WHERE f.kind = o.kind AND f.slug = o.slug)",
                (writer.ZERO_DIGEST,),
            )
            db.execute(
                "INSERT INTO entries (kind, slug, page, published, id, version)"
                " SELECT m.kind, m.slug, ?, m.published, m.id, m.version"
                f" FROM ({writer.MEMBERSHIPS}) m"
                " WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.version = m.version"
                "  AND e.kind = m.kind AND e.slug = m.slug AND e.retired = 0)",
                (OPEN,),
            )
            db.execute(
                "INSERT INTO feed_clock (kind, slug, changed, pages)"
                " SELECT kind, slug, changed, pages FROM old.feed_clock"
            )
            db.execute(
                "INSERT INTO archive_pages (kind, slug, page, sealed)"
                " SELECT kind, slug, page, sealed FROM old.archive_pages"
            )
            changed = _seal(db, page_size, now)
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("state", "ready"), ("carried_from", source.name)],
            )
    finally:
        db.execute("DETACH DATABASE old")
    return changed


def _edit_times(db: sqlite3.Connection) -> None:
    """Each article keeps the edit time of the last copy served, or gets one if its content
    changed since: the served index's copies join the copies it withdrew."""
    # Unchanged and never edited (most articles) need nothing: only the others are written.
    db.execute(
        "INSERT INTO withdrawn (id, digest, updated)"
        " SELECT o.id, o.digest, json_extract(o.data, '$[10]') FROM old.articles o"
        " LEFT JOIN main.articles a ON a.id = o.id"
        " WHERE a.id IS NULL OR a.digest != o.digest OR json_extract(o.data, '$[10]') IS NOT NULL"
    )
    db.execute(
        "INSERT OR IGNORE INTO withdrawn (id, digest, updated)"
        " SELECT id, digest, updated FROM old.withdrawn"
    )
    rows = db.execute(
        "SELECT a.version, a.path, a.digest, a.data FROM articles a JOIN withdrawn w ON w.id = a.id"
    ).fetchall()
    for version, path, digest, data in rows:
        try:
            article = article_from_json(data)
        except ValueError as error:
            raise UnreadableHistory(f"a served copy cannot be read: {error}") from None
        updated = writer.edit_time(db, Parsed(path, article, digest, 0.0))
        if updated != article.updated:
            db.execute(
                "UPDATE articles SET data = ? WHERE version = ?",
                (article_json(replace(article, updated=updated)), version),
            )


def _sealed_pages(db: sqlite3.Connection) -> None:
    """Every sealed entry, reading the copy it sealed: the build's own copy when it serves
    that copy unchanged, a retired copy (numbered past the build's) otherwise."""
    (offset,) = db.execute("SELECT coalesce(max(version), 0) FROM articles").fetchone()
    db.execute(
        "INSERT INTO temp.sealed_copies (old, new, retired, data)"
        " SELECT s.version, coalesce(a.version, s.version + ?1), a.version IS NULL,"
        "  CASE WHEN a.version IS NULL THEN coalesce(o.data, r.data) END"
        " FROM (SELECT DISTINCT version, retired FROM old.entries WHERE page != ?2) s"
        " LEFT JOIN old.articles o ON o.version = s.version AND s.retired = 0"
        " LEFT JOIN old.retired r ON r.version = s.version"
        " LEFT JOIN main.articles a ON a.id = o.id AND a.data = o.data",
        (offset, OPEN),
    )
    lost = db.execute("DELETE FROM temp.sealed_copies WHERE retired = 1 AND data IS NULL").rowcount
    if lost:
        log.error("%d sealed copies were missing from the served index; their entries go", lost)
    db.execute(
        "INSERT INTO retired (version, data)"
        " SELECT new, data FROM temp.sealed_copies WHERE retired = 1"
    )
    db.execute(
        "INSERT INTO entries (kind, slug, page, published, id, version, retired)"
        " SELECT e.kind, e.slug, e.page, e.published, e.id, c.new, c.retired"
        " FROM old.entries e JOIN temp.sealed_copies c ON c.old = e.version WHERE e.page != ?",
        (OPEN,),
    )
    db.execute(
        "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(version), 0) FROM retired))"
        " WHERE name = 'articles'"
    )


def _seal(db: sqlite3.Connection, page_size: int, now: int) -> list[tuple[str, str]]:
    """Seal what a page size asks, and move the clocks of the feeds that read differently."""
    db.execute(_NEW_COPIES)
    db.execute(_GONE_COPIES)
    moved = {
        (kind, slug)
        for kind, slug in db.execute(
            f"SELECT kind, slug FROM ({writer.MEMBERSHIPS})"
            " WHERE version IN (SELECT version FROM temp.new_copies)"
            " UNION SELECT kind, slug FROM old.entries"
            " WHERE version IN (SELECT version FROM temp.gone_copies) AND retired = 0"
        )
    }
    before = {
        (kind, slug): (writer.MOVED if (kind, slug) in moved else digest)
        for kind, slug, digest in db.execute("SELECT kind, slug, digest FROM old.feeds")
    }
    for kind, slug in db.execute("SELECT kind, slug FROM feeds").fetchall():
        before.setdefault(
            (kind, slug), writer.MOVED if (kind, slug) in moved else writer.ZERO_DIGEST
        )
    db.executemany(
        "INSERT INTO touched (kind, slug, before) VALUES (?, ?, ?)",
        [(kind, slug, digest) for (kind, slug), digest in before.items()],
    )
    changed = set(writer.seal(db, now, page_size))
    reshaped = db.execute(
        "SELECT f.kind, f.slug FROM feeds f JOIN old.feeds o USING (kind, slug)"
        " JOIN feed_clock c USING (kind, slug) JOIN old.feed_clock p USING (kind, slug)"
        " WHERE f.open != o.open OR c.pages != p.pages"
    ).fetchall()
    for kind, slug in set(reshaped) - changed:
        db.execute(
            "UPDATE feed_clock SET changed = max(changed + 1, ?) WHERE kind = ? AND slug = ?",
            (now, kind, slug),
        )
        changed.add((kind, slug))
    return sorted(changed)

"""Which articles a change added and withdrew, as the writer's own connection saw it.

Temporary triggers on the writer's connection note every served copy that arrives in or
leaves `articles` (an edit is both: a new version arrives, the old one leaves), in the
same transaction as the change, so a change that fails notes nothing. The hub takes the
notes after each committed change and matches them against its custom filters in
memory: the cost of a change grows with the articles it moved, not with the number of
subscribed filters. Past MAX_NOTED copies (a first build, a bulk import) noting stops
and the change counts as moving everything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from feeds.index.records import article_from_json
from feeds.index.search import Filter, Ranked, Seen, may_select, newest_first, ranked
from feeds.sqlite import transaction

MAX_NOTED = 2000

_SCHEMA = f"""
CREATE TEMP TABLE IF NOT EXISTS websub_moved (
    seq INTEGER PRIMARY KEY,
    arrived INTEGER NOT NULL,
    version INTEGER NOT NULL,
    id TEXT NOT NULL,
    digest TEXT NOT NULL,
    published INTEGER NOT NULL,
    provider TEXT NOT NULL,
    quality REAL NOT NULL,
    data TEXT
);
CREATE TEMP TRIGGER IF NOT EXISTS websub_arrived AFTER INSERT ON main.articles
WHEN (SELECT coalesce(max(seq), 0) FROM websub_moved) <= {MAX_NOTED}
BEGIN
    INSERT INTO websub_moved (arrived, version, id, digest, published, provider, quality)
    VALUES (1, new.version, new.id, new.digest, new.published, new.provider, new.quality);
END;
CREATE TEMP TRIGGER IF NOT EXISTS websub_left AFTER DELETE ON main.articles
WHEN (SELECT coalesce(max(seq), 0) FROM websub_moved) <= {MAX_NOTED}
BEGIN
    INSERT INTO websub_moved (arrived, version, id, digest, published, provider, quality, data)
    VALUES (0, old.version, old.id, old.digest, old.published, old.provider, old.quality,
            old.data);
END;
"""


@dataclass(frozen=True, slots=True)
class Moved:
    """One served copy that arrived or left, with what the in-memory match reads."""

    row: Ranked
    seen: Seen


@dataclass(frozen=True, slots=True)
class Moves:
    """What one or more committed changes did to `articles`; `everything` when too much
    to note (then `arrived` and `left` are empty and every filter may have changed)."""

    arrived: tuple[Moved, ...] = ()
    left: tuple[Moved, ...] = ()
    everything: bool = False

    @property
    def arrived_versions(self) -> frozenset[int]:
        return frozenset(moved.row.version for moved in self.arrived)


def note_moves(db: sqlite3.Connection) -> None:
    """Start noting on the writer's connection (idempotent)."""
    db.executescript(_SCHEMA)


def take_moves(db: sqlite3.Connection) -> Moves:
    """The copies moved since the last call, forgotten as they are handed out. A copy that
    arrived and left again in between moved nothing."""
    with transaction(db):  # what is read is what is deleted
        rows = db.execute(
            "SELECT arrived, version, id, digest, published, provider, quality, data"
            " FROM websub_moved ORDER BY seq"
        ).fetchall()
        db.execute("DELETE FROM websub_moved")
    if len(rows) > MAX_NOTED:
        return Moves(everything=True)
    arrived = {row[1] for row in rows if row[0]}
    left = {row[1] for row in rows if not row[0]}
    transient = arrived & left
    present = _data(db, arrived - transient)
    return Moves(
        tuple(
            _moved(row, present[row[1]])
            for row in rows
            if row[0] and row[1] not in transient and row[1] in present
        ),
        tuple(_moved(row, row[7]) for row in rows if not row[0] and row[1] not in transient),
    )


def carried_moves(db: sqlite3.Connection) -> Moves:
    """The copies a build that took a served index's history serves differently from it
    (`feeds.index.history`: its `new_copies` and `gone_copies`, on the build's connection);
    everything for a build that took none (a first build: every filter may have changed)."""
    try:
        rows = db.execute(
            "SELECT 1, a.version, a.id, a.digest, a.published, a.provider, a.quality, a.data"
            " FROM temp.new_copies n JOIN main.articles a USING (version)"
            " UNION ALL SELECT 0, version, id, digest, published, provider, quality, data"
            " FROM temp.gone_copies"
        ).fetchall()
    except sqlite3.OperationalError:  # no history was carried on this connection
        return Moves(everything=True)
    if len(rows) > MAX_NOTED:
        return Moves(everything=True)
    return Moves(
        tuple(_moved(row, row[7]) for row in rows if row[0]),
        tuple(_moved(row, row[7]) for row in rows if not row[0]),
    )


def _data(db: sqlite3.Connection, versions: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    listed = sorted(versions)
    for start in range(0, len(listed), 500):
        chunk = listed[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT version, data FROM articles WHERE version IN ({marks})"
        found.update(db.execute(query, chunk).fetchall())
    return found


def _moved(row: tuple, data: str) -> Moved:
    _arrived, version, article_id, digest, published, provider, quality, _data = row
    seen = Seen.of(article_from_json(data), provider, quality)
    return Moved(Ranked(version, article_id, digest, published), seen)


def changed_filters(
    db: sqlite3.Connection, filters: Mapping[str, Filter], moves: Moves, limit: int
) -> tuple[set[str], int]:
    """The keys of the filters whose document of `limit` articles the moves changed, and
    how many filters were queried to find them.

    A filter is queried only when an article that arrived or left may be one of its own
    (in memory, `may_select`); then one query gives the document after the change, and
    the document before is rebuilt from it: what arrived taken out, what left put back.
    """
    if moves.everything:
        return set(filters), 0  # the store queues only documents unlike those last queued
    changed = set()
    queried = 0
    new_versions = moves.arrived_versions
    for key, selected in filters.items():
        arrived = sum(1 for moved in moves.arrived if may_select(selected, moved.seen))
        left = [moved.row for moved in moves.left if may_select(selected, moved.seen)]
        if not arrived and not left:
            continue
        queried += 1
        after = ranked(db, selected, limit + arrived)  # enough to rebuild the one before
        kept = [row for row in after if row.version not in new_versions]
        before = sorted([*kept, *left], key=newest_first)[:limit]
        if _shown(before) != _shown(after[:limit]):
            changed.add(key)
    return changed, queried


def _shown(rows: list[Ranked]) -> list[tuple[str, str]]:
    """What a document's bytes depend on: its articles, in order, and their content."""
    return [(row.id, row.digest) for row in rows]

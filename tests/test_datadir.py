"""The data directory stays bounded, and every SQLite file in it is opened defensively.

What stays of one corpus: the served index, at most one being built, the newest damaged
copy; the stats and WebSub files and other corpora's indexes are never touched. A file
whose schema holds a trigger or view feeds did not create is refused before it can run.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from feeds.sqlite import UntrustedDatabase, harden
from feeds.stats.subscribers import SqliteStore as StatsStore
from feeds.websub.store import SqliteStore as WebSubStore
from feeds.websub.store import Subscription

# A trigger that leaves a mark when it runs: on any write of a document.
MARK_TRIGGER = """
CREATE TABLE marks (what TEXT);
CREATE TRIGGER leave_mark AFTER INSERT ON {table} BEGIN INSERT INTO marks VALUES ('ran'); END;
"""


def marks(path: Path) -> list[tuple[str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT what FROM marks").fetchall()
    finally:
        db.close()


def plant(path: Path, schema: str, extra: str, meta: dict[str, str] | None = None) -> None:
    """A database as someone with write access to the data directory could leave it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(schema + extra)
    if meta is not None:
        db.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
    db.commit()
    db.close()


def test_schema_code_may_call_no_function_of_ours(tmp_path: Path) -> None:
    """trusted_schema=OFF: a planted view calling an application function fails, uncalled."""
    path = tmp_path / "planted.sqlite"
    plant(path, "CREATE TABLE t (x);", "CREATE VIEW v AS SELECT spy(x) FROM t;")
    calls: list[object] = []
    db = harden(sqlite3.connect(path))
    db.execute("INSERT INTO t VALUES (1)")
    db.create_function("spy", 1, calls.append)
    with pytest.raises(sqlite3.OperationalError, match="unsafe use of spy"):
        db.execute("SELECT * FROM v").fetchall()
    db.close()
    assert calls == []


@pytest.mark.parametrize("store", ["stats", "websub"])
def test_a_planted_store_with_a_trigger_is_refused_without_running_it(
    tmp_path: Path, store: str
) -> None:
    path = tmp_path / f"{store}.sqlite3"
    if store == "stats":
        schema, table = StatsStore.schema, "reports"
    else:
        schema, table = WebSubStore.schema, "subscriptions"
    plant(path, schema, MARK_TRIGGER.format(table=table))
    with pytest.raises(UntrustedDatabase, match=f"{path.name}.*trigger 'leave_mark'"):
        if store == "stats":
            StatsStore(path).write({("/feeds/all.rss", "Feedly", "x"): (3, 1)}, set())
        else:
            WebSubStore(path).put(Subscription("http://127.0.0.1/cb", "t", "", 2e9), 10)
    assert marks(path) == []

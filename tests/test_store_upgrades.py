"""Files the previous release wrote (tests/fixtures/release-0.1: its schema scripts as it
ran them) open in this one, keep what they held, and stay trusted once migrated: the
defensive schema check must not refuse our own history."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from feeds.stats.subscribers import DAY
from feeds.stats.subscribers import SqliteCountStore as StatsStore
from feeds.websub.store import SqliteSubscriptionStore as WebsubStore
from tests.support import PROJECT_ROOT

RELEASE = PROJECT_ROOT / "tests" / "fixtures" / "release-0.1"


def written_by_the_last_release(path: Path, store: str, *rows: tuple[str, tuple]) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript((RELEASE / f"{store}.sql").read_text())
        for statement, values in rows:
            db.execute(statement, values)
    return path


def test_a_hub_file_of_the_last_release_keeps_its_subscriptions(tmp_path: Path) -> None:
    expires = time.time() + 3600
    path = written_by_the_last_release(
        tmp_path / "websub.sqlite3",
        "websub",
        (
            "INSERT INTO subscriptions VALUES (?, ?, ?, ?, '')",
            ("https://reader.example/cb", "https://feeds.example/feeds/all.rss", "s", expires),
        ),
    )
    WebsubStore(path)  # migrates
    store = WebsubStore(path)  # and the migrated file is trusted on every later open
    kept = store.get("https://reader.example/cb", "https://feeds.example/feeds/all.rss")
    assert kept is not None and kept.host == "" and kept.expires_at == expires
    assert store.count() == 1


def test_a_stats_file_of_the_last_release_keeps_its_history(tmp_path: Path) -> None:
    today = int(time.time() // DAY)
    path = written_by_the_last_release(
        tmp_path / "stats.sqlite3",
        "stats",
        ("INSERT INTO history VALUES (?, ?, ?)", ("/feeds/all.rss", today - 1, 42)),
    )
    StatsStore(path)
    (stats,) = StatsStore(path).report(time.time())
    assert stats.path == "/feeds/all.rss" and (stats.history[-1][1]) == 42

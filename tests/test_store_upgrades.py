"""Files the previous release wrote (tests/fixtures/release-0.1: its schema scripts as it
ran them) open in this one, keep what they held, and stay trusted once migrated: the
defensive schema check must not refuse our own history."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from feeds.app import create_app
from feeds.cli import main
from feeds.http.served import served
from feeds.postgres.database import NewerSchema, schema_name
from feeds.postgres.migrate import upgrade
from feeds.settings import deployment_key
from feeds.stats.subscribers import DAY
from feeds.stats.subscribers import SqliteCountStore as StatsStore
from feeds.websub.store import Limits, PostgresSubscriptionStore, Subscription
from feeds.websub.store import SqliteSubscriptionStore as WebsubStore
from tests.postgres import migrated
from tests.support import PROJECT_ROOT

RELEASE = PROJECT_ROOT / "tests" / "fixtures" / "release-0.1"
HEAD = "0001"  # the PostgreSQL schema's newest step


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


def test_the_postgresql_schema_is_migrated_once_and_keeps_what_it_holds(
    postgres_url: str,
) -> None:
    with migrated(postgres_url) as database:
        expires = time.time() + 3600
        kept = Subscription(
            "https://reader.example/cb", "https://feeds.example/all.rss", "s", expires
        )
        assert PostgresSubscriptionStore(database).put(kept, Limits(9, 9, 9)) is None
    with migrated(postgres_url) as database:  # a second host, or a restart: nothing to do
        assert upgrade(database) == [HEAD]
        assert PostgresSubscriptionStore(database).get(kept.callback, kept.topic) == kept
    env = {"FEEDS_DATABASE_URL": postgres_url, "FEEDS_DEPLOYMENT": "other"}
    done = CliRunner().invoke(main, ["migrate"], env=env)  # a deploy's own step
    assert done.exit_code == 0, done.output
    assert done.output.startswith("schema feeds_") and done.output.endswith(f"revision {HEAD}\n")


def test_a_postgresql_schema_of_a_newer_release_is_refused_with_503s(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        {
            "DATA_DIR": str(tmp_path),
            "DATABASE_URL": postgres_url,
            "WEBSUB_ALLOW_PRIVATE_CALLBACKS": "1",
        }
    )
    with migrated(postgres_url, deployment_key(served(app).runtime.settings)) as database:
        with database.connection() as db:
            db.execute("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(NewerSchema, match="revision 9999, which this release does not know"):
            upgrade(database)
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        stats = client.get("/stats.json")
        hub = client.post(
            "/websub",
            data={
                "hub.mode": "subscribe",
                "hub.callback": "http://127.0.0.1:9/cb",
                "hub.topic": "http://localhost/feeds/all.rss",
            },
        )
    assert stats.status_code == hub.status_code == 503
    assert stats.headers["Retry-After"] and hub.headers["Retry-After"]
    assert "revision 9999, which this release does not know" in caplog.text
    with psycopg.connect(postgres_url) as admin:  # left as it was
        schema = schema_name(deployment_key(served(app).runtime.settings))
        (version,) = admin.execute(f"SELECT version_num FROM {schema}.alembic_version").fetchone()
    assert version == "9999"

"""The data directory through the real server (gunicorn from the Procfile): it stays
bounded across settings changes and damages, another server's index stays while it runs,
and planted databases are refused without running anything of theirs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import requests

from feeds.index.indexer import update
from feeds.index.reader import IndexReader
from feeds.settings import load_settings
from feeds.stats.subscribers import SqliteStore as StatsStore
from feeds.stats.subscribers import default_db_path as stats_path
from feeds.websub.store import SqliteStore as WebSubStore
from feeds.websub.store import default_db_path as websub_path
from tests.support import Server, wait_for
from tests.test_datadir import (
    MARK_TRIGGER,
    corrupt,
    listing,
    make_corpus,
    marks,
    plant,
    planted_index,
    target_for,
)


def serves(server: Server) -> None:
    response = server.get("/feeds/all.rss")
    assert response.status_code == 200, response.text


def test_settings_changes_and_damages_leave_one_index_and_one_damaged_copy(
    server_factory, corpus: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    other = target_for(make_corpus(tmp_path / "other"), data)
    update(other)  # another corpus directory in the same data directory
    env = {"FEEDS_CORPUS_DIR": str(corpus), "FEEDS_DATA_DIR": str(data), "WEB_CONCURRENCY": "1"}
    sizes = ["50", "40", "30", "20", "10"]  # four settings changes
    for size in sizes:
        server = server_factory(**env, FEEDS_ARCHIVE_PAGE_SIZE=size)
        serves(server)
        server.stop()
    served = target_for(corpus, data, ARCHIVE_PAGE_SIZE=int(sizes[-1]))
    for damage in (b"first damage ", b"second damage "):
        corrupt(served.path, damage)
        server = server_factory(**env, FEEDS_ARCHIVE_PAGE_SIZE=sizes[-1])
        serves(server)
        server.stop()
    names = listing(data)
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(data)})
    kept = {stats_path(settings).name, websub_path(settings).name}
    assert kept <= names, "the stats and WebSub files are kept"
    theirs = {name for name in names if name.startswith(other.path.name)}
    assert other.path.name in theirs, "another corpus's index is not ours to delete"
    ours = names - kept - theirs
    damaged = [name for name in ours if ".damaged-" in name]
    assert len(damaged) == 1, sorted(ours)
    assert (data / damaged[0]).read_bytes().startswith(b"second damage ")
    assert ours - set(damaged) <= {served.path.name, served.path.name + ".lock"}, sorted(ours)
    assert served.path.name in ours


def test_an_index_another_running_server_serves_stays_until_it_stops(
    server_factory, corpus: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {"FEEDS_CORPUS_DIR": str(corpus), "FEEDS_DATA_DIR": str(data)}
    blue = server_factory(**env, FEEDS_ARCHIVE_PAGE_SIZE="40")
    green = server_factory(**env, FEEDS_ARCHIVE_PAGE_SIZE="20")  # complete: it serves
    old = target_for(corpus, data, ARCHIVE_PAGE_SIZE=40)
    assert old.path.exists(), "blue's indexer still writes it"
    for _ in range(20):  # blue keeps answering from its index
        serves(blue)
    blue.stop()
    green.reload()  # the next reconciliation prunes
    wait_for(old.path.exists, lambda exists: not exists, timeout=20)
    serves(green)
    assert "removed index " + old.path.name in green.log()


def test_planted_databases_are_refused_and_never_run(
    server_factory, corpus: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {
        "FEEDS_CORPUS_DIR": str(corpus),
        "FEEDS_DATA_DIR": str(data),
        "FEEDS_WEBSUB_ALLOW_PRIVATE_CALLBACKS": "1",
    }
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(data)})
    index = target_for(corpus, data)
    planted_index(index, MARK_TRIGGER.format(table="documents"))
    db = sqlite3.connect(index.path)
    db.execute("UPDATE meta SET value = 'ready' WHERE key = 'state'")  # served at once
    db.commit()
    db.close()
    stats, websub = stats_path(settings), websub_path(settings)
    plant(stats, StatsStore.schema, MARK_TRIGGER.format(table="history"))
    plant(websub, WebSubStore.schema, MARK_TRIGGER.format(table="subscriptions"))
    server = server_factory(**env)  # answers once the index is rebuilt beside the planted one
    serves(server)
    subscribe = {
        "hub.mode": "subscribe",
        "hub.callback": "http://127.0.0.1:9/callback",
        "hub.topic": server.url + "/feeds/all.rss",
    }
    answer = requests.post(server.url + "/websub", data=subscribe, timeout=10)
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
    for _ in range(3):  # polls the stats store would count
        serves(server)
    wait_for(server.log, lambda log: stats.name in log and "refused" in log, timeout=10)
    log = server.log()
    (aside,) = [data / name for name in listing(data) if ".damaged-" in name]
    assert marks(aside) == [] and marks(stats) == [] and marks(websub) == []
    said = [line for line in log.splitlines() if "leave_mark" in line and index.path.name in line]
    assert len(said) == 1, log
    assert log.count("indexer started") == 1, "refused and rebuilt, not crash-looped"
    assert f"{websub} is refused: it holds a trigger 'leave_mark'" in log
    assert f"{stats} is refused: it holds a trigger 'leave_mark'" in log
    assert len(IndexReader(index.path).view().articles) > 0

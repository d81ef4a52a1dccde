"""The data directory through the real server (gunicorn from the Procfile): it stays
bounded across settings changes and damages, another server's index stays while it runs,
and planted databases are refused without running anything of theirs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import requests

from feeds.index.indexer import served_file, update
from feeds.index.reader import IndexReader
from feeds.settings import load_settings
from feeds.stats.subscribers import SqliteCountStore as StatsStore
from feeds.websub.store import SqliteSubscriptionStore as WebSubStore
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
    limits = ["100000", "200000", "300000", "400000", "500000"]  # four settings changes
    for limit in limits:
        server = server_factory(**env, FEEDS_MAX_FILE_BYTES=limit)
        serves(server)
        server.stop()
    served = target_for(corpus, data, MAX_FILE_BYTES=int(limits[-1]))
    for damage in (b"first damage ", b"second damage "):
        damaged_file = served_file(served)
        assert damaged_file is not None
        corrupt(damaged_file, damage)
        server = server_factory(**env, FEEDS_MAX_FILE_BYTES=limits[-1])
        serves(server)
        server.stop()
    names = listing(data)
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(data)})
    kept = {StatsStore.path_for(settings).name, WebSubStore.path_for(settings).name}
    assert kept <= names, "the stats and WebSub files are kept"
    theirs = {name for name in names if name.startswith(other.path.stem)}
    assert other.path.name in theirs, "another corpus's index is not ours to delete"
    ours = names - kept - theirs
    damaged = [name for name in ours if ".damaged-" in name]
    assert len(damaged) == 1, sorted(ours)
    assert (data / damaged[0]).read_bytes().startswith(b"second damage ")
    now = served_file(served)
    assert now is not None
    whole = {name.removesuffix("-wal").removesuffix("-shm") for name in ours - set(damaged)}
    assert whole == {served.path.name, served.path.name + ".lock", now.name}, sorted(ours)


def test_a_second_server_serves_the_first_ones_index_then_takes_over(
    server_factory, corpus: Path, tmp_path: Path
) -> None:
    """Two servers on one data directory, on different load settings: one writes, the other
    serves the same index and waits; once the first is gone it builds its own beside."""
    data = tmp_path / "data"
    env = {"FEEDS_CORPUS_DIR": str(corpus), "FEEDS_DATA_DIR": str(data)}
    blue = server_factory(**env, FEEDS_MAX_FILE_BYTES="100000")
    old = served_file(target_for(corpus, data))
    green = server_factory(**env, FEEDS_MAX_FILE_BYTES="200000")
    assert old is not None and served_file(target_for(corpus, data)) == old
    wait_for(green.log, lambda log: "written by another process" in log, timeout=20)
    for _ in range(20):  # both keep answering from the one index
        serves(blue)
        serves(green)
    blue.stop()
    wait_for(old.exists, lambda exists: not exists, timeout=30)
    serves(green)
    assert "removed index " + old.name in green.log()


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
    planted = index.built(1).name
    db = sqlite3.connect(index.path)
    db.execute("UPDATE meta SET value = 'ready' WHERE key = 'state'")  # served at once
    db.commit()
    db.close()
    stats, websub = StatsStore.path_for(settings), WebSubStore.path_for(settings)
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
    said = [line for line in log.splitlines() if "leave_mark" in line and planted in line]
    assert len(said) == 1, log
    assert log.count("indexer started") == 1, "refused and rebuilt, not crash-looped"
    assert f"{websub} is refused: it holds a trigger 'leave_mark'" in log
    assert f"{stats} is refused: it holds a trigger 'leave_mark'" in log
    assert len(IndexReader(index.path).view().articles) > 0

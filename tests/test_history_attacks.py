"""Attacks on the history promises that a review found (each failed before its fix): a
full disk while carrying, a rename, an article that came due during a rebuild, a backup
restored where it was taken from, a new spelling of a topic, a topic emptied, a rebuild's
pushes, a push right after a commit."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from feeds.index import history, reader
from feeds.index.indexer import (
    apply,
    due_paths,
    open_index,
    open_served,
    reconcile,
    served_file,
    update,
    writer_lock,
)
from feeds.runtime import Runtime
from feeds.server import follow
from feeds.settings import load_settings
from feeds.websub.moves import note_moves, take_moves
from feeds.websub.store import SqliteSubscriptionStore, Subscription
from tests.history_corpus import (
    ORIGIN,
    Answer,
    lived_corpus,
    overrides,
    served_titles,
    settle,
    snapshot,
    snapshot_paths,
    target_for,
    write,
)
from tests.support import document
from tests.test_history import assert_history_kept, immutable, parse
from tests.test_websub import ROOMY


def changed_without_a_newer_last_modified(
    before: dict[str, Answer], after: dict[str, Answer]
) -> list[str]:
    """Documents whose bytes changed while their Last-Modified did not move forward."""
    return [
        f"{path}: {before[path][2]} -> {after[path][2]}"
        for path in before
        if path in after
        and after[path][4] != before[path][4]
        and parse(after[path][2]) <= parse(before[path][2])
    ]


# Promise: "A build cut short (a crash, a full disk) is resumed"; sealed pages keep their
# bytes and Last-Modified across a rebuild. A full disk while the history is carried was
# taken for an unreadable history (the served index set aside, the build paged by date);
# now only a damaged or refused served index gives its history up.
def test_a_full_disk_while_carrying_keeps_the_served_index_and_its_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = snapshot(root, data)
    old = served_file(target)
    real_seal = history._seal

    def full(*args: object, **kwargs: object) -> object:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as disk:
        disk.setattr(history, "_seal", full)  # the last step of the carry's transaction
        with contextlib.suppress(sqlite3.Error):  # a failed build may say so
            update(target, rebuild=True)
    assert history._seal is real_seal
    assert not list(data.glob("*.damaged-*")), "a full disk is not a damaged index"
    assert served_file(target) == old, "the served index keeps serving after a full disk"
    assert update(target) is not None  # the disk has room again: the build resumes
    assert_history_kept(before, snapshot(root, data))


# Promise: a feed's Last-Modified moves forward whenever its bytes change (libcurl and
# newsboat drop a 200 whose Last-Modified is not newer than the one they sent), and a
# feed's version (its render-cache key) "changes exactly when this feed's articles or
# their Last-Modified do". A file renamed (same article, same bytes) was withdrawn and
# served again as a new open entry, changing the current documents under an unchanged
# clock; now the same copy is served on from its new path, and no document changes.
def test_a_renamed_file_moves_last_modified_of_every_document_it_changes(
    tmp_path: Path,
) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = snapshot(root, data)
    (root / "005.txt").rename(root / "renamed-005.txt")  # sealed on page 1 of its feeds
    settle(target)
    after = snapshot(root, data)
    assert changed_without_a_newer_last_modified(before, after) == []


# Promise: a rebuild changes nothing a reader sees, and "no subscriber is pushed an
# unchanged feed". An article scheduled for a time that comes while a rebuild runs is
# published by the served index (the follow loop applies due articles to it meanwhile);
# the build, which recorded it as scheduled, reads it again before carrying (its file did
# not change, so the catch-up walk alone would not), instead of taking it for withdrawn.
def test_an_article_published_during_a_rebuild_is_still_served_after_the_switch(
    tmp_path: Path,
) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    root.mkdir()
    for number in range(6):
        write(root, number)
    target = target_for(root, data)
    assert update(target) is not None
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    (root / "due.txt").write_text(
        document(
            title='"Published on time"',
            publishedDateTime=due.strftime("%Y-%m-%dT%H:%M:%SZ"),
            webUrl='"https://news0.example/due"',
        )
    )
    an_hour_ago = time.time() - 3600
    os.utime(root / "due.txt", (an_hour_ago, an_hour_ago))  # written well ahead of its time
    settle(target)  # the served index holds it as scheduled
    assert "Published on time" not in served_titles(root, data)

    def meanwhile_it_comes_due(indexed: int, files: int) -> None:
        """The follow loop, during the build's walk: due articles go to the served index."""
        if indexed < files:
            return
        while time.time() < due.timestamp() + 0.1:
            time.sleep(0.05)
        served = open_served(target)
        assert served is not None
        try:
            apply(served, target, [], due_paths(served, time.time_ns() // 1000))
        finally:
            served.close()
        assert "Published on time" in served_titles(root, data), "served once its time came"

    with writer_lock(target, wait=False):
        build = open_index(target, rebuild=True)
        try:
            changes = reconcile(build, target, meanwhile_it_comes_due)
        finally:
            build.close()
    assert "Published on time" in served_titles(root, data), "gone from the feed at the switch"
    assert changes.feeds == set(), "the switch changed (and pushed) feeds a reader saw unchanged"


# Promise: losing the data directory is what costs the history; a backup made as the README
# says (`sqlite3 "$FEEDS_DATA_DIR/index-<key>.sqlite" ".backup backup.sqlite"`) keeps it.
# Restored to the name it was taken from (the link's), the backup is a regular file, not a
# link: it is served as it is and its history carried, not replaced by a first build.
def test_a_backup_restored_where_it_was_taken_from_keeps_the_history(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = snapshot(root, data)
    backup = tmp_path / "backup.sqlite"
    source, copy = sqlite3.connect(target.path), sqlite3.connect(backup)
    source.backup(copy)  # what the sqlite3 shell's .backup does
    source.close()
    copy.close()
    shutil.rmtree(data)  # the data directory is lost
    data.mkdir()
    shutil.copyfile(backup, target.path)  # and restored from the backup
    assert update(target) is not None
    assert_history_kept(before, snapshot(root, data))


# Promise: a page served `immutable` never changes its bytes. An archive page's title was
# its feed's name, the spelling most of the feed's *current* articles use, so new articles
# that spell a topic another way rewrote every immutable page of that topic; now a page is
# named as its own sealed articles spell it.
def test_a_new_spelling_of_a_topic_leaves_its_immutable_pages_alone(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = {p: a for p, a in immutable(snapshot(root, data)).items() if "/robots/" in p}
    assert before
    for number in range(100, 124, 2):  # a dozen new articles spell it in capitals
        write(root, number, topic="ROBOTS", year=2021)
    settle(target)
    assert snapshot_paths(root, data, before) == before


# Promise: a page served `immutable` never changes its bytes (nor answers 404). When the
# last article of a topic goes (retagged, removed, or filtered by a new FEEDS_MIN_QUALITY),
# its feed row was deleted and every archive page it sealed, served immutable for a year,
# answered 404; now the emptied feed keeps its row, unlisted, and its pages are served.
def test_the_archive_of_a_feed_that_empties_stays_served(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = immutable(snapshot(root, data))
    robots = {path: answer for path, answer in before.items() if "/topics/robots/" in path}
    assert robots, "the Robots topic sealed immutable pages"
    for number in range(1, 41, 2):  # every Robots article (odd numbers) is retagged
        if (root / f"{number:03d}.txt").exists():
            write(root, number, topic="Robotics")
    settle(target)
    after = snapshot_paths(root, data, robots)
    assert {path: answer[0] for path, answer in after.items()} == {p: 200 for p in robots}
    assert after == robots


# Promise: "no subscriber is pushed an unchanged feed". A live change pushes a subscribed
# custom feed only when its document changed; a build's switch pushed every subscribed
# custom feed whenever any fixed feed changed (`Moves(everything=True)`), so one never
# pushed since it was subscribed was pushed although nothing it holds changed. Now the
# copies the carry served differently are matched like a live change's.
def test_a_rebuild_pushes_only_the_custom_feeds_it_changed(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    hub = {"WEBSUB_DB": str(tmp_path / "websub.sqlite3"), "WEBSUB_ALLOW_PRIVATE_CALLBACKS": 1}
    target = lived_corpus(root, data)
    runtime = Runtime(load_settings(overrides(root, data, **hub)))
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    rivers = f"{ORIGIN}/feeds/custom.atom?topic=rivers"
    robots = f"{ORIGIN}/feeds/custom.atom?topic=robots"
    for topic in (rivers, robots):
        subscription = Subscription("http://127.0.0.1:9/callback", topic, "", time.time() + 3600)
        assert store.put(subscription, ROOMY) is None
    write(root, 5, topic="Robots", year=2019)  # a Robots article edited while nobody indexed
    with writer_lock(target, wait=False):
        index = follow._Index(target)
        try:
            index.rebuild(target)
            built = follow._build(
                index, runtime, target, None, lambda: None, failures=follow._Failures()
            )
            assert built
        finally:
            index.close()
    queued = sqlite3.connect(tmp_path / "websub.sqlite3")
    try:
        pushed = dict(queued.execute("SELECT topic, count(*) FROM deliveries GROUP BY topic"))
    finally:
        queued.close()
    assert pushed.get(robots) == 1, "the Robots filter's document changed: it is pushed"
    assert rivers not in pushed, "the Rivers filter's document did not change"


# Promise: a push carries what the change committed. The writer's process renders the
# pushed documents through its own reader, which keeps a view it checked within
# `RECHECK_SECONDS`: one checked just before the commit would push the replaced bytes
# (seen once in CI: a subscriber got the document before the change). The window is
# widened here so that it is always hit.
def test_a_push_carries_the_document_the_change_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    hub = {"WEBSUB_DB": str(tmp_path / "websub.sqlite3"), "WEBSUB_ALLOW_PRIVATE_CALLBACKS": 1}
    target = lived_corpus(root, data)
    runtime = Runtime(load_settings(overrides(root, data, **hub)))
    topic = f"{ORIGIN}/feeds/all.rss"
    subscription = Subscription("http://127.0.0.1:9/callback", topic, "", time.time() + 3600)
    assert runtime.hub.get().put(subscription, ROOMY) is None
    monkeypatch.setattr(reader, "RECHECK_SECONDS", 3600.0)
    runtime.site.reader.view()  # seen just before the change
    write(root, 90, topic="Robots", year=2025)
    with writer_lock(target, wait=False):
        db = open_index(target)
        try:
            note_moves(db)
            changes = reconcile(db, target)
            assert ("all", "") in changes.feeds
            follow._push(runtime, db, changes, partial(take_moves, db))
        finally:
            db.close()
    queued = sqlite3.connect(tmp_path / "websub.sqlite3")
    try:
        (body,) = queued.execute(
            "SELECT c.body FROM deliveries d JOIN contents c ON c.key = d.content_key"
            " WHERE d.topic = ?",
            (topic,),
        ).fetchone()
    finally:
        queued.close()
    assert b"Article 90" in body, "the push holds the article the change added"

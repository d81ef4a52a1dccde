"""The data directory stays bounded, and every SQLite file in it is opened defensively.

What stays of one corpus: the served index, at most one being built, the newest damaged
copy; the stats and WebSub files and other corpora's indexes are never touched. A file
whose schema holds a trigger or view feeds did not create is refused before it can run.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from feeds.index import schema
from feeds.index.indexer import Target, open_index, reconcile, served_file, update, writer_lock
from feeds.index.reader import IndexReader, NotReady
from feeds.index.retention import exclusive
from feeds.index.schema import TABLES, identity, set_aside
from feeds.settings import load_settings
from feeds.sqlite import UntrustedDatabase, harden
from feeds.stats.subscribers import SqliteCountStore as StatsStore
from feeds.websub.store import SqliteSubscriptionStore as WebSubStore
from feeds.websub.store import Subscription
from tests.support import document

# A trigger that leaves a mark when it runs: on any write of a document.
MARK_TRIGGER = """
CREATE TABLE marks (what TEXT);
CREATE TRIGGER leave_mark AFTER INSERT ON {table} BEGIN INSERT INTO marks VALUES ('ran'); END;
"""


def make_corpus(root: Path, count: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        link = f'"https://example.com/news/{number}"'
        (root / f"{number}.txt").write_text(document(webUrl=link, title=f'"Story {number}"'))
    return root


def target_for(root: Path, data_dir: Path, **overrides: object) -> Target:
    settings = load_settings({"CORPUS_DIR": str(root), "DATA_DIR": str(data_dir), **overrides})
    return Target.from_settings(settings)


def build(target: Target) -> None:
    assert update(target) is not None


def listing(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


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


def served(target: Target) -> Path:
    found = served_file(target)
    assert found is not None, "no index is served"
    return found


def test_old_indexes_of_the_corpus_go_once_the_new_one_is_complete(tmp_path: Path) -> None:
    corpus, other = make_corpus(tmp_path / "corpus"), make_corpus(tmp_path / "other")
    data = tmp_path / "data"
    keep = {"stats-0123456789abcdef.sqlite3", "websub-0123456789abcdef.sqlite3", "notes.txt"}
    data.mkdir()
    for name in keep:
        (data / name).write_bytes(b"not ours to delete")
    foreign = target_for(other, data)
    build(foreign)
    first = target_for(corpus, data, MAX_FILE_BYTES=100_000)
    build(first)
    old = served(first)
    cut_short = target_for(corpus, data, MAX_FILE_BYTES=200_000)
    open_index(cut_short).close()  # a build that a settings change cut short
    unfinished = cut_short.built(1)
    assert unfinished.exists()
    building = target_for(corpus, data, MAX_FILE_BYTES=300_000)
    db = open_index(building)
    try:
        # While the new one builds, the served one stays; the unfinished one goes.
        assert served(building) == old and not unfinished.exists()
        reconcile(db, building)
    finally:
        db.close()
    assert not old.exists(), "the superseded index is removed once the new is complete"
    names = listing(data)
    assert keep <= names
    assert served(foreign).name in names, "another corpus's index is not ours to delete"
    corpus_prefix = building.path.name.removesuffix(".sqlite")
    ours = {name for name in names if name.startswith(corpus_prefix)}
    assert ours == {building.path.name, building.path.name + ".lock", served(building).name}
    theirs = foreign.path.name.removesuffix(".sqlite")
    assert not [name for name in names - keep - ours if not name.startswith(theirs)]
    assert len(IndexReader(building.path).view().articles) == 3


def test_a_second_writer_waits_and_an_earlier_release_keeps_its_file(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    running = target_for(corpus, tmp_path / "data", MAX_FILE_BYTES=100_000)
    build(running)
    old = served(running)
    new = target_for(corpus, tmp_path / "data", MAX_FILE_BYTES=200_000)
    with writer_lock(running, wait=False):  # another server writes this corpus's index
        assert update(new) is None
        assert served(new) == old
    # A server of an earlier release locked the file it wrote, not the corpus.
    with exclusive(old.with_name(old.name + ".lock"), wait=False) as held:
        assert held
        build(new)
        assert old.exists() and served(new) != old
    build(new)
    assert not old.exists()


def corrupt(path: Path, mark: bytes) -> None:
    """Overwrite the file's first page, once its WAL is checkpointed into it: a page the
    WAL still holds would be read from there, and the damage would not show."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    with path.open("r+b") as handle:
        handle.write(mark * (4096 // len(mark)))


def test_two_damages_in_one_second_keep_one_whole_copy_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    target = target_for(corpus, data)
    build(target)
    # Both damages read one clock value: their copies would take one name unless the
    # second is given another (what a clock too coarse or too slow to move would do).
    monkeypatch.setattr(schema, "time", SimpleNamespace(time_ns=lambda: 1_700_000_000 * 10**9))
    # A worker holds the index open while it turns out foreign: its WAL goes aside with it.
    worker = sqlite3.connect(target.path)
    worker.execute("UPDATE meta SET value = 'other options' WHERE key = 'options'")
    worker.commit()
    build(target)
    first = [name for name in listing(data) if ".damaged-" in name]
    assert any(name.endswith("-wal") for name in first), first
    worker.close()  # moved away: SQLite deletes no WAL by name, the new index keeps its own
    corrupt(served(target), b"second damage ")
    build(target)
    damaged = [name for name in listing(data) if ".damaged-" in name]
    assert len(damaged) == 1, damaged  # the newest copy, and nothing of the first beside it
    assert (data / damaged[0]).read_bytes().startswith(b"second damage ")
    assert len(IndexReader(target.path).view().articles) == 3


def test_a_worker_closing_a_copy_set_aside_keeps_the_new_index_whole(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    target = target_for(corpus, tmp_path / "data")
    build(target)
    worker = sqlite3.connect(target.path)
    worker.execute("UPDATE meta SET value = 'other options' WHERE key = 'options'")
    worker.commit()
    db = open_index(target)  # set aside, a new one at the name
    try:
        reconcile(db, target)
        assert Path(f"{served(target)}-wal").exists()
        worker.close()  # its last connection to the copy: no checkpoint into the new one
        assert Path(f"{served(target)}-wal").exists(), "the served index kept its WAL"
        (corpus / "3.txt").write_text(document(webUrl='"https://example.com/news/3"'))
        time.sleep(1.1)
        reconcile(db, target)
    finally:
        db.close()
    assert len(IndexReader(target.path).view().articles) == 4


def test_a_reader_follows_a_file_set_aside_to_the_rebuilt_one(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    target = target_for(corpus, tmp_path / "data")
    build(target)
    reader = IndexReader(target.path)
    assert len(reader.view().articles) == 3
    (corpus / "3.txt").write_text(document(webUrl='"https://example.com/news/3"'))
    set_aside(target.path)  # as the writer does with a damaged file, workers reading it
    build(target)
    time.sleep(0.02)
    assert len(reader.view().articles) == 4


def planted_index(target: Target, extra: str) -> None:
    """Planted as the served index: the file the link names."""
    meta = {**identity(target.root, target.key), "state": "building"}
    plant(target.built(1), TABLES, extra, meta)
    os.symlink(target.built(1).name, target.path)


def test_a_planted_index_with_a_trigger_is_refused_and_rebuilt_without_running_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    target = target_for(corpus, data)
    planted_index(target, MARK_TRIGGER.format(table="documents"))
    with caplog.at_level(logging.INFO, logger="feeds"):
        build(target)
    (aside,) = [data / name for name in listing(data) if ".damaged-" in name]
    assert marks(aside) == [], "the trigger never ran"
    said = [r.getMessage() for r in caplog.records if "leave_mark" in r.getMessage()]
    assert len(said) == 1 and target.built(1).name in said[0] and "trigger" in said[0], said
    assert len(IndexReader(target.path).view().articles) == 3


def test_a_planted_index_whose_table_is_a_view_is_refused_by_readers(tmp_path: Path) -> None:
    target = target_for(make_corpus(tmp_path / "corpus"), tmp_path / "data")
    view = (
        "DROP TABLE feeds; CREATE VIEW feeds (kind, slug, name, domain, count, open, newest,"
        " digest) AS SELECT 'all', '', 'planted', NULL, 7, 0, NULL, hex(randomblob(32));"
    )
    planted_index(target, view)
    db = sqlite3.connect(target.path)
    db.execute("UPDATE meta SET value = 'ready' WHERE key = 'state'")
    db.commit()
    db.close()
    with pytest.raises(NotReady):
        IndexReader(target.path).view()


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
        schema, table = StatsStore.schema, "history"
    else:
        schema, table = WebSubStore.schema, "subscriptions"
    plant(path, schema, MARK_TRIGGER.format(table=table))
    with pytest.raises(UntrustedDatabase, match=f"{path.name}.*trigger 'leave_mark'"):
        if store == "stats":
            StatsStore(path).write({("/feeds/all.rss", "Feedly", "x"): (3, 1)}, set())
        else:
            WebSubStore(path).put(Subscription("http://127.0.0.1/cb", "t", "", 2e9), 10)
    assert marks(path) == []


def test_indexes_named_before_the_corpus_key_go_only_if_they_are_ours(tmp_path: Path) -> None:
    corpus, other = make_corpus(tmp_path / "corpus"), make_corpus(tmp_path / "other")
    data = tmp_path / "data"
    data.mkdir()
    for root, name in ((corpus, "0" * 24), (other, "1" * 24)):
        old = target_for(root, tmp_path / name, ARCHIVE_PAGE_SIZE=40)
        build(old)
        os.replace(old.path, data / f"index-{name}.sqlite")
    build(target_for(corpus, data))
    names = listing(data)
    assert f"index-{'0' * 24}.sqlite" not in names, "ours, named the old way"
    assert f"index-{'1' * 24}.sqlite" in names, "another corpus's, named the old way"


def test_a_fifo_at_the_index_name_is_not_waited_on(tmp_path: Path) -> None:
    """SQLite sizes a FIFO at 0 and never reads it; pruning only opens it through SQLite."""
    corpus = make_corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    target = target_for(corpus, data)
    data.mkdir()
    os.mkfifo(target.path)
    os.mkfifo(data / f"index-{'2' * 24}.sqlite")  # named the old way: read for its corpus
    worker = threading.Thread(target=update, args=(target,), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "the indexer blocked on a FIFO"
    assert len(IndexReader(target.path).view().articles) == 3


def test_a_file_the_writer_has_just_made_is_not_ready_yet(tmp_path: Path) -> None:
    target = target_for(make_corpus(tmp_path / "corpus"), tmp_path / "data")
    target.path.parent.mkdir()
    sqlite3.connect(target.path).execute("PRAGMA journal_mode = WAL").close()  # no tables yet
    reader = IndexReader(target.path)
    with pytest.raises(NotReady):
        reader.view()
    assert reader.progress() == (0, 0)

"""The history an index promised outlives every rebuild: sealed pages keep their bytes,
clocks never move back, edit times stay, and a rebuild that changed nothing pushes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from feeds.app import BACKGROUND_INDEX_ENV, create_app
from feeds.index import history, indexer, schema
from feeds.index.indexer import served_file, update
from feeds.index.reader import IndexReader, NotReady
from feeds.settings import corpus_key
from tests.history_corpus import (
    Answer,
    lived_corpus,
    overrides,
    settle,
    snapshot,
    target_for,
    write,
)


def immutable(answers: dict[str, Answer]) -> dict[str, Answer]:
    """The pages served `immutable` (every archive page but each feed's newest)."""
    return {path: answer for path, answer in answers.items() if "immutable" in (answer[3] or "")}


def assert_history_kept(before: dict[str, Answer], after: dict[str, Answer]) -> None:
    sealed = immutable(before)
    assert len(sealed) >= 9, "the corpus sealed pages in every format"
    for path, answer in sealed.items():
        assert after.get(path) == answer, f"{path} changed after the rebuild"
    for path, (_, _, modified, _, _) in before.items():
        assert path in after, f"{path} is gone"
        if modified is not None:  # each feed's newest archive page has its ETag alone
            assert parse(after[path][2]) >= parse(modified), f"{path}: Last-Modified went back"


def parse(value: str | None) -> float:
    assert value is not None
    return parsedate_to_datetime(value).timestamp()


def test_a_forced_rebuild_keeps_every_promise_and_pushes_nothing(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = snapshot(root, data)
    old = served_file(target)
    changes = update(target, rebuild=True)
    assert changes is not None
    assert changes.feeds == set(), "a rebuild that changed nothing pushes nothing"
    assert served_file(target) not in (None, old) and old is not None and not old.exists()
    after = snapshot(root, data)
    assert after == before, "every document has the same bytes and validators"


def test_the_edit_time_and_the_sealed_copy_survive_a_rebuild(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    client = create_app(overrides(root, data)).test_client()
    edited = client.get("/feeds/all.json?limit=50").get_json()
    (item,) = [i for i in edited["items"] if i["title"] == "Article 1, corrected"]
    assert item["date_modified"] != item["date_published"]
    update(target, rebuild=True)
    client = create_app(overrides(root, data)).test_client()
    again = client.get("/feeds/all.json?limit=50").get_json()
    (kept,) = [i for i in again["items"] if i["title"] == "Article 1, corrected"]
    assert kept["date_modified"] == item["date_modified"]
    first_page = client.get("/feeds/all/archive/1.json").get_json()
    titles = {i["title"] for i in first_page["items"]}
    assert {"Article 1", "Article 2"} <= titles, "the page keeps the copies it sealed"


def test_a_new_parser_version_rebuilds_beside_and_keeps_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = snapshot(root, data)
    old = served_file(target)
    monkeypatch.setattr(schema, "PARSER_VERSION", 999)
    assert update(target) is not None
    assert served_file(target) != old
    assert_history_kept(before, snapshot(root, data))


def test_a_new_page_size_applies_to_pages_sealed_from_then_on(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = snapshot(root, data)
    wider = target_for(root, data, ARCHIVE_PAGE_SIZE=5)
    assert served_file(wider) == served_file(target), "the page size names no index"
    for number in range(20, 26):
        write(root, number)
    settle(wider)
    after = snapshot(root, data)
    assert_history_kept(before, after)


def test_a_restart_without_a_new_version_opens_the_same_index(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    served = served_file(target)
    names = sorted(os.listdir(data))
    changes = update(target_for(root, data))
    assert changes is not None and changes.parsed == 0 and changes.feeds == set()
    assert served_file(target) == served and sorted(os.listdir(data)) == names


def test_an_index_of_a_newer_release_is_refused_and_left_alone(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    served = served_file(target)
    assert served is not None
    db = sqlite3.connect(served)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    db.close()
    size = served.stat().st_size
    with pytest.raises(schema.NewerIndex, match="newer release"):
        update(target, rebuild=True)
    assert served_file(target) == served and served.stat().st_size == size


FIXTURE = Path(__file__).parent / "fixtures" / "history-0.2.0"


def test_the_history_the_previous_release_wrote_is_carried_forward(tmp_path: Path) -> None:
    """The index and answers 0.2.0 left (`python -m tests.history_corpus`, run with that
    release's code): the upgrade keeps every document's bytes and validators."""
    root, data = tmp_path / "corpus", tmp_path / "data"
    shutil.copytree(FIXTURE / "corpus", root)
    data.mkdir()
    served = data / f"index-{corpus_key(root)}-{'0' * 16}.sqlite"  # as 0.2.0 named it
    shutil.copyfile(FIXTURE / "index.sqlite", served)
    moved = sqlite3.connect(served)  # the corpus it names is where the fixture was written
    moved.execute("UPDATE meta SET value = ? WHERE key = 'corpus'", (os.path.realpath(root),))
    moved.commit()
    moved.close()
    answered = json.loads((FIXTURE / "answers.json").read_text())
    assert sum("immutable" in str(answer[3]) for answer in answered.values()) >= 9
    now = {
        path: [status, etag, modified, cache, hashlib.sha256(body).hexdigest()]
        for path, (status, etag, modified, cache, body) in snapshot(root, data).items()
    }
    # The fixture's release dated each feed's newest archive page; this one does not (its
    # ETag alone validates it): every other byte and validator is as that release served it.
    undated = {
        path: [status, etag, None, cache, body]
        for path, (status, etag, _, cache, body) in answered.items()
        if "/archive/" in path and "immutable" not in cache
    }
    assert undated and now == {**answered, **undated}
    assert not served.exists(), "carried into a build of this release, then removed"


@pytest.mark.parametrize(
    "failure",
    [KeyboardInterrupt(), sqlite3.OperationalError("database or disk is full")],
    ids=["killed", "disk-full"],
)
def test_a_rebuild_cut_short_serves_the_old_index_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    before = snapshot(root, data)
    old = served_file(target)
    monkeypatch.setattr(indexer, "BATCH", 4)
    done: list[int] = []

    def cut_short(indexed: int, files: int) -> None:
        done.append(indexed)
        if len(done) == 2:
            raise failure

    with pytest.raises(type(failure)):
        update(target, cut_short, rebuild=True)
    (building,) = [path for path in data.glob("index-*-*-*.sqlite") if path != old]
    assert served_file(target) == old
    with monkeypatch.context() as server:
        server.setenv(BACKGROUND_INDEX_ENV, "1")  # as workers: they read, the writer writes
        assert snapshot(root, data) == before, "the served index serves meanwhile"
    resumed: list[int] = []
    assert update(target, lambda indexed, files: resumed.append(indexed)) is not None
    assert served_file(target) == building, "the same build, resumed"
    assert resumed[0] > done[-1] - 4, "what was written before is not parsed again"
    assert snapshot(root, data) == before


def test_an_index_of_another_corpus_is_refused_and_left_alone(tmp_path: Path) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    served = served_file(target)
    assert served is not None
    db = sqlite3.connect(served)
    db.execute("UPDATE meta SET value = '/elsewhere' WHERE key = 'corpus'")
    db.commit()
    db.close()
    names = sorted(os.listdir(data))
    with pytest.raises(schema.ForeignIndex, match="another corpus"):
        update(target, rebuild=True)
    assert served_file(target) == served and sorted(os.listdir(data)) == names


def test_a_first_build_is_served_with_an_empty_wal(tmp_path: Path) -> None:
    """Workers read a first build while it is built (to report progress) and hold a read
    transaction on it from their first look at it ready until the next commit. Its last
    transaction (a whole corpus's pages: 1 GB at 1,000,000 documents) is checkpointed and
    the WAL truncated before it is marked ready; a worker that looked in between kept that
    WAL at its size for good (seen at 1,000,000 under polling)."""
    root, data = tmp_path / "corpus", tmp_path / "data"
    root.mkdir()
    for number in range(300):
        write(root, number)
    target = target_for(root, data)
    worker = IndexReader(target.path)
    views: list[object] = []
    done = threading.Event()

    def look_as_a_worker_does() -> None:
        while not done.is_set() and not views:
            with contextlib.suppress(NotReady):
                views.append(worker.view())
            time.sleep(0.001)

    looking = threading.Thread(target=look_as_a_worker_does)
    looking.start()
    try:
        assert update(target) is not None
        looking.join(timeout=10)  # a loaded machine may let it look only after the build
    finally:
        done.set()
        looking.join()
    served = served_file(target)
    assert served is not None
    wal = served.with_name(served.name + "-wal")
    # What is left: the commit that marked it ready, a page or two.
    assert views and wal.stat().st_size < 64 * 1024, f"WAL of {wal.stat().st_size} bytes"


def test_a_first_build_cut_short_before_it_is_marked_ready_is_finished_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its pages are committed before it is marked ready (so the WAL can be truncated in
    between): a crash there is resumed by paging it again, never by paging it twice."""
    root = tmp_path / "corpus"
    root.mkdir()
    for number in range(120):
        write(root, number)

    def pages(data: Path) -> list[tuple[object, ...]]:
        (built,) = data.glob("index-*-1.sqlite")
        with contextlib.closing(sqlite3.connect(built)) as db:
            return db.execute(
                "SELECT kind, slug, page, id FROM entries ORDER BY kind, slug, page, id"
            ).fetchall()

    assert update(target_for(root, tmp_path / "whole")) is not None
    with monkeypatch.context() as crash:
        crash.setattr(indexer, "_serve", lambda *_: (_ for _ in ()).throw(OSError("killed")))
        with pytest.raises(OSError, match="killed"):
            update(target_for(root, tmp_path / "cut"))
    assert pages(tmp_path / "cut") == pages(tmp_path / "whole"), "paged, not marked ready"
    with pytest.raises(NotReady):
        IndexReader(target_for(root, tmp_path / "cut").path).view()
    assert update(target_for(root, tmp_path / "cut")) is not None
    assert pages(tmp_path / "cut") == pages(tmp_path / "whole")


def test_carrying_writes_the_build_in_place_not_a_second_copy_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Peak disk during a rebuild: the served index, the build, and what carrying keeps
    beside the build. Through a WAL that was a copy of every page the carry wrote (1 GB at
    1,000,000 documents); a rollback journal keeps only the few pages it overwrote."""
    root, data = tmp_path / "corpus", tmp_path / "data"
    target = lived_corpus(root, data)
    beside: list[int] = []
    real_carry = history.carry

    def measured(db: sqlite3.Connection, *args: object) -> object:
        changed = real_carry(db, *args)  # type: ignore[arg-type]
        own = indexer.file_of(db)
        side = [own.with_name(own.name + suffix) for suffix in ("-wal", "-journal")]
        beside.append(sum(path.stat().st_size for path in side if path.exists()))
        return changed

    monkeypatch.setattr(history, "carry", measured)
    assert update(target, rebuild=True) is not None
    served = served_file(target)
    assert served is not None
    assert beside == [0], "what the carry wrote waits beside the build"
    with sqlite3.connect(served) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",), "served in WAL mode"

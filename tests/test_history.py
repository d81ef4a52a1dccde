"""The history an index promised outlives every rebuild: sealed pages keep their bytes,
clocks never move back, edit times stay, and a rebuild that changed nothing pushes nothing.
"""

from __future__ import annotations

import os
import sqlite3
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from feeds.app import create_app
from feeds.index import schema
from feeds.index.indexer import Target, served_file, update
from feeds.settings import load_settings
from tests.support import document

ORIGIN = "https://feeds.example.org"
FORMATS = ("rss", "atom", "json")
PAGE_SIZE = 3
Answer = tuple[int, str | None, str | None, str | None, bytes]


def overrides(root: Path, data: Path, **more: object) -> dict[str, object]:
    return {
        "CORPUS_DIR": str(root),
        "DATA_DIR": str(data),
        "BASE_URL": ORIGIN,
        "DEFAULT_ITEMS": 10,
        "ARCHIVE_PAGE_SIZE": PAGE_SIZE,
        **more,
    }


def target_for(root: Path, data: Path, **more: object) -> Target:
    return Target.from_settings(load_settings(overrides(root, data, **more)))


def write(root: Path, number: int, title: str | None = None, year: int | None = None) -> None:
    topic = "Robots" if number % 2 else "Rivers"
    when = f"{year or 2020 + number // 12}-{1 + number % 12:02d}-15T12:00:00Z"
    (root / f"{number:03d}.txt").write_text(
        document(
            title=f'"{title or f"Article {number}"}"',
            publishedDateTime=when,
            webUrl=f'"https://news{number % 3}.example/{number}"',
            topics=f"\n  - {topic}",
        )
    )


def settle(target: Target) -> None:
    """One live change: a commit in a later second than the last (as the writer paces)."""
    time.sleep(1.05)
    assert update(target) is not None


def lived_corpus(root: Path, data: Path) -> Target:
    """A corpus whose history is not what a build by date would give: pages sealed in
    arrival order, a backdated article, an edit and a removal after sealing."""
    root.mkdir()
    for number in range(10):
        write(root, number)
    target = target_for(root, data)
    assert update(target) is not None  # the first build pages by date
    for number in range(10, 14):
        write(root, number)
    settle(target)
    write(root, 40, year=2001)  # backdated: sealed where it arrived, not at its date
    write(root, 1, title="Article 1, corrected")  # sealed on page 1: its old copy stays there
    (root / "002.txt").unlink()  # sealed: the page keeps it
    settle(target)
    for number in range(14, 20):
        write(root, number)
    settle(target)
    return target


def feed_paths(client: Any) -> list[str]:
    """Every feed's path, from the OPML list."""
    opml = etree.fromstring(client.get("/feeds.opml").data)
    urls = [outline.get("xmlUrl") for outline in opml.iter("outline") if outline.get("xmlUrl")]
    return sorted({url.removeprefix(ORIGIN).rsplit(".", 1)[0] for url in urls})


def snapshot(root: Path, data: Path) -> dict[str, Answer]:
    """Every current document and archive page, as a fresh server answers them."""
    client = create_app(overrides(root, data)).test_client()
    answers: dict[str, Answer] = {}
    for base in feed_paths(client):
        for extension in FORMATS:
            paths = [f"{base}.{extension}"]
            page = 1
            while client.get(f"{base}/archive/{page}.{extension}").status_code == 200:
                paths.append(f"{base}/archive/{page}.{extension}")
                page += 1
            for path in paths:
                response = client.get(path)
                answers[path] = (
                    response.status_code,
                    response.headers.get("ETag"),
                    response.headers.get("Last-Modified"),
                    response.headers.get("Cache-Control"),
                    response.get_data(),
                )
    return answers


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

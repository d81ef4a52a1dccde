"""A corpus with a lived history, and what a server answers for it: shared by the history
tests and by the fixture written with the previous release's code.

    git worktree add /tmp/previous <commit of that release>
    cp -r tests /tmp/previous/ && cd /tmp/previous
    python -m tests.history_corpus <checkout>/tests/fixtures/history-0.2.0

writes that release's corpus, index and answers (this module uses only what every
release since 0.2 has: `create_app`, `Target.from_settings`, `update`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests
from lxml import etree

from feeds.app import create_app
from feeds.index.indexer import Target, update
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


def served_titles(root: Path, data: Path) -> set[str]:
    """The titles of the newest 50 articles the index in `data` serves."""
    client = create_app(overrides(root, data)).test_client()
    return {item["title"] for item in client.get("/feeds/all.json?limit=50").get_json()["items"]}


def target_for(root: Path, data: Path, **more: object) -> Target:
    return Target.from_settings(load_settings(overrides(root, data, **more)))


def write(
    root: Path,
    number: int,
    title: str | None = None,
    year: int | None = None,
    topic: str | None = None,
) -> None:
    topic = topic or ("Robots" if number % 2 else "Rivers")
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
            answers.update(answered(client, paths))
    return answers


def snapshot_paths(root: Path, data: Path, paths: Iterable[str]) -> dict[str, Answer]:
    """What a fresh server answers for `paths` (as `snapshot`, for documents it may not list)."""
    return answered(create_app(overrides(root, data)).test_client(), paths)


def answered(client: Any, paths: Iterable[str]) -> dict[str, Answer]:
    """Each path's status, validators, Cache-Control and body, as Flask's test client or a
    real server (`tests.support.Server`) answers it."""
    answers: dict[str, Answer] = {}
    for path in paths:
        response = client.get(path)
        body = response.content if isinstance(response, requests.Response) else response.get_data()
        answers[path] = (
            response.status_code,
            response.headers.get("ETag"),
            response.headers.get("Last-Modified"),
            response.headers.get("Cache-Control"),
            body,
        )
    return answers


def write_fixture(folder: Path) -> None:
    """The corpus, the index and every answer (bodies as SHA-256) of this release."""
    work = Path(folder).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root, data = work / "corpus", work / "data"
    target = lived_corpus(root, data)
    answers = {
        path: [status, etag, modified, cache, hashlib.sha256(body).hexdigest()]
        for path, (status, etag, modified, cache, body) in snapshot(root, data).items()
    }
    (work / "answers.json").write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n")
    (index,) = [path for path in data.glob("index-*.sqlite") if path.is_file()]
    source, copy = sqlite3.connect(index), sqlite3.connect(work / "index.sqlite")
    source.backup(copy)  # one file, whole, while the apps above still hold it open
    copy.execute("PRAGMA journal_mode = DELETE")
    source.close()
    copy.close()
    shutil.rmtree(data)
    print(f"wrote {work} from {target.root}")


if __name__ == "__main__":
    write_fixture(Path(sys.argv[1]))

"""Reloading the corpus with SIGHUP while requests keep coming."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from werkzeug.http import parse_date

from tests.support import Server, corpus_version, document, reloaded, wait_for

PATHS = [
    "/feeds/all.rss",
    "/feeds/topics/ai.atom",
    "/feeds/topics/robotics.json",
    "/feeds/providers/wbur.org.rss",
    "/feeds/providers/nypost.com.atom",
]


def validators(server: Server) -> dict[str, tuple[int, str | None, str | None]]:
    out = {}
    for path in PATHS:
        response = server.get(path)
        out[path] = (
            response.status_code,
            response.headers.get("ETag"),
            response.headers.get("Last-Modified"),
        )
    return out


def test_sighup_reload_changes_only_changed_feeds_and_drops_nothing(
    server_factory, corpus: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus))
    before = validators(server)
    assert before["/feeds/topics/robotics.json"][0] == 404
    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal answered
        session = requests.Session()
        while not stop.is_set():
            for path in PATHS[:2]:
                try:
                    status = session.get(server.url + path, timeout=10).status_code
                except requests.RequestException as error:
                    failures.append(f"{path}: {error}")
                    continue
                answered += 1
                if status != 200:
                    failures.append(f"{path}: {status}")

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    for thread in pollers:
        thread.start()
    try:
        with reloaded(server):
            (corpus / "new.md").write_text(
                document(
                    publishedDateTime="2024-05-01T00:00:00Z",
                    webUrl='"https://robots.example/new"',
                    topics="\n  - Robotics\n  - AI",
                    provider="\n  name: Robots\n  domain: robots.example",
                )
            )
        time.sleep(0.5)
    finally:  # a failed reload must not leave the pollers running forever
        stop.set()
        for thread in pollers:
            thread.join()
    assert not failures, failures[:5]
    assert answered > 20
    after = validators(server)
    for path in ("/feeds/all.rss", "/feeds/topics/ai.atom"):
        assert after[path][1] != before[path][1]
        assert parse_date(after[path][2]) > parse_date(before[path][2])
    assert after["/feeds/topics/robotics.json"][0] == 200
    for path in ("/feeds/providers/wbur.org.rss", "/feeds/providers/nypost.com.atom"):
        assert after[path] == before[path], path


@pytest.mark.parametrize("loss", ["emptied", "removed"])
def test_a_corpus_directory_that_empties_or_vanishes_keeps_the_last_index(
    server_factory, corpus: Path, loss: str
) -> None:
    """An unmounted volume looks like an empty or missing folder: never index that away."""
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus))
    served = server.get("/feeds/all.atom").content
    old_version = corpus_version(server)
    for path in corpus.iterdir():
        path.unlink()
    if loss == "removed":
        corpus.rmdir()
    server.reload()
    expected = "holds no documents" if loss == "emptied" else "does not exist"
    wait_for(server.log, lambda log: expected in log)
    assert corpus_version(server) == old_version
    assert server.get("/feeds/all.atom").content == served


def test_workers_leave_a_reload_quietly(server_factory, corpus: Path) -> None:
    """Old workers once printed `Exception ignored in: _removeHandlerRef` on their way out."""
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus))
    assert server.get("/topics/ai").status_code == 200
    with reloaded(server):
        (corpus / "new.md").write_text(document(webUrl='"https://example.com/new"'))
    assert server.log().count("Worker exiting") == 2
    server.stop(graceful=True)  # SIGTERM, as a platform stops it
    log = server.log()
    assert log.count("Worker exiting") == 4
    assert "Exception ignored" not in log
    assert "Traceback" not in log

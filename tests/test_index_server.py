"""The index through the real server: bind at once, 503 until the first index, then serve."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.generate import write_corpus
from tests.support import Server, launch, start_server, wait_for


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large enough that indexing it takes a few seconds on a busy machine."""
    root = tmp_path_factory.mktemp("big")
    write_corpus(root, 4000, seed=5, workers=2)
    return root


def answers(server: Server, path: str) -> requests.Response | None:
    try:
        return requests.get(server.url + path, timeout=5)
    except requests.ConnectionError:
        return None  # not bound yet


def test_without_an_index_feeds_answer_503_until_the_first_complete_one(
    big_corpus: Path, tmp_path: Path
) -> None:
    server = launch({"FEEDS_CORPUS_DIR": str(big_corpus), "FEEDS_DATA_DIR": str(tmp_path)})
    try:
        seen: list[tuple[int, dict]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            health = answers(server, "/healthz")
            if health is not None:
                seen.append((health.status_code, health.json()))
                if health.status_code == 200:
                    break
                feed = answers(server, "/feeds/all.rss")
                assert feed is not None and feed.status_code in {200, 503}
                if feed.status_code == 503:  # 200 only if indexing ended since /healthz
                    assert int(feed.headers["Retry-After"]) > 0
                    assert "being indexed" in feed.text
            time.sleep(0.05)
        indexing = [body for status, body in seen if status == 503]
        assert indexing, "the port opened only once the index was complete"
        assert all(body["status"] == "indexing" for body in indexing)
        assert all(0 <= body["indexed"] <= body["files"] for body in indexing)
        assert any(body["files"] > 0 for body in indexing), "the build's progress is shown"
        assert seen[-1][0] == 200 and seen[-1][1]["articles"] > 3900
        assert answers(server, "/feeds/all.rss").status_code == 200
    finally:
        server.stop()


def test_with_an_index_feeds_are_served_at_once(big_corpus: Path, tmp_path: Path) -> None:
    env = {"FEEDS_CORPUS_DIR": str(big_corpus), "FEEDS_DATA_DIR": str(tmp_path)}
    first = start_server(env, timeout=120)
    first.stop()
    second = launch(env)
    try:
        health = wait_for(lambda: answers(second, "/healthz"), lambda answer: answer is not None)
        assert health.status_code == 200, "an existing index is served from the first request"
        assert health.json()["articles"] > 3900
    finally:
        second.stop()


def test_two_servers_on_one_data_directory_share_one_writer(
    corpus: Path, tmp_path: Path, server_factory
) -> None:
    env = {"FEEDS_CORPUS_DIR": str(corpus), "FEEDS_DATA_DIR": str(tmp_path)}
    one, two = server_factory(**env), server_factory(**env)
    for server in (one, two):
        assert server.get("/feeds/all.rss").status_code == 200
    standby = wait_for(
        lambda: [s for s in (one, two) if "written by another process" in s.log()],
        lambda found: len(found) == 1,
    )
    assert "ready to take over" in standby[0].log()

"""A living corpus, end to end: files change under a running server and no signal is sent.

The server is the Procfile's, with rescans off (`FEEDS_RESCAN_SECONDS=0`), so only change
events can bring what each test writes into the feeds.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from werkzeug.http import parse_date

from feeds.websub.store import SqliteSubscriptionStore
from tests.support import Server, document, wait_for
from tests.test_websub import Subscriber, first_build_pushed, hub_settings, subscribe

LIVE = {"FEEDS_RESCAN_SECONDS": "0"}
FEEDS = ("/feeds/all.rss", "/feeds/topics/robotics.atom", "/feeds/providers/robots.example.json")
UNAFFECTED = "/feeds/providers/wbur.org.rss"


def robots(title: str, published: str = "2024-05-01T00:00:00Z", slug: str = "new") -> str:
    return document(
        title=f'"{title}"',
        publishedDateTime=published,
        webUrl=f'"https://robots.example/{slug}"',
        topics="\n  - Robotics",
        provider="\n  name: Robots\n  domain: robots.example",
    )


def body(server: Server, path: str) -> str:
    response = server.get(path)
    return response.text if response.status_code == 200 else ""


def wait_everywhere(server: Server, shown: str | None, hidden: str | None = None) -> None:
    """Until every feed the robots article belongs to shows `shown` and not `hidden`."""
    for path in FEEDS:
        wait_for(
            lambda path=path: body(server, path),
            lambda text: (
                (shown is None or shown in text) and (hidden is None or hidden not in text)
            ),
            timeout=10,
            pause=0.05,
        )


def test_add_edit_rename_and_remove_reach_every_feed_without_a_signal(
    server_factory, corpus: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **LIVE)
    untouched = server.get(UNAFFECTED).headers["ETag"]

    # A producer that writes a hidden temporary file and renames it into place.
    (corpus / ".incoming.md").write_text(robots("Robots arrive"))
    os.replace(corpus / ".incoming.md", corpus / "new.md")
    wait_everywhere(server, "Robots arrive")

    # A producer that writes in place, in pieces.
    text = robots("Robots edited")
    with (corpus / "new.md").open("w") as handle:
        for start in range(0, len(text), 40):
            handle.write(text[start : start + 40])
            handle.flush()
    wait_everywhere(server, "Robots edited", hidden="Robots arrive")

    before = {path: server.get(path).headers["ETag"] for path in FEEDS}
    (corpus / "sub").mkdir()
    os.replace(corpus / "new.md", corpus / "sub" / "moved.md")
    time.sleep(1)  # had every chance to show the article missing
    assert {path: server.get(path).headers["ETag"] for path in FEEDS} == before

    (corpus / "sub" / "moved.md").unlink()  # gone from the path it was moved to
    wait_for(lambda: server.get(FEEDS[1]).status_code, lambda status: status == 404, timeout=10)
    wait_for(lambda: body(server, FEEDS[0]), lambda text: "Robots edited" not in text, timeout=10)
    assert server.get(UNAFFECTED).headers["ETag"] == untouched


def test_a_folder_moved_away_and_back_leaves_and_returns(server_factory, corpus: Path) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **LIVE)
    (corpus / "day").mkdir()
    (corpus / "day" / "one.md").write_text(robots("Robots of the day"))
    wait_everywhere(server, "Robots of the day")
    os.replace(corpus / "day", corpus.parent / "away")
    wait_for(lambda: body(server, FEEDS[0]), lambda text: "Robots of the day" not in text)
    os.replace(corpus.parent / "away", corpus / "day")
    wait_everywhere(server, "Robots of the day")


def curl_with_time_condition(server: Server, path: str, etag: str, last_modified: str) -> bytes:
    """What libcurl (newsboat) keeps: `-z` drops a 200 whose Last-Modified is not newer."""
    result = subprocess.run(
        ["curl", "-s", "-z", last_modified, "-H", f"If-None-Match: {etag}", server.url + path],
        capture_output=True,
        timeout=10,
        check=True,
    )
    return result.stdout


def test_last_modified_moves_forward_on_a_backdated_add(server_factory, corpus: Path) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **LIVE)
    first = server.get("/feeds/all.rss")
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    (corpus / "old.md").write_text(robots("Robots of 2001", "2001-01-01T00:00:00Z", "old"))
    changed = wait_for(
        lambda: server.get("/feeds/all.rss?limit=500"), lambda r: "Robots of 2001" in r.text
    )
    assert parse_date(changed.headers["Last-Modified"]) > parse_date(last_modified)
    kept = curl_with_time_condition(server, "/feeds/all.rss?limit=500", etag, last_modified)
    assert b"Robots of 2001" in kept


def archive_pages(server: Server) -> dict[str, requests.Response]:
    pages = {}
    for page in range(1, 50):
        response = server.get(f"/feeds/all/archive/{page}.atom")
        if response.status_code != 200:
            break
        pages[response.url] = response
    return pages


def test_no_immutable_page_changes_across_a_backdated_add(server_factory, corpus: Path) -> None:
    for month in (5, 6):
        (corpus / f"{month}.md").write_text(
            robots(f"Robots {month}", f"2024-0{month}-01T00:00:00Z", str(month))
        )
    settings = {"FEEDS_ARCHIVE_PAGE_SIZE": "1", "FEEDS_DEFAULT_ITEMS": "1"}
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **LIVE, **settings)
    before = archive_pages(server)
    immutable = {u: r for u, r in before.items() if "immutable" in r.headers["Cache-Control"]}
    assert len(before) == 3 and len(immutable) == 2  # the newest page is not immutable
    (corpus / "old.md").write_text(robots("Robots of 2001", "2001-01-01T00:00:00Z", "old"))
    after = wait_for(
        lambda: archive_pages(server),
        lambda pages: any("Robots of 2001" in page.text for page in pages.values()),
    )
    for url, response in immutable.items():
        assert after[url].content == response.content, url
        assert after[url].headers["Last-Modified"] == response.headers["Last-Modified"]
    newest = sorted(after, key=lambda url: int(url.rsplit("/", 1)[1].split(".")[0]))[-1]
    assert newest not in before and "Robots of 2001" in after[newest].text


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    started = Subscriber()
    yield started
    started.stop()


def test_a_change_made_while_stopped_is_pushed_after_start(
    server_factory, subscriber: Subscriber, corpus: Path, tmp_path: Path
) -> None:
    settings = hub_settings(tmp_path, corpus, **LIVE)
    first = server_factory(**settings)
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    first_build_pushed(first)
    subscribe(first, store, subscriber, first.url + "/feeds/topics/ai.atom")
    first.stop()
    (corpus / "offline.md").write_text(
        document(title='"Written while stopped"', webUrl='"https://example.com/offline"')
    )
    second = server_factory(**settings)  # another port: the topic names the first's URL
    wait_for(subscriber.posts, bool)
    assert b"Written while stopped" in subscriber.posts()[0].body
    time.sleep(1)
    assert len(subscriber.posts()) == 1  # once, not once per worker
    assert second.get("/healthz").json()["status"] == "ok"


def test_a_future_dated_article_appears_and_is_pushed_when_its_time_comes(
    server_factory, subscriber: Subscriber, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus, **LIVE))
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    subscribe(server, store, subscriber, server.url + "/feeds/all.rss")
    # Far enough ahead that a loaded machine still indexes it before its time.
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    (corpus / "later.md").write_text(
        robots("Robots later", due.strftime("%Y-%m-%dT%H:%M:%SZ"), "later")
    )
    wait_for(lambda: server.get("/healthz").json(), lambda health: health["scheduled"] == 1)
    asked = datetime.now(UTC)
    assert "Robots later" not in body(server, "/feeds/all.rss") or asked >= due
    assert subscriber.posts() == [] or datetime.now(UTC) >= due
    shown = wait_for(lambda: body(server, "/feeds/all.rss"), lambda text: "Robots later" in text)
    assert datetime.now(UTC) >= due
    assert "Robots later" in shown
    wait_for(subscriber.posts, bool)
    assert b"Robots later" in subscriber.posts()[-1].body

"""The real server, started from the Procfile, read by feedparser over HTTP."""

from __future__ import annotations

import json

import feedparser
import pytest
import requests

from tests.support import Server

FEEDS = [
    "/feeds/all",
    "/feeds/topics/ai",
    "/feeds/topics/computer-vision",
    "/feeds/topics/natural-language-processing",
    "/feeds/providers/nypost.com",
    "/feeds/providers/wbur.org",
]
EXPECTED_ENTRIES = {"/feeds/all": 2, "/feeds/topics/ai": 2}


@pytest.mark.parametrize("path", FEEDS)
@pytest.mark.parametrize("extension", ["rss", "atom"])
def test_every_xml_feed_parses_cleanly(seeds_server: Server, path: str, extension: str) -> None:
    response = seeds_server.get(f"{path}.{extension}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert response.headers["ETag"].startswith('"')
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == EXPECTED_ENTRIES.get(path, 1)
    self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
    assert self_links == [f"{seeds_server.url}{path}.{extension}"]
    for entry in parsed.entries:
        assert entry.id.startswith("urn:uuid:")
        assert entry.link.startswith("https://")
        assert entry.published_parsed is not None
    dates = [entry.published_parsed for entry in parsed.entries]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize("path", FEEDS)
def test_every_json_feed_is_json_feed_1_1(seeds_server: Server, path: str) -> None:
    response = seeds_server.get(f"{path}.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/feed+json; charset=utf-8"
    feed = response.json()
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == f"{seeds_server.url}{path}.json"
    assert len(feed["items"]) == EXPECTED_ENTRIES.get(path, 1)


def test_enclosures_over_http(seeds_server: Server) -> None:
    parsed = feedparser.parse(seeds_server.get("/feeds/providers/wbur.org.rss").content)
    (enclosure,) = parsed.entries[0].enclosures
    assert enclosure.type == "image/jpeg"
    assert enclosure.length == "0"


def test_unknown_feeds_and_bad_limits(seeds_server: Server) -> None:
    assert seeds_server.get("/feeds/topics/no-such-topic.rss").status_code == 404
    assert seeds_server.get("/feeds/providers/nobody.example.atom").status_code == 404
    assert seeds_server.get("/feeds/all.xml").status_code == 404
    for limit in ("0", "-1", "abc", "501", "1e3", ""):
        response = seeds_server.get(f"/feeds/all.rss?limit={limit}")
        assert response.status_code == 400, limit
        assert "limit must be a whole number from 1 to 500" in response.text
    assert seeds_server.get("/feeds/all.rss?limit=1&limit=2").status_code == 400
    one = feedparser.parse(seeds_server.get("/feeds/all.atom?limit=1").content)
    assert len(one.entries) == 1


def test_secured_token_is_never_served(seeds_server: Server) -> None:
    tokens = ["njUqCxDE3FyG8oy9DZUnnKDov84", "LjWhif2l+SesIgpNJXjSMGEd"]
    for path in FEEDS:
        for extension in ("rss", "atom", "json"):
            body = seeds_server.get(f"{path}.{extension}").text
            assert not any(token in body for token in tokens)
    health = seeds_server.get("/healthz")
    assert not any(token in health.text for token in tokens)
    assert not any(token in seeds_server.log() for token in tokens)


def test_healthz_reports_the_load(seeds_server: Server) -> None:
    health = seeds_server.get("/healthz").json()
    assert health["loaded"] == 2
    assert health["skipped"] == 0
    assert len(health["corpus_version"]) == 64


def test_same_bytes_after_a_restart(server_factory) -> None:
    first = server_factory()
    before = {p: first.get(p + ".atom").content for p in FEEDS}
    first.stop()
    second = server_factory()
    after = {p: requests.get(second.url + p + ".atom", timeout=10).content for p in FEEDS}
    # The origin differs (another port), so compare with the origin removed.
    for path in FEEDS:
        assert before[path].replace(first.url.encode(), b"") == after[path].replace(
            second.url.encode(), b""
        ), path


def test_broken_documents_do_not_stop_the_server(server_factory, corpus) -> None:
    (corpus / "broken.txt").write_text("---\ntitle: [oops\n---\n")
    (corpus / "empty.md").write_text("")
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus))
    health = server.get("/healthz").json()
    assert (health["loaded"], health["skipped"]) == (2, 2)
    assert "skipped broken.txt: malformed YAML" in server.log()
    assert len(json.loads(server.get("/feeds/all.json").content)["items"]) == 2

"""`/feeds.opml`: every feed, grouped, each outline a working feed URL."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest
from flask.testing import FlaskClient

from feeds.publish import listing
from feeds.render import opml
from tests.support import CLIENT_ORIGIN, document, index_view
from tests.test_pages import HOSTILE_PROVIDER, HOSTILE_TITLE_TEXT, HOSTILE_TOPIC, listed_feeds


def outlines(body: bytes) -> dict[str, list[ElementTree.Element]]:
    root = ElementTree.fromstring(body)
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    return {group.get("text"): list(group) for group in root.find("body")}


@pytest.mark.parametrize("extension", ["rss", "atom", "json"])
def test_every_outline_is_a_feed_that_answers(seeds_client: FlaskClient, extension: str) -> None:
    query = "" if extension == "rss" else f"?format={extension}"
    response = seeds_client.get(f"/feeds.opml{query}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/x-opml; charset=utf-8"
    assert response.headers["Last-Modified"] == "Wed, 15 Dec 2021 18:10:00 GMT"
    groups = outlines(response.data)
    assert list(groups) == ["All", "Topics", "Providers"]
    urls = [outline.get("xmlUrl") for group in groups.values() for outline in group]
    expected = [url for url in listed_feeds(CLIENT_ORIGIN) if url.endswith(f".{extension}")]
    assert sorted(urls) == sorted(expected)
    assert [o.get("text") for o in groups["Topics"]] == [
        "AI",
        "Computer Vision",
        "Natural Language Processing",
    ]
    for group in groups.values():
        for outline in group:
            assert outline.get("type") == "rss"
            assert seeds_client.get(outline.get("xmlUrl")).status_code == 200
            assert seeds_client.get(outline.get("htmlUrl")).status_code == 200


def test_opml_is_cached_compressed_and_cors_readable(seeds_client: FlaskClient) -> None:
    headers = {"Accept-Encoding": "gzip"}
    first = seeds_client.get("/feeds.opml", headers=headers)
    assert first.headers["Content-Encoding"] == "gzip"
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert outlines(gzip.decompress(first.data))["All"][0].get("text") == "All articles"
    again = seeds_client.get(
        "/feeds.opml", headers={**headers, "If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304


def test_bad_format_is_a_400(seeds_client: FlaskClient) -> None:
    response = seeds_client.get("/feeds.opml?format=xml")
    assert response.status_code == 400
    assert response.text.startswith("400 Bad Request: format must be one of rss, atom, json")


def test_opml_build_escapes_and_sorts(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for day, (title, provider, topic) in enumerate(
        [("b", "zeta", "alpha"), (HOSTILE_TITLE_TEXT, HOSTILE_PROVIDER, HOSTILE_TOPIC)], start=1
    ):
        (corpus / f"{day}.txt").write_text(
            document(
                title=json.dumps(title),
                webUrl=f'"https://example.com/{day}"',
                provider="\n  name: " + json.dumps(provider),
                topics="\n  - " + json.dumps(topic),
                publishedDateTime=f"2024-01-0{day}T00:00:00Z",
            )
        )
    catalog = index_view(corpus, tmp_path / "data")
    feeds = listing.listings(catalog, "Site & <co>", "about")
    body = opml.build(
        feeds, "https://x.example", "rss", "T & <t>", datetime(2024, 1, 2, tzinfo=UTC)
    )
    root = ElementTree.fromstring(body)
    assert root.findtext("head/title") == "T & <t>"
    assert root.findtext("head/dateModified") == "Tue, 02 Jan 2024 00:00:00 GMT"
    groups = outlines(body)
    assert [o.get("text") for o in groups["Topics"]] == [HOSTILE_TOPIC, "alpha"]
    assert [o.get("text") for o in groups["Providers"]] == [HOSTILE_PROVIDER, "zeta"]
    assert b"<img" not in body and b"<b " not in body

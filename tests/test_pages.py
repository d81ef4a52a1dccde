"""The directory, topic and provider pages and the feed stylesheet, through the app's whole
WSGI stack (Flask's test client)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from flask.testing import FlaskClient
from lxml import etree, html

from feeds.app import create_app
from tests.support import CLIENT_ORIGIN, decoded, document

FEED_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
# Tags are stripped when the corpus is loaded; what survives must still be escaped.
HOSTILE_TITLE = '<script>alert(1)</script>Tom & "Jerry" <img src=x onerror=alert(1) //'
HOSTILE_TITLE_TEXT = 'alert(1) Tom & "Jerry" <img src=x onerror=alert(1) //'
HOSTILE_PROVIDER = '"><img src=x onerror=alert(2) x'
HOSTILE_TOPIC = "<b onmouseover=alert(3) & co"


def listed_feeds(base_url: str, **env: str) -> list[str]:
    """`feeds list`: every feed URL the server has, in every format."""
    command = [str(Path(sys.executable).with_name("feeds")), "list"]
    environ = {**os.environ, "FEEDS_BASE_URL": base_url, **env}
    output = subprocess.run(command, env=environ, capture_output=True, text=True, check=True)
    return output.stdout.split()


def page(client: FlaskClient, path: str) -> html.HtmlElement:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    return html.fromstring(response.data)


def autodiscovery(tree: html.HtmlElement) -> dict[str, str]:
    return {
        link.get("type"): link.get("href") for link in tree.xpath("//head/link[@rel='alternate']")
    }


def test_directory_links_every_feed(seeds_client: FlaskClient) -> None:
    tree = page(seeds_client, "/")
    expected = listed_feeds(CLIENT_ORIGIN)
    hrefs = {a.get("href") for a in tree.xpath("//main//a")}
    assert {href for href in hrefs if "/feeds/" in href and "opml" not in href} == set(expected)
    copyable = tree.xpath("//code[@class='copy']/text()")
    assert set(copyable) == {url for url in expected if url.endswith(".rss")}
    pages = {href for href in hrefs if href.startswith(("/topics/", "/providers/"))}
    assert len(pages) == len(expected) // 3 - 1  # every feed but "all" has its own page
    for path in pages:
        assert seeds_client.get(path).status_code == 200, path


def test_directory_autodiscovery_is_the_all_content_feed(seeds_client: FlaskClient) -> None:
    found = autodiscovery(page(seeds_client, "/"))
    assert found == {
        **{kind: f"{CLIENT_ORIGIN}/feeds/all.{ext}" for ext, kind in FEED_TYPES.items()},
        "text/x-opml": f"{CLIENT_ORIGIN}/feeds.opml",
    }
    for href in found.values():
        assert seeds_client.get(href).status_code == 200, href


def test_directory_groups_and_counts(seeds_client: FlaskClient) -> None:
    tree = page(seeds_client, "/")
    letters = tree.xpath("//section[@id='topics']//nav[@class='letters']/a")
    assert [a.text for a in letters] == ["A", "C", "N"]
    ai = tree.xpath("//a[@href='/topics/ai']/following-sibling::span[@class='meta']")[0]
    assert ai.text_content().startswith("2 articles · newest 15 Dec 2021")


def test_filter_narrows_the_lists(seeds_client: FlaskClient) -> None:
    tree = page(seeds_client, "/?q=VISION")
    names = tree.xpath("//li[@class='feed']//a[@class='name']/text()")
    assert names == ["Computer Vision"]
    assert tree.xpath("//input[@name='q']/@value") == ["VISION"]
    assert "No providers match" in page(seeds_client, "/?q=vision").text_content()
    assert len(page(seeds_client, "/?q=").xpath("//li[@class='feed']")) == 5


@pytest.mark.parametrize(
    ("path", "feed", "titles"),
    [
        ("/topics/ai", "/feeds/topics/ai", 2),
        ("/providers/wbur.org", "/feeds/providers/wbur.org", 1),
    ],
)
def test_feed_pages_show_their_entries(
    seeds_client: FlaskClient, path: str, feed: str, titles: int
) -> None:
    tree = page(seeds_client, path)
    assert autodiscovery(tree) == {
        **{kind: f"{CLIENT_ORIGIN}{feed}.{ext}" for ext, kind in FEED_TYPES.items()},
        "text/x-opml": f"{CLIENT_ORIGIN}/feeds.opml",
    }
    entries = feedparser.parse(seeds_client.get(f"{feed}.rss").data).entries
    shown = tree.xpath("//li[@class='entry']//h2/a")
    assert len(shown) == titles
    assert [(a.text, a.get("href")) for a in shown] == [(e.title, e.link) for e in entries]
    items = json.loads(decoded(seeds_client.get(f"{feed}.json")))["items"]
    dates = tree.xpath("//li[@class='entry']//time/@datetime")
    assert dates == [item["date_published"] for item in items]  # RFC 3339, as the feeds say


def test_page_image_has_its_size(seeds_client: FlaskClient) -> None:
    (image,) = page(seeds_client, "/providers/wbur.org").xpath("//img[@class='thumb']")
    assert image.get("width") and image.get("height")
    assert image.get("src").startswith("https://")


def test_unknown_pages_are_plain_404s(seeds_client: FlaskClient) -> None:
    for path in ("/topics/no-such-topic", "/providers/nobody.example", "/topics/"):
        response = seeds_client.get(path)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_pages_are_cached_like_feeds(seeds_client: FlaskClient) -> None:
    gzip = {"Accept-Encoding": "gzip"}
    first = seeds_client.get("/topics/ai", headers=gzip)
    assert first.headers["Content-Encoding"] == "gzip"
    again = seeds_client.get("/topics/ai", headers={**gzip, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert first.headers["Last-Modified"] == "Wed, 15 Dec 2021 18:10:00 GMT"


@pytest.mark.parametrize("extension", ["rss", "atom"])
def test_xml_feeds_carry_the_stylesheet_instruction(
    seeds_client: FlaskClient, extension: str
) -> None:
    lines = seeds_client.get(f"/feeds/all.{extension}").data.splitlines()
    assert lines[0].startswith(b"<?xml version=")
    assert lines[1] == b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>'


@pytest.mark.parametrize("extension", ["rss", "atom"])
def test_stylesheet_renders_the_feed(seeds_client: FlaskClient, extension: str) -> None:
    response = seeds_client.get("/feed.xsl")
    assert response.headers["Content-Type"] == "text/xsl; charset=utf-8"
    assert "max-age=" in response.headers["Cache-Control"]
    transform = etree.XSLT(etree.fromstring(response.data))
    feed = seeds_client.get(f"/feeds/topics/ai.{extension}").data
    result = html.fromstring(str(transform(etree.fromstring(feed))))
    expected = [entry.title for entry in feedparser.parse(feed).entries]
    assert result.xpath("//li[@class='entry']//h2/a/text()") == expected
    assert result.xpath("//code[@class='copy']/text()") == [
        f"{CLIENT_ORIGIN}/feeds/topics/ai.{extension}"
    ]
    assert result.xpath("//h1/text()") == ["AI · feeds"]
    dates = result.xpath("//li[@class='entry']//p[@class='meta']/text()")
    assert dates == ["15 Dec 2021 · New York Post", "25 Jun 2020 · WBUR"]
    sizes = result.xpath("//img[@class='thumb']/@width")
    assert sizes and all(size.isdigit() for size in sizes)
    assert seeds_client.get("/feeds.css").headers["Content-Type"] == "text/css; charset=utf-8"


@pytest.fixture
def hostile_client(corpus: Path) -> FlaskClient:
    (corpus / "hostile.md").write_text(
        document(
            title=f"'{HOSTILE_TITLE}'",
            excerpt="'<script>x()</script>1 < 2 & 3 > 2'",
            webUrl='"https://evil.example/a?x=1&y=2"',
            provider=f"\n  name: '{HOSTILE_PROVIDER}'\n  domain: evil.example",
            topics=f"\n  - '{HOSTILE_TOPIC}'",
        )
    )
    return create_app({"CORPUS_DIR": str(corpus)}).test_client()


def assert_inert(body: bytes) -> html.HtmlElement:
    """No element or attribute the hostile text could have created exists."""
    tree = html.fromstring(body)
    assert not tree.xpath("//script | //b | //img[@onerror] | //*[@onmouseover]")
    assert b"<script" not in body and b"<img src=x" not in body
    return tree


def test_hostile_text_is_escaped_on_every_page(hostile_client: FlaskClient) -> None:
    directory = assert_inert(hostile_client.get("/").data)
    assert HOSTILE_PROVIDER in directory.xpath("//a[@class='name']/text()")
    assert HOSTILE_TOPIC in directory.xpath("//a[@class='name']/text()")
    provider_link = directory.xpath(f"//a[text()='{HOSTILE_PROVIDER}']/@href")[0]
    topic_link = directory.xpath(f'//a[text()="{HOSTILE_TOPIC}"]/@href')[0]
    for path in (provider_link, topic_link):
        tree = assert_inert(hostile_client.get(path).data)
        assert tree.xpath("//li[@class='entry']//h2/a/text()") == [HOSTILE_TITLE_TEXT]
        assert tree.xpath("//li[@class='entry']//h2/a/@href") == ["https://evil.example/a?x=1&y=2"]
        titles = {link.get("title") for link in tree.xpath("//head/link[@rel='alternate']")}
        assert any(title.startswith(HOSTILE_PROVIDER) or HOSTILE_TOPIC in title for title in titles)
    filtered = assert_inert(hostile_client.get("/", query_string={"q": '"><script>'}).data)
    assert filtered.xpath("//input[@name='q']/@value") == ['"><script>']

"""What the renderers write: read back by feedparser and lxml, byte for byte stable."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from feeds.app import create_app
from tests.support import SEEDS, document

ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
ORIGIN = "https://feeds.example.org"


def client(corpus: Path = SEEDS, **settings: object):
    app = create_app({"CORPUS_DIR": str(corpus), "BASE_URL": ORIGIN, **settings})
    return app.test_client()


def test_two_loads_render_identical_bytes() -> None:
    first, second = client(), client()
    for path in (
        "/feeds/all.rss",
        "/feeds/all.atom",
        "/feeds/all.json",
        "/feeds/topics/ai.rss",
        "/feeds/providers/wbur.org.atom",
    ):
        one, two = first.get(path), second.get(path)
        assert one.status_code == 200
        assert one.data == two.data, path
        assert one.headers["ETag"] == two.headers["ETag"]


@pytest.mark.parametrize("extension", ["rss", "atom"])
def test_feedparser_reads_every_format_with_enclosures(extension: str) -> None:
    response = client().get(f"/feeds/all.{extension}")
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert [e.title for e in parsed.entries] == [
        "Worcester bans city use of facial recognition technology",
        "Boston Bans Use Of Facial Recognition Technology. It's The 2nd-Largest City To Do So",
    ]
    worcester, boston = parsed.entries
    assert worcester.link.startswith("https://nypost.com/2021/12/15/")
    assert worcester.id.startswith("urn:uuid:")
    assert worcester.published_parsed[:5] == (2021, 12, 15, 18, 10)
    assert [t.term for t in worcester.tags] == ["Computer Vision", "AI", "news"]
    assert worcester.enclosures == []
    (enclosure,) = boston.enclosures
    assert enclosure.href.endswith("GettyImages-1199025045.jpg")
    assert enclosure.type == "image/jpeg"
    assert boston.media_content[0]["width"] == "3000"
    assert parsed.feed.updated_parsed[:5] == (2021, 12, 15, 18, 10)


def test_atom_enclosure_is_an_enclosure_link_not_a_second_alternate() -> None:
    root = etree.fromstring(client().get("/feeds/all.atom").data)
    boston = root.findall(f"{ATOM}entry")[1]
    links = [
        (link.get("rel"), link.get("type"), link.get("length"))
        for link in boston.findall(f"{ATOM}link")
    ]
    assert links == [("alternate", "text/html", None), ("enclosure", "image/jpeg", "0")]
    media = boston.find(f"{MEDIA}content")
    assert media.get("medium") == "image"
    assert media.find(f"{MEDIA}title").text.startswith("Boston Bans")


def test_rss_channel_links_and_dates_come_from_the_data() -> None:
    body = client().get("/feeds/topics/ai.rss").data
    assert b'length="None"' not in body
    channel = etree.fromstring(body).find("channel")
    assert channel.findtext("link") == f"{ORIGIN}/topics/ai"
    assert channel.find(f"{ATOM}link").get("href") == f"{ORIGIN}/feeds/topics/ai.rss"
    assert channel.findtext("lastBuildDate") == "Wed, 15 Dec 2021 18:10:00 +0000"
    assert channel.findtext("ttl") == "5"
    assert channel.findtext("title") == "AI · feeds"


def test_json_feed_shape() -> None:
    feed = json.loads(client().get("/feeds/providers/wbur.org.json").data)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == f"{ORIGIN}/feeds/providers/wbur.org.json"
    assert feed["home_page_url"] == f"{ORIGIN}/providers/wbur.org"
    (item,) = feed["items"]
    assert item["id"].startswith("urn:uuid:")
    assert item["date_published"] == "2020-06-25T10:31:00Z"
    assert item["authors"] == [{"name": "WBUR", "url": "https://wbur.org/"}]
    assert item["image"].endswith(".jpg")
    assert item["attachments"][0]["mime_type"] == "image/jpeg"
    assert "secured" not in json.dumps(feed)


def test_ids_agree_across_formats() -> None:
    c = client()
    rss = feedparser.parse(c.get("/feeds/all.rss").data)
    atom = feedparser.parse(c.get("/feeds/all.atom").data)
    items = json.loads(c.get("/feeds/all.json").data)["items"]
    assert [e.id for e in rss.entries] == [e.id for e in atom.entries] == [i["id"] for i in items]


def test_limit_and_text_that_xml_cannot_carry(tmp_path: Path) -> None:
    for day in range(1, 8):
        (tmp_path / f"{day}.txt").write_text(
            document(
                title=f'"Day {day} \\x0b\\x1b control <script>x</script>"',
                publishedDateTime=f"2022-01-0{day}T00:00:00Z",
                webUrl=f'"https://example.com/{day}"',
            )
        )
    c = client(tmp_path)
    parsed = feedparser.parse(c.get("/feeds/all.atom?limit=3").data)
    assert parsed.bozo == 0
    assert [e.title for e in parsed.entries] == [f"Day {day} control x" for day in (7, 6, 5)]
    assert len(feedparser.parse(c.get("/feeds/all.rss").data).entries) == 7

"""RFC 5005 archives: walking prev-archive from a current feed collects its full history."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from feeds.app import create_app
from tests.support import document

ORIGIN = "https://feeds.example.org"
FH = "{http://purl.org/syndication/history/1.0}archive"


def write_articles(root: Path, start: int, count: int) -> None:
    for index in range(start, start + count):
        topics = "\n  - Robots" if index % 3 else "\n  - Robots\n  - Rare"
        domain = "even.example" if index % 2 == 0 else "odd.example"
        (root / f"{index:04d}.txt").write_text(
            document(
                title=f'"Article {index}"',
                publishedDateTime=f"{2000 + index // 12}-{1 + index % 12:02d}-15T12:00:00Z",
                webUrl=f'"https://{domain}/{index}"',
                topics=topics,
                provider=f"\n  name: {domain}\n  domain: {domain}",
            )
        )


def client(root: Path):
    return create_app(
        {"CORPUS_DIR": str(root), "BASE_URL": ORIGIN, "DEFAULT_ITEMS": 30, "ARCHIVE_PAGE_SIZE": 20}
    ).test_client()


def path_of(url: str) -> str:
    assert url.startswith(ORIGIN), url
    return url.removeprefix(ORIGIN)


def walk_xml(c, path: str) -> tuple[list[str], list[str]]:
    """Ids in the current document, and ids in every archive page reached by prev-archive."""
    parsed = feedparser.parse(c.get(path).data)
    current = [entry.id for entry in parsed.entries]
    archived: list[str] = []
    links = {link.rel: link.href for link in parsed.feed.links}
    seen_pages = set()
    while "prev-archive" in links:
        page = path_of(links["prev-archive"])
        assert page not in seen_pages
        seen_pages.add(page)
        response = c.get(page)
        assert response.status_code == 200
        assert etree.fromstring(response.data).find(f".//{FH}") is not None
        parsed = feedparser.parse(response.data)
        assert parsed.bozo == 0
        links = {link.rel: link.href for link in parsed.feed.links}
        assert path_of(links["current"]) == path
        archived.extend(entry.id for entry in parsed.entries)
    return current, archived


def expected_ids(c, kind_path: str) -> set[str]:
    """Every article the feed holds, read from the biggest current document we can ask for."""
    feed = json.loads(c.get(f"{kind_path}.json?limit=500").data)
    return {item["id"] for item in feed["items"]}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    write_articles(tmp_path, 0, 135)
    return tmp_path


@pytest.mark.parametrize(
    "feed",
    ["/feeds/all", "/feeds/topics/robots", "/feeds/topics/rare", "/feeds/providers/odd.example"],
)
@pytest.mark.parametrize("extension", ["rss", "atom"])
def test_walking_prev_archive_collects_everything_once(
    corpus: Path, feed: str, extension: str
) -> None:
    c = client(corpus)
    current, archived = walk_xml(c, f"{feed}.{extension}")
    assert len(archived) == len(set(archived)), "an article is in two archive pages"
    assert set(current) | set(archived) == expected_ids(c, feed)


def test_json_feed_pages_with_next_url(corpus: Path) -> None:
    c = client(corpus)
    feed = json.loads(c.get("/feeds/all.json").data)
    ids = [item["id"] for item in feed["items"]]
    while "next_url" in feed:
        feed = json.loads(c.get(path_of(feed["next_url"])).data)
        ids.extend(item["id"] for item in feed["items"])
    assert set(ids) == expected_ids(c, "/feeds/all")
    assert len(ids) - len(set(ids)) <= 30  # only the current document overlaps


def test_pages_are_fixed_size_oldest_first_and_sealed(corpus: Path) -> None:
    c = client(corpus)
    first = c.get("/feeds/all/archive/1.atom")
    oldest = feedparser.parse(first.data).entries
    assert len(oldest) == 20
    newest_page = c.get("/feeds/all/archive/6.atom")  # (135 - 1) // 20 == 6 sealed pages
    assert newest_page.status_code == 200
    assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # The newest page links forward to the current document until a newer page exists.
    assert "immutable" not in newest_page.headers["Cache-Control"]
    assert "Last-Modified" not in newest_page.headers  # its ETag alone: see the test below
    assert c.get("/feeds/all/archive/7.atom").status_code == 404
    assert c.get("/feeds/all/archive/0.atom").status_code == 404
    assert c.get("/feeds/all/archive/1.atom?limit=5").status_code == 400
    links = {link.rel for link in feedparser.parse(first.data).feed.links}
    assert {"self", "current", "next-archive"} <= links and "prev-archive" not in links


def write_article(root: Path, name: str, title: str, published: str) -> None:
    (root / f"{name}.txt").write_text(
        document(
            title=f'"{title}"', publishedDateTime=published, webUrl=f'"https://x.example/{name}"'
        )
    )


def page_bytes(c, pages: range) -> dict[int, bytes]:
    return {n: c.get(f"/feeds/all/archive/{n}.rss").data for n in pages}


def entry_ids(data: bytes) -> list[str]:
    return [entry.id for entry in feedparser.parse(data).entries]


def test_a_new_article_changes_no_archive_page_but_the_newest(tmp_path: Path) -> None:
    write_articles(tmp_path, 0, 58)  # two sealed pages and 18 open entries
    pages = page_bytes(client(tmp_path), range(1, 3))
    write_articles(tmp_path, 200, 2)  # 20 open entries: still one page's worth
    after = client(tmp_path)
    assert page_bytes(after, range(1, 3)) == pages
    assert after.get("/feeds/all/archive/3.rss").status_code == 404
    write_articles(tmp_path, 202, 1)  # the 21st open entry seals page 3
    later = client(tmp_path)
    assert later.get("/feeds/all/archive/1.rss").data == pages[1]
    newest_before = feedparser.parse(pages[2])
    newest_now = feedparser.parse(later.get("/feeds/all/archive/2.rss").data)
    assert [e.id for e in newest_now.entries] == [e.id for e in newest_before.entries]
    before_links = {link.rel: link.href for link in newest_before.feed.links}
    now_links = {link.rel: link.href for link in newest_now.feed.links}
    assert before_links["next-archive"] == f"{ORIGIN}/feeds/all.rss"
    assert now_links == {**before_links, "next-archive": f"{ORIGIN}/feeds/all/archive/3.rss"}
    assert later.get("/feeds/all/archive/3.rss").status_code == 200
    assert "immutable" in later.get("/feeds/all/archive/2.rss").headers["Cache-Control"]


@pytest.mark.parametrize("extension", ["rss", "atom"])  # a JSON page links no newer page
def test_a_reader_revalidating_the_newest_page_gets_its_new_link(
    tmp_path: Path, extension: str
) -> None:
    """The newest page's bytes change when the next page is sealed: no validator it was
    served with (If-Modified-Since alone, as libcurl's time condition sends) may keep the
    old bytes, and once final the page's Last-Modified is its seal time, as page 1's."""
    write_articles(tmp_path, 0, 58)
    newest = client(tmp_path).get(f"/feeds/all/archive/2.{extension}")
    given = {"Last-Modified": "If-Modified-Since", "ETag": "If-None-Match"}
    validators = [
        {asked: newest.headers[served]}
        for served, asked in given.items()
        if served in newest.headers
    ]
    write_articles(tmp_path, 200, 3)  # the 21st open entry seals page 3
    later = client(tmp_path)
    for headers in validators:
        again = later.get(f"/feeds/all/archive/2.{extension}", headers=headers)
        assert again.status_code == 200, headers
        assert f"/feeds/all/archive/3.{extension}" in again.get_data(as_text=True)
    final = later.get(f"/feeds/all/archive/2.{extension}")
    assert "immutable" in final.headers["Cache-Control"]
    oldest = later.get(f"/feeds/all/archive/1.{extension}")
    assert final.headers["Last-Modified"] == oldest.headers["Last-Modified"]
    assert (
        later.get(
            f"/feeds/all/archive/2.{extension}",
            headers={"If-Modified-Since": final.headers["Last-Modified"]},
        ).status_code
        == 304
    )


def test_a_backdated_article_surfaces_in_the_current_document_then_seals_in_turn(
    tmp_path: Path,
) -> None:
    write_articles(tmp_path, 0, 58)
    pages = page_bytes(client(tmp_path), range(1, 3))
    write_article(tmp_path, "late", "Late article", "1999-01-01T00:00:00Z")
    c = client(tmp_path)
    assert page_bytes(c, range(1, 3)) == pages  # sealed pages never take a late article
    late = next(
        e.id
        for e in feedparser.parse(c.get("/feeds/all.rss").data).entries
        if e.title == "Late article"
    )
    current, archived = walk_xml(c, "/feeds/all.rss")
    assert late in current and late not in archived
    assert set(current) | set(archived) == expected_ids(c, "/feeds/all")
    write_articles(tmp_path, 300, 2)  # 21 open entries: the oldest 20 are sealed
    later = client(tmp_path)
    assert page_bytes(later, range(1, 2)) == {1: pages[1]}
    assert late in entry_ids(later.get("/feeds/all/archive/3.rss").data)
    current, archived = walk_xml(later, "/feeds/all.rss")
    assert len(archived) == len(set(archived))
    assert set(current) | set(archived) == expected_ids(later, "/feeds/all")


def test_an_edit_or_removal_leaves_sealed_pages_as_they_were(tmp_path: Path) -> None:
    write_articles(tmp_path, 0, 58)
    first = client(tmp_path).get("/feeds/all/archive/1.atom")
    sealed = feedparser.parse(first.data).entries
    edited, removed = sealed[0], sealed[1]
    path = tmp_path / "0000.txt"
    assert sealed[-1].title == "Article 0"  # the oldest article is on page 1
    path.write_text(path.read_text().replace('"Article 0"', '"Article 0, corrected"'))
    os.utime(path, (time.time(), time.time()))
    (tmp_path / f"{int(removed.title.split()[-1]):04d}.txt").unlink()
    c = client(tmp_path)
    again = c.get("/feeds/all/archive/1.atom")
    assert again.data == first.data
    assert again.headers["Last-Modified"] == first.headers["Last-Modified"]
    current = feedparser.parse(c.get("/feeds/all.atom").data).entries
    corrected = next(e for e in current if e.id == sealed[-1].id)
    assert corrected.title == "Article 0, corrected"
    assert corrected.updated_parsed > corrected.published_parsed  # the edit's time
    feed = json.loads(c.get("/feeds/all.json?limit=500").data)
    item = next(i for i in feed["items"] if i["id"] == sealed[-1].id)
    assert item["date_modified"] > item["date_published"]
    assert removed.id not in {i["id"] for i in feed["items"]}
    assert edited.id in {i["id"] for i in feed["items"]}


def test_short_limits_do_not_lead_into_the_archives(corpus: Path) -> None:
    c = client(corpus)
    full = feedparser.parse(c.get("/feeds/all.atom").data)
    assert "prev-archive" in {link.rel for link in full.feed.links}
    short = feedparser.parse(c.get("/feeds/all.atom?limit=5").data)  # 15 are unarchived
    assert "prev-archive" not in {link.rel for link in short.feed.links}


def test_current_feeds_advertise_the_hub(corpus: Path) -> None:
    c = client(corpus)
    response = c.get("/feeds/topics/robots.rss")
    assert f'<{ORIGIN}/websub>; rel="hub"' in response.headers["Link"]
    assert f'<{ORIGIN}/feeds/topics/robots.rss>; rel="self"' in response.headers["Link"]
    links = {link.rel: link.href for link in feedparser.parse(response.data).feed.links}
    assert links["hub"] == f"{ORIGIN}/websub"
    assert json.loads(c.get("/feeds/all.json").data)["hubs"] == [
        {"type": "WebSub", "url": f"{ORIGIN}/websub"}
    ]

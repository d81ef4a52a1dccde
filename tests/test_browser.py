"""Headless Chromium against the real server: pages render, and feeds render through the XSLT."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import feedparser
import pytest
from lxml import html

from tests.support import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs it)")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Article images live on other hosts: resolve nothing but loopback.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def rendered_dom(url: str, *flags: str) -> html.HtmlElement:
    """The DOM Chromium built, after running the page's XSLT if it has one."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, *FLAGS, *flags, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            timeout=90,
            check=True,
        )
    return html.fromstring(result.stdout)


def entry_titles(server: Server, feed_path: str) -> list[str]:
    return [entry.title for entry in feedparser.parse(server.get(feed_path).content).entries]


def test_directory_renders(seeds_server: Server) -> None:
    dom = rendered_dom(seeds_server.url + "/")
    names = dom.xpath("//li[@class='feed']//a[@class='name']/text()")
    assert names == [
        "AI",
        "Computer Vision",
        "Natural Language Processing",
        "New York Post",
        "WBUR",
    ]
    assert dom.xpath("//code[@class='copy']/text()")[0] == f"{seeds_server.url}/feeds/all.rss"


def test_topic_page_renders(seeds_server: Server) -> None:
    dom = rendered_dom(seeds_server.url + "/topics/ai")
    shown = dom.xpath("//li[@class='entry']//h2/a/text()")
    assert shown == entry_titles(seeds_server, "/feeds/topics/ai.rss")


@pytest.mark.parametrize("extension", ["rss", "atom"])
def test_feed_is_shown_through_the_stylesheet(seeds_server: Server, extension: str) -> None:
    dom = rendered_dom(f"{seeds_server.url}/feeds/all.{extension}")
    # Only the XSLT makes these elements: without it Chromium shows the raw XML tree.
    assert dom.xpath("//div[@class='subscribe']//code/text()") == [
        f"{seeds_server.url}/feeds/all.{extension}"
    ]
    shown = dom.xpath("//li[@class='entry']//h2/a/text()")
    assert shown == entry_titles(seeds_server, f"/feeds/all.{extension}")
    assert dom.xpath("//head/link[@rel='stylesheet']/@href") == ["/feeds.css"]


@pytest.mark.parametrize("path", ["/feeds/all.rss", "/feeds/topics/ai.atom"])
def test_feed_is_readable_text_once_browsers_drop_xslt(seeds_server: Server, path: str) -> None:
    """Without XSLT, Chromium shows application/xml as its XML tree: text, not a download."""
    dom = rendered_dom(seeds_server.url + path, "--disable-features=XSLT")
    assert dom.xpath("//style[@id='xml-viewer-style']")
    text = dom.text_content()
    for title in entry_titles(seeds_server, path):
        assert title in text


def test_the_builder_form_lands_on_a_preview_of_the_custom_feed(
    seeds_server: Server, tmp_path: Path
) -> None:
    """Chromium submits the directory's own form (as Chromium parsed it) with choices made."""
    dom = rendered_dom(seeds_server.url + "/")
    (form,) = dom.xpath("//form[@id='custom']")
    assert form.get("method") == "get" and not dom.xpath("//script")
    form.xpath(".//select[@name='topic']/option[@value='ai']")[0].set("selected", "selected")
    form.xpath(".//select[@name='exclude_provider']/option[@value='nypost.com']")[0].set(
        "selected", "selected"
    )
    form.xpath(".//input[@name='q']")[0].set("value", "Facial  Recognition")
    # Only this test page has a script: it presses the form's submit button.
    page = tmp_path / "submit.html"
    page.write_text(
        f'<!doctype html><base href="{seeds_server.url}/">{html.tostring(form).decode()}'
        "<script>document.querySelector('#custom button').click()</script>"
    )
    preview = rendered_dom(page.as_uri(), "--virtual-time-budget=5000")
    canonical = f"{seeds_server.url}/feeds/custom.rss?topic=ai&exclude_provider=nypost.com"
    assert preview.xpath("//code[@class='copy']/text()") == [canonical + "&q=facial%20recognition"]
    shown = preview.xpath("//li[@class='entry']//h2/a/text()")
    assert shown == entry_titles(
        seeds_server,
        "/feeds/custom.rss?topic=ai&exclude_provider=nypost.com&q=facial%20recognition",
    )
    assert len(shown) == 1
    discovered = preview.xpath("//head/link[@rel='alternate']/@href")
    assert canonical + "&q=facial%20recognition" in discovered

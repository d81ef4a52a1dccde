"""Provider slugs come from domains or from names; the two kinds never meet."""

from __future__ import annotations

from pathlib import Path

from feeds.corpus.normalize import FEED_EXTENSIONS, domain_name
from feeds.render import FORMATS
from tests.support import document


def titles(feed: dict) -> list[str]:
    return [item["title"] for item in feed["items"]]


def test_a_name_and_a_dotless_domain_get_different_feeds(server_factory, corpus: Path) -> None:
    """`Lonely Press` and a provider whose domain is `lonely-press` once shared one feed."""
    (corpus / "named.md").write_text(
        document(
            title='"From the press by name"',
            webUrl='"https://lonely.example/named"',
            provider="\n  name: Lonely Press",
        )
    )
    (corpus / "domained.md").write_text(
        document(
            title='"From the press by domain"',
            webUrl='"https://lonely.example/domained"',
            provider="\n  name: Other Press\n  domain: lonely-press",
        )
    )
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus))
    named = server.get("/feeds/providers/lonely-press.json").json()
    assert titles(named) == ["From the press by name"]
    assert titles(server.get("/feeds/providers/other-press.json").json()) == [
        "From the press by domain"
    ]
    assert server.get("/healthz").json()["repaired"] >= 1
    # Slugs of real domains and of names stay as they were.
    assert server.get("/feeds/providers/nypost.com.rss").status_code == 200
    assert server.get("/feeds/topics/computer-vision.rss").status_code == 200


def test_no_domain_ends_like_a_feed_or_lacks_a_dot() -> None:
    assert set(FORMATS) == FEED_EXTENSIONS
    for extension in FORMATS:
        assert domain_name(f"nypost.com.{extension}") is None
    assert domain_name("lonely-press") is None
    assert domain_name("WWW.NYPost.com.") == "nypost.com"
    assert domain_name("rss.example") == "rss.example"

"""Entry ids survive corrections of an article's link, and links already in normal form keep
the ids they always had."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from feeds.corpus.normalize import identity_url
from tests.support import document, index_view

NORMAL = "https://example.com/news/2022/a-headline/?id=7"
SPELLINGS = [
    NORMAL,
    "https://example.com/news/2022/a-headline?id=7",  # trailing slash removed
    "http://example.com/news/2022/a-headline/?id=7",  # http
    "https://Example.COM/news/2022/a-headline/?id=7",  # case in the host
    "https://example.com:443/news/2022/a-headline/?id=7",  # default port
    "https://example.com/news/2022/a-headline/?utm_source=rss&id=7&utm_medium=feed",
    "https://example.com/news/2022/a-headline/?id=7&fbclid=abc",
    "https://example.com/news/2022/a-headline/?id=7#comments",
    "HTTP://EXAMPLE.com:80/news/2022/a-headline?utm_campaign=x&id=7#top",  # all at once
]


def test_one_id_through_every_trivial_spelling(tmp_path: Path) -> None:
    """The indexer sees the document's link edited again and again: one article, one id."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    ids = set()
    for spelling in SPELLINGS:
        (corpus / "article.md").write_text(document(webUrl=f'"{spelling}"'))
        (article,) = index_view(corpus, tmp_path / "data").articles
        assert article.link == spelling  # readers are still sent the link as written
        ids.add(article.id)
    assert ids == {uuid.uuid5(uuid.NAMESPACE_URL, NORMAL).urn}


@pytest.mark.parametrize(
    "link",
    [
        NORMAL,
        "https://nypost.com/2021/12/15/worcester-bans-city-use-of-facial-recognition-technology/",
        "https://example.com/",
        "https://example.com/story.html",
        "https://example.com/index.php?p=12&lang=en",
        "https://example.com:8443/a/b/",
        "https://example.com/%7Euser/caf%C3%A9/",
    ],
)
def test_links_in_normal_form_keep_their_ids(link: str) -> None:
    assert identity_url(link) == link


@pytest.mark.parametrize(
    ("link", "normal"),
    [
        ("https://example.com", "https://example.com/"),
        ("https://example.com/story", "https://example.com/story/"),
        ("https://example.com/story.html#x", "https://example.com/story.html"),
        ("https://example.com/a?utm_source=x", "https://example.com/a/"),
        ("https://example.com/a/?q=1&UTM_Medium=y&r=2", "https://example.com/a/?q=1&r=2"),
        ("https://User@EXAMPLE.com:443/a/", "https://User@example.com/a/"),
        ("http://example.com:443/a/", "https://example.com:443/a/"),
    ],
)
def test_corrections_are_normalized(link: str, normal: str) -> None:
    assert identity_url(link) == normal


def test_two_documents_with_two_spellings_are_one_article(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text(document(webUrl=f'"{SPELLINGS[0]}"'))
    (corpus / "b.md").write_text(document(webUrl=f'"{SPELLINGS[-1]}"'))
    assert len(index_view(corpus, tmp_path / "data").articles) == 1

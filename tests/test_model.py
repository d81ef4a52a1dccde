"""Slugs and the catalog's indexes."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds.corpus import LoadOptions, load_corpus
from feeds.model import build_catalog, pack_catalog, packed_articles, slugify
from tests.support import document


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Computer Vision", "computer-vision"),
        ("computer  vision", "computer-vision"),
        ("COMPUTER-VISION", "computer-vision"),
        ("Computer_Vision ", "computer-vision"),
        ("AI", "ai"),
    ],
)
def test_same_topic_any_case_or_spacing_has_one_slug(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_different_topics_never_share_a_slug() -> None:
    names = [
        "C",
        "C++",
        "C#",
        "C/C++",
        "Café",
        "Cafe",
        "R&D",
        "R D",
        "../etc",
        "%2e%2e",
        "ai",
        "a.i.",
        "Ökonomie",
        "oekonomie",
        "日本",
        "中国",
        "x" * 200,
        "x" * 201,
    ]
    slugs = [slugify(name) for name in names]
    assert len(set(slugs)) == len(names), slugs
    for slug in slugs:
        assert slug.isascii() and slug == slug.lower()
        assert all(c.isalnum() or c == "-" for c in slug), slug


def test_slugs_are_stable_across_runs() -> None:
    assert slugify("C++") == "c--cedb1bac7e"


def test_catalog_indexes_by_topic_and_provider_newest_first(tmp_path: Path) -> None:
    docs = {
        "old": document(
            publishedDateTime="2020-01-01T00:00:00Z",
            webUrl='"https://a.com/old"',
            topics="\n  - Robots\n  - AI",
        ),
        "new": document(
            publishedDateTime="2023-01-01T00:00:00Z",
            webUrl='"https://a.com/new"',
            topics="\n  - ai",
        ),
        "other": document(
            publishedDateTime="2021-01-01T00:00:00Z",
            webUrl='"https://b.org/x"',
            provider="\n  name: B\n  domain: www.B.org",
        ),
    }
    for name, text in docs.items():
        (tmp_path / f"{name}.txt").write_text(text)
    catalog = build_catalog(load_corpus(tmp_path, LoadOptions()).articles, "v1")
    assert [a.link for a in catalog.articles] == [
        "https://a.com/new",
        "https://b.org/x",
        "https://a.com/old",
    ]
    assert [a.link for a in catalog.by_topic["ai"]] == [
        "https://a.com/new",
        "https://b.org/x",
        "https://a.com/old",
    ]
    assert [a.link for a in catalog.by_topic["robots"]] == ["https://a.com/old"]
    assert set(catalog.providers) == {"example.com", "b.org"}
    assert catalog.providers["b.org"].name == "B"
    with pytest.raises(TypeError):
        catalog.topics["new"] = None  # read-only


def test_packed_catalog_reads_like_the_plain_one(tmp_path: Path) -> None:
    for index in range(5):
        topics = "\n  - AI\n  - Robots" if index % 2 else "\n  - AI"
        text = document(
            webUrl=f'"https://a.com/{index}"',
            publishedDateTime=f"2022-03-0{index + 1}T05:06:07.123456Z",
            topics=topics,
        )
        (tmp_path / f"{index}.txt").write_text(text)
    plain = build_catalog(load_corpus(tmp_path, LoadOptions()).articles, "v1")
    blob, offsets, indexes = pack_catalog(plain)
    packed = build_catalog(packed_articles(blob, offsets, indexes), "v1")
    for ours, theirs in [
        (packed.articles, plain.articles),
        (packed.by_topic["robots"], plain.by_topic["robots"]),
        (packed.by_provider["example.com"], plain.by_provider["example.com"]),
    ]:
        assert len(ours) == len(theirs)
        assert tuple(ours) == theirs
        assert ours[0] == theirs[0] and ours[-1] == theirs[-1]
        assert ours[1:3] == theirs[1:3] and isinstance(ours[1:3], tuple)
        assert ours[::-1] == theirs[::-1]
        with pytest.raises(IndexError):
            ours[len(theirs)]
    assert dict(packed.topics) == dict(plain.topics)
    assert dict(packed.providers) == dict(plain.providers)
    assert packed.version == "v1"
    with pytest.raises(TypeError):
        packed.providers["x"] = None  # read-only

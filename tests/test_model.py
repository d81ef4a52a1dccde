"""Slugs: stable, and never shared by different names."""

from __future__ import annotations

import pytest

from feeds.model import slugify


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

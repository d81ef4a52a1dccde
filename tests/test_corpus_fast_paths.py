"""Each shortcut of the corpus stage gives what the whole work gives, on hostile strings.

The golden parse (test_corpus_golden.py) pins whole documents; these compare a quick
path with the full one it skips, value by value, over strings drawn from the characters
that make each check decide (spaces of every kind, controls, `<`, `>`, `:`, `@`, `[`).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from random import Random
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, uuid5

import pytest

from feeds.corpus import fields
from feeds.corpus.files import read_regular_file
from feeds.corpus.frontmatter import (
    MAX_YAML_NODES,
    _check_values,
    _surely_clean,
    front_matter_text,
)
from feeds.corpus.nesting import _WIDE_PREFIX, has_wide_line
from feeds.corpus.normalize import (
    Unusable,
    _plain_url,
    checked_url,
    clean_text,
    cleaned,
    http_url,
    identity_spelling,
    identity_url,
)

ROUNDS = 20_000

TEXT_ALPHABET = ["a", "Z", "é", "東", "🚀", " ", "  ", "\t", "\n", "\xa0", "\x85", "\u2028"]
TEXT_ALPHABET += ["\x00", "\x1f", "\x7f", "\ufffe", "<", ">", "<b>", "…", "&", "-", "\u200b"]


def strings(alphabet: list[str], seed: int, longest: int = 12) -> list[str]:
    rng = Random(seed)
    return ["".join(rng.choices(alphabet, k=rng.randint(0, longest))) for _ in range(ROUNDS)]


def test_text_passed_by_the_quick_check_is_what_cleaning_gives() -> None:
    for limit in (5, 300):
        for text in strings(TEXT_ALPHABET, seed=limit):
            assert clean_text(text, "title", limit) == cleaned(text, limit), repr(text)


URL_STARTS = ["https://", "http://", "HTTPS://", "https:/", "ftp://", "//", "https://u@", ""]
URL_ALPHABET = ["a", "B", "0", ".", "-", "/", "?", "#", "&", "=", ":", "@", "[", "]", "%"]
URL_ALPHABET += ["é", " ", "\t", "\n", "\x7f", "\xa0", "\u200b", "\\", "utm_x=1", "fbclid=2"]
URL_ALPHABET += [".JPG", ".png", ":80"]


def urls(seed: int) -> list[str]:
    rng = Random(seed)
    starts = rng.choices(URL_STARTS, weights=[8, 4, 1, 1, 1, 1, 1, 1], k=ROUNDS)
    return [start + text for start, text in zip(starts, strings(URL_ALPHABET, seed), strict=True)]


def test_urls_passed_by_the_quick_pattern_are_what_the_whole_check_gives() -> None:
    quick = 0
    for url in urls(seed=1):
        link = http_url(url)
        assert link == checked_url(url.strip()), repr(url)
        if link is None:
            continue
        assert identity_url(link) == identity_spelling(link), repr(link)
        plain = _plain_url(link)
        if plain:  # what image_mime_type and identity_url read from it instead of urlsplit
            parts = urlsplit(link)
            assert (parts.scheme, parts.hostname, parts.port) == (
                plain["scheme"],
                plain["host"].lower(),
                None,
            )
            groups = (plain["path"] or "", plain["query"] or "", plain["fragment"] or "")
            assert (parts.path, parts.query, parts.fragment) == groups, repr(link)
            quick += 1
    assert quick > ROUNDS // 40  # the quick paths were taken, not only the whole ones


SPLIT_ALPHABET = ["---", "-", "--", "\n", "\n", " ", "\t", "\x0c", "\x85", "\u2028", "a: b", "..."]


# python-frontmatter 1.x's YAML handler, which split front matter before `front_matter_text`
# (YAMLHandler.FM_BOUNDARY, `detect` and `split`), kept as the reference its cut must match.
_FM_BOUNDARY = re.compile(r"^-{3,}\s*$", re.MULTILINE)


def python_frontmatter_split(text: str) -> str | None:
    """What the loader took as front matter before: python-frontmatter's YAML handler."""
    if not _FM_BOUNDARY.match(text):
        return None
    parts = _FM_BOUNDARY.split(text, 2)
    return parts[1] if len(parts) == 3 else None


def cut(text: str) -> str | None:
    try:
        return front_matter_text(text)
    except Unusable:
        return None


@pytest.mark.parametrize("opening", ["", "---\n"])
def test_front_matter_is_cut_where_python_frontmatter_cut_it(opening: str) -> None:
    found = 0
    for tail in strings(SPLIT_ALPHABET, seed=len(opening), longest=14):
        text = opening + tail
        assert cut(text) == python_frontmatter_split(text), repr(text)
        found += cut(text) is not None
    assert found > (ROUNDS // 10 if opening else 20)  # both verdicts were reached


INDENT_ALPHABET = [" " * 8, " ", "\t", "?", ":", "-", "- ", "\n", "\n", "\r", "a", "[", "\x85"]


def test_a_wide_line_is_found_wherever_a_multiline_search_finds_one() -> None:
    """check_nesting measures exactly when a line starts wide: at the text's start or after
    any newline, as `^` with re.M finds it."""
    reference = re.compile(rf"^[ \t?:-]{{{_WIDE_PREFIX}}}", re.M)
    wide = 0
    for text in strings(INDENT_ALPHABET, seed=3, longest=12):
        assert has_wide_line(text) == bool(reference.search(text)), repr(text)
        wide += has_wide_line(text)
    assert wide > 50  # both verdicts were reached


# What reading gave for each kind of link before links were resolved only on ELOOP.
LINKS = {
    "inside.txt": ("real.txt", None),
    "chain.txt": ("inside.txt", None),
    "outside.txt": ("{outside}", "a symbolic link to outside the corpus"),
    "dangling-inside.txt": ("gone.txt", "unreadable: No such file or directory"),
    "dangling-outside.txt": ("/nonexistent/x.txt", "a symbolic link to outside the corpus"),
    "loop.txt": ("loop.txt", "unreadable: Too many levels of symbolic links"),
    "to-dir.txt": ("dir", "not a regular file: a FIFO, device, socket or directory"),
    "to-fifo.txt": ("fifo", "not a regular file: a FIFO, device, socket or directory"),
    "to-dev.txt": ("/dev/zero", "a symbolic link to outside the corpus"),
}


def test_every_kind_of_link_reads_as_before(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "dir").mkdir(parents=True)
    (root / "real.txt").write_bytes(b"---\na: b\n---\n")
    (tmp_path / "outside.txt").write_bytes(b"---\n")
    os.mkfifo(root / "fifo")
    for name, (target, _) in LINKS.items():
        (root / name).symlink_to(target.format(outside=tmp_path / "outside.txt"))
    (root / "dir" / "loop").symlink_to(root / "dir")
    expected = {name: reason for name, (_, reason) in LINKS.items()}
    expected["dir/loop/x.txt"] = "unreadable: No such file or directory"
    for label, reason in expected.items():
        try:
            raw = read_regular_file(root, label, 100)
        except Unusable as error:
            assert str(error) == reason, label
        else:
            assert reason is None and raw == b"---\na: b\n---\n", label


def test_the_name_caches_hold_only_short_strings() -> None:
    """A hostile corpus of megabyte-long domains must not fill memory through the cache."""
    before = fields._cached_domain_name.cache_info().currsize
    for index in range(50):
        assert fields._domain_name(f"{index}" + "a" * 100_000 + ".example") is None
    assert fields._cached_domain_name.cache_info().currsize == before
    assert fields._domain_name("www.Example.com") == "example.com"
    assert fields._cached_domain_name.cache_info().currsize <= before + 1


SECRETS = ["s3cr3t:token/long", "short", "", "tok\0en:long-enough", "<<", "é東🚀-secret"]
SECRETS += ["\ud800surrogate-secret"]
SECRET_VALUES: list[Any] = [*SECRETS, None, ["s3cr3t:token/long", "short"], {"k": "short"}, 7]
PIECES = ["a", "b:", "<", "<<", "\0", " ", "é", "s3cr3t:", "token/long", "short", "tok", "en:long"]
PIECES += ["-enough", "\ud800", "surrogate-secret"]


def front_matter(rng: Random, depth: int = 0) -> Any:
    """A tree of the shapes yaml-rs gives (and a few it never does), with secret parts."""
    roll = rng.random()
    if depth > 2 or roll < 0.5:
        scalars = [None, True, 3, 2.5, 10**30, b"<<", "".join(rng.choices(PIECES, k=3))]
        return rng.choice([*scalars, rng.choice(SECRETS), "".join(rng.choices(PIECES, k=2))])
    if roll < 0.6:
        return [front_matter(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.65:
        return (front_matter(rng, depth + 1), rng.choice(SECRETS))  # a complex key's shape
    if roll < 0.68:
        return {rng.choice(SECRETS), "x"}
    keys = [rng.choice([*PIECES, *SECRETS, "title"]) for _ in range(rng.randint(0, 4))]
    return {key: front_matter(rng, depth + 1) for key in keys}


def test_a_document_shown_clean_at_once_passes_the_whole_secret_check() -> None:
    """The marshal shortcut of `_withhold_secret` never passes what the walk refuses."""
    rng = Random(4)
    verdicts = Counter()
    for _ in range(ROUNDS // 4):
        metadata = {"title": "x", "v": front_matter(rng)}
        secret = rng.choice(SECRET_VALUES)
        try:
            _check_values(metadata, secret)
            refused = ""
        except Unusable as error:
            refused = str(error)
        clean = _surely_clean(metadata, secret)
        assert not (clean and refused), (metadata, secret)
        verdicts[clean, bool(refused)] += 1
    shared = [None] * (MAX_YAML_NODES * 3 // 4)  # one list twice: the walk counts it twice
    for metadata, secret in [
        ({"a": [0] * MAX_YAML_NODES}, None),
        ({"a": shared, "b": shared}, None),
        ({"a": ["en:long-enough", "x tok"]}, "tok\0en:long-enough"),  # joined as x tok\0en:…
    ]:
        with pytest.raises(Unusable):
            _check_values(metadata, secret)
        assert not _surely_clean(metadata, secret)
    assert min(verdicts.values()) > 100, verdicts  # every verdict was reached


def test_article_ids_are_the_uuid5_urns_of_the_standard_library() -> None:
    for name in strings([*TEXT_ALPHABET, *URL_ALPHABET], seed=5, longest=40)[: ROUNDS // 4]:
        assert fields._uuid5_urn(name) == uuid5(NAMESPACE_URL, name).urn, repr(name)

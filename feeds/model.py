"""Typed, immutable articles: plain data that every stage passes along."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the Unix epoch: stored times count from it

_SEPARATORS = re.compile(r"[\s_\-]+")
_LOSSLESS = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def canonical_name(name: str) -> str:
    """The identity of a topic or provider name: case, spacing, `-` and `_` do not matter."""
    return _SEPARATORS.sub(" ", unicodedata.normalize("NFKC", name)).strip().casefold()


def slugify(name: str) -> str:
    """A stable, lowercase ASCII slug; two names with different canonical forms never share one.

    Names made only of ASCII letters and digits map one-to-one (`Computer Vision` ->
    `computer-vision`). Any other name keeps a readable ASCII base and gets `--` plus a
    hash of its canonical form: `--` never appears in a one-to-one slug, so the two kinds
    cannot collide, and the hash keeps `C++` and `C#` apart.
    """
    canonical = canonical_name(name)
    if _LOSSLESS.fullmatch(canonical):
        return canonical.replace(" ", "-")
    ascii_form = unicodedata.normalize("NFKD", canonical).encode("ascii", "ignore").decode()
    base = _NON_ALNUM.sub("-", ascii_form).strip("-")[:60].strip("-") or "x"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]
    return f"{base}--{digest}"


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    slug: str
    domain: str | None = None

    @property
    def url(self) -> str | None:
        return f"https://{self.domain}/" if self.domain else None


@dataclass(frozen=True, slots=True)
class Image:
    url: str
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Related:
    title: str
    url: str
    provider_name: str | None = None


@dataclass(frozen=True, slots=True)
class Article:
    """One servable article. `id` is derived from content, never from the file's name."""

    id: str
    title: str
    published: datetime
    provider: Provider
    link: str | None = None
    excerpt: str = ""
    category: str | None = None
    topics: tuple[Topic, ...] = ()
    image: Image | None = None
    related: tuple[Related, ...] = ()
    updated: datetime | None = None  # when an edit of the served article was seen, if one was

    @property
    def modified(self) -> datetime:
        """When the entry last changed: its edit, or else its publication."""
        return self.updated or self.published

    @property
    def tags(self) -> tuple[str, ...]:
        """Every format's categories: topic names, then the category unless a topic says it."""
        names = tuple(topic.name for topic in self.topics)
        if self.category and self.category not in names:
            names += (self.category,)
        return names

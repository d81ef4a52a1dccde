"""Typed, immutable articles and the catalog that indexes them.

Everything here is plain data: built once at startup, shared by every request and
(with gunicorn's preload) by every forked worker without copying.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

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

    @property
    def tags(self) -> tuple[str, ...]:
        """Every format's categories: topic names, then the category unless a topic says it."""
        names = tuple(topic.name for topic in self.topics)
        if self.category and self.category not in names:
            names += (self.category,)
        return names


@dataclass(frozen=True, slots=True)
class Catalog:
    """Articles newest first, with read-only indexes by topic and provider slug."""

    articles: tuple[Article, ...]
    topics: Mapping[str, Topic]
    providers: Mapping[str, Provider]
    by_topic: Mapping[str, tuple[Article, ...]]
    by_provider: Mapping[str, tuple[Article, ...]]
    version: str = field(default="")


def newest_first(articles: Iterable[Article]) -> list[Article]:
    """Newest first; ties broken by id so the order never depends on file order."""
    return sorted(articles, key=lambda a: (-a.published.timestamp(), a.id))


def build_catalog(articles: Iterable[Article], version: str) -> Catalog:
    ordered = newest_first(articles)
    topic_lists: dict[str, list[Article]] = {}
    topic_names: dict[str, Counter[str]] = {}
    provider_lists: dict[str, list[Article]] = {}
    provider_names: dict[str, Counter[str]] = {}
    provider_domains: dict[str, str | None] = {}
    for article in ordered:
        for topic in article.topics:
            topic_lists.setdefault(topic.slug, []).append(article)
            topic_names.setdefault(topic.slug, Counter())[topic.name] += 1
        slug = article.provider.slug
        provider_lists.setdefault(slug, []).append(article)
        provider_names.setdefault(slug, Counter())[article.provider.name] += 1
        provider_domains[slug] = article.provider.domain
    topics = {slug: Topic(_most_common(names), slug) for slug, names in sorted(topic_names.items())}
    providers = {
        slug: Provider(_most_common(names), slug, provider_domains[slug])
        for slug, names in sorted(provider_names.items())
    }
    return Catalog(
        articles=tuple(ordered),
        topics=MappingProxyType(topics),
        providers=MappingProxyType(providers),
        by_topic=MappingProxyType({k: tuple(v) for k, v in sorted(topic_lists.items())}),
        by_provider=MappingProxyType({k: tuple(v) for k, v in sorted(provider_lists.items())}),
        version=version,
    )


def _most_common(names: Counter[str]) -> str:
    """The spelling most documents use; ties go to the alphabetically first, for stability."""
    return min(names.items(), key=lambda item: (-item[1], item[0]))[0]

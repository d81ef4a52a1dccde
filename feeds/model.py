"""Typed, immutable articles and the catalog that indexes them.

Everything here is plain data: built once at startup, shared by every request and
(with gunicorn's preload) by every forked worker without copying.
"""

from __future__ import annotations

import hashlib
import marshal
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, overload

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

    articles: Sequence[Article]
    topics: Mapping[str, Topic]
    providers: Mapping[str, Provider]
    by_topic: Mapping[str, Sequence[Article]]
    by_provider: Mapping[str, Sequence[Article]]
    version: str = field(default="")


def newest_first(articles: Iterable[Article]) -> list[Article]:
    """Newest first; ties broken by id so the order never depends on file order."""
    return sorted(articles, key=lambda a: (-a.published.timestamp(), a.id))


def build_catalog(articles: Iterable[Article], version: str) -> Catalog:
    if isinstance(articles, PackedArticles):
        return articles.catalog(version)
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def pack_article(article: Article) -> bytes:
    """An article as compact bytes (marshal of plain tuples): a tenth of its object size."""
    published = (article.published - _EPOCH) // timedelta(microseconds=1)
    provider = article.provider
    image = article.image
    return marshal.dumps(
        (
            article.id,
            article.title,
            published,
            (provider.name, provider.slug, provider.domain),
            article.link,
            article.excerpt,
            article.category,
            tuple((topic.name, topic.slug) for topic in article.topics),
            None
            if image is None
            else (image.url, image.mime_type, image.width, image.height, image.title),
            tuple((r.title, r.url, r.provider_name) for r in article.related),
        )
    )


def unpack_article(data: Any) -> Article:
    """The `Article` that `pack_article` packed, equal to the original."""
    (id_, title, published, provider, link, excerpt, category, topics, image, related) = (
        marshal.loads(data)
    )
    return Article(
        id=id_,
        title=title,
        published=_EPOCH + timedelta(microseconds=published),
        provider=Provider(*provider),
        link=link,
        excerpt=excerpt,
        category=category,
        topics=tuple(Topic(*topic) for topic in topics),
        image=None if image is None else Image(*image),
        related=tuple(Related(*item) for item in related),
    )


class _ArticleSequence(Sequence[Article]):
    """A read-only sequence of articles decoded on access, so only what a feed shows is built.

    Slices are tuples of `Article`, like slices of the tuples a plain catalog holds.
    """

    __slots__ = ()

    def _article(self, index: int) -> Article:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Article: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Article, ...]: ...
    def __getitem__(self, index: int | slice) -> Article | tuple[Article, ...]:
        size = len(self)
        if isinstance(index, slice):
            return tuple(self._article(i) for i in range(*index.indices(size)))
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("article index out of range")
        return self._article(index)

    def __iter__(self) -> Iterator[Article]:
        return (self._article(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)} articles>"


class PackedArticles(_ArticleSequence):
    """Articles newest first as packed records in one buffer (bytes or an mmap of a snapshot).

    With the catalog's indexes (positions in this sequence) alongside, a catalog costs a
    few bytes per article in memory, and forked workers share the buffer's pages.
    """

    __slots__ = ("_buffer", "_offsets", "by_provider", "by_topic", "providers", "topics")

    def __init__(
        self,
        buffer: Any,
        offsets: array,
        *,
        topics: Mapping[str, Topic],
        providers: Mapping[str, Provider],
        by_topic: Mapping[str, array],
        by_provider: Mapping[str, array],
    ) -> None:
        self._buffer = buffer
        self._offsets = offsets
        self.topics = topics
        self.providers = providers
        self.by_topic = by_topic
        self.by_provider = by_provider

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _article(self, index: int) -> Article:
        return unpack_article(self._buffer[self._offsets[index] : self._offsets[index + 1]])

    def catalog(self, version: str) -> Catalog:
        return Catalog(
            articles=self,
            topics=MappingProxyType(dict(self.topics)),
            providers=MappingProxyType(dict(self.providers)),
            by_topic=MappingProxyType({k: _Subset(self, v) for k, v in self.by_topic.items()}),
            by_provider=MappingProxyType(
                {k: _Subset(self, v) for k, v in self.by_provider.items()}
            ),
            version=version,
        )


class _Subset(_ArticleSequence):
    """Some of a `PackedArticles`, by position, in its order (one topic's or provider's)."""

    __slots__ = ("_base", "_positions")

    def __init__(self, base: PackedArticles, positions: array) -> None:
        self._base = base
        self._positions = positions

    def __len__(self) -> int:
        return len(self._positions)

    def _article(self, index: int) -> Article:
        return self._base._article(self._positions[index])


def pack_catalog(catalog: Catalog) -> tuple[bytes, array, dict[str, Any]]:
    """A catalog as one buffer of packed articles, their offsets and the indexes by position."""
    offsets = array("Q", [0])
    chunks: list[bytes] = []
    position: dict[str, int] = {}
    size = 0
    for index, article in enumerate(catalog.articles):
        data = pack_article(article)
        chunks.append(data)
        size += len(data)
        offsets.append(size)
        position[article.id] = index

    def positions(articles: Sequence[Article]) -> array:
        return array("I", (position[article.id] for article in articles))

    indexes = {
        "topics": {slug: (t.name, t.slug) for slug, t in catalog.topics.items()},
        "providers": {slug: (p.name, p.slug, p.domain) for slug, p in catalog.providers.items()},
        "by_topic": {slug: positions(items) for slug, items in catalog.by_topic.items()},
        "by_provider": {slug: positions(items) for slug, items in catalog.by_provider.items()},
    }
    return b"".join(chunks), offsets, indexes


def packed_articles(buffer: Any, offsets: array, indexes: Mapping[str, Any]) -> PackedArticles:
    """The sequence `pack_catalog` described, over its buffer (bytes or mmap)."""
    return PackedArticles(
        buffer,
        offsets,
        topics={slug: Topic(*fields) for slug, fields in indexes["topics"].items()},
        providers={slug: Provider(*fields) for slug, fields in indexes["providers"].items()},
        by_topic=indexes["by_topic"],
        by_provider=indexes["by_provider"],
    )

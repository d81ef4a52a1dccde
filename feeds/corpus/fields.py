"""The front-matter mapping to an `Article`: every field cleaned, repaired or refused."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from feeds.corpus.normalize import (
    Unusable,
    aware_datetime,
    clean_text,
    domain_name,
    http_url,
    identity_url,
    image_mime_type,
    positive_int,
)
from feeds.corpus.outcome import LoadOptions, Parsed
from feeds.model import Article, Image, Provider, Related, Topic, slugify

MAX_TITLE = 300

MAX_EXCERPT = 2000

MAX_NAME = 120

MAX_TOPICS = 20

MAX_IMAGES_SCANNED = 20

MAX_RELATED = 10


# Names and hosts repeat across a corpus (hundreds of topics, thousands of providers), so
# each distinct one is slugged or checked once per process. Both are pure functions of a
# short string (names are cut to MAX_NAME first; longer hosts are not cached).
_slug = lru_cache(maxsize=8192)(slugify)
_cached_domain_name = lru_cache(maxsize=8192)(domain_name)
_LONGEST_CACHED_HOST = 300  # past 253 characters no value is a host name anyway


def _domain_name(value: Any) -> str | None:
    if type(value) is str and len(value) <= _LONGEST_CACHED_HOST:
        return _cached_domain_name(value)
    return domain_name(value)


class Filtered(Unusable):
    """A usable document that a setting excludes; counted apart from broken ones."""


def to_parsed(label: str, meta: Mapping[str, Any], raw: bytes, options: LoadOptions) -> Parsed:
    """A parsed front-matter mapping as the article served (public for bench/yaml_libraries)."""
    repairs: list[str] = []
    title = clean_text(meta.get("title"), "title", MAX_TITLE)
    if not title:
        raise Unusable("title is missing or empty")
    published = aware_datetime(meta.get("publishedDateTime"), "publishedDateTime")
    link = _first_link(meta, repairs)
    provider = _provider(meta.get("provider"), link, repairs)
    quality = _quality(meta.get("quality"), repairs)
    if not options.include_unpublished and _unpublished(meta.get("published")):
        raise Filtered("published is false")
    if options.min_quality is not None and quality < options.min_quality:
        raise Filtered(f"quality {quality:g} below {options.min_quality:g}")
    article = Article(
        id=_article_id(link, title, provider, published.isoformat()),
        title=title,
        published=published,
        provider=provider,
        link=link,
        excerpt=_optional_text(meta, "excerpt", MAX_EXCERPT, repairs),
        category=_optional_text(meta, "category", MAX_NAME, repairs) or None,
        topics=_topics(meta.get("topics"), repairs),
        image=_first_image(meta.get("images"), repairs),
        related=_related(meta.get("related"), repairs),
    )
    return Parsed(label, article, hashlib.sha256(raw).hexdigest(), quality, tuple(repairs))


_FALSE_WORDS = frozenset(["false", "no", "off"])


def _unpublished(value: Any) -> bool:
    """`published: false`, and YAML 1.1's `no` and `off`: YAML 1.2 reads those as text,
    but a draft written for libyaml must not go live."""
    return value is False or (isinstance(value, str) and value.strip().lower() in _FALSE_WORDS)


def _article_id(link: str | None, title: str, provider: Provider, published: str) -> str:
    """A URN that depends only on what the article is, so renames and moves keep it, and
    corrected spellings of its link (`identity_url`) too."""
    identity = identity_url(link) if link else f"{provider.slug}\n{published}\n{title}"
    return _uuid5_urn(identity)


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def _uuid5_urn(name: str) -> str:
    """`uuid.uuid5(uuid.NAMESPACE_URL, name).urn` without the `UUID` object, whose checks
    cost twice the hash: the name's SHA-1 with the version and variant bits of RFC 4122
    set, spelled as a URN (a test compares the two)."""
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + name.encode()).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x50  # version 5
    digest[8] = digest[8] & 0x3F | 0x80  # the RFC 4122 variant
    hexed = digest.hex()
    return f"urn:uuid:{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def _optional_text(meta: Mapping[str, Any], key: str, limit: int, repairs: list[str]) -> str:
    try:
        return clean_text(meta.get(key), key, limit)
    except Unusable as error:
        repairs.append(f"{error}; ignored")
        return ""


def _first_link(meta: Mapping[str, Any], repairs: list[str]) -> str | None:
    for key in ("webUrl", "originalUrl"):
        value = meta.get(key)
        url = http_url(value)
        if url:
            return url
        if value not in (None, ""):
            repairs.append(f"{key} is not an http(s) URL; ignored")
    return None


def _provider(value: Any, link: str | None, repairs: list[str]) -> Provider:
    name: Any = None
    domain: str | None = None
    if isinstance(value, dict):
        name, domain = value.get("name"), _domain_name(value.get("domain"))
        if value.get("domain") not in (None, "") and domain is None:
            repairs.append("provider.domain is not a host name; ignored")
    elif isinstance(value, str):
        name = value
    elif value is not None:
        repairs.append(f"provider is a {type(value).__name__}; ignored")
    clean_name = clean_text(name, "provider.name", MAX_NAME) if isinstance(name, str) else ""
    if not domain and not clean_name and link:
        domain = _domain_name(link.split("/")[2].split("@")[-1].split(":")[0])
        repairs.append("provider missing; taken from the link's host")
    if domain:
        return Provider(clean_name or domain, domain, domain)
    if clean_name:
        return Provider(clean_name, _slug(clean_name))
    raise Unusable("provider is missing: no name, domain or link")


def _quality(value: Any, repairs: list[str]) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        repairs.append("quality is not a number; taken as 0")
        return 0.0
    except OverflowError:  # an int of hundreds of digits
        repairs.append("quality is too large; taken as 0")
        return 0.0


def _as_list(value: Any, field_name: str, repairs: list[str]) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str | dict):
        return [value]
    repairs.append(f"{field_name} is a {type(value).__name__}; ignored")
    return []


def _topics(value: Any, repairs: list[str]) -> tuple[Topic, ...]:
    topics: dict[str, Topic] = {}
    for item in _as_list(value, "topics", repairs):
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            repairs.append("a topic that is not text was ignored")
            continue
        name = clean_text(item, "topic", MAX_NAME)
        if name and len(topics) < MAX_TOPICS:
            slug = _slug(name)
            topics.setdefault(slug, Topic(name, slug))
    return tuple(topics.values())


def _first_image(value: Any, repairs: list[str]) -> Image | None:
    for item in _as_list(value, "images", repairs)[:MAX_IMAGES_SCANNED]:
        if not isinstance(item, dict):
            continue
        url = http_url(item.get("url"))
        if not url:
            continue
        title = item.get("title")
        return Image(
            url=url,
            mime_type=image_mime_type(url),
            width=positive_int(item.get("width")),
            height=positive_int(item.get("height")),
            title=clean_text(title, "image title", MAX_TITLE) if isinstance(title, str) else None,
        )
    return None


def _related(value: Any, repairs: list[str]) -> tuple[Related, ...]:
    related: list[Related] = []
    for item in _as_list(value, "related", repairs):
        if len(related) == MAX_RELATED:
            break
        if not isinstance(item, dict):
            continue
        url = http_url(item.get("webUrl")) or http_url(item.get("originalUrl"))
        try:
            title = clean_text(item.get("title"), "related title", MAX_TITLE)
        except Unusable:
            continue
        if url and title:
            provider = item.get("provider")
            name = provider.get("name") if isinstance(provider, dict) else None
            provider_name = clean_text(name, "name", MAX_NAME) if isinstance(name, str) else None
            related.append(Related(title, url, provider_name or None))
    return tuple(related)

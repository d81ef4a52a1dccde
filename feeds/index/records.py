"""Articles as JSON rows and back: plain data only, nothing a hostile file could execute."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from feeds.model import EPOCH, Article, Image, Provider, Related, Topic

_ONE_MICROSECOND = timedelta(microseconds=1)


def microseconds(moment: datetime) -> int:
    """A moment as whole microseconds since the epoch: exact, and sortable as an integer."""
    return (moment - EPOCH) // _ONE_MICROSECOND


def from_microseconds(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def article_json(article: Article) -> str:
    """The article as a compact JSON array (field order is the `Article` field order)."""
    provider, image = article.provider, article.image
    return json.dumps(
        [
            article.id,
            article.title,
            microseconds(article.published),
            [provider.name, provider.slug, provider.domain],
            article.link,
            article.excerpt,
            article.category,
            [[topic.name, topic.slug] for topic in article.topics],
            None
            if image is None
            else [image.url, image.mime_type, image.width, image.height, image.title],
            [[r.title, r.url, r.provider_name] for r in article.related],
            None if article.updated is None else microseconds(article.updated),
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def article_from_json(text: str) -> Article:
    """The `Article` that `article_json` wrote; a malformed row raises ValueError."""
    try:
        fields: list[Any] = json.loads(text)
        (
            id_,
            title,
            published,
            provider,
            link,
            excerpt,
            category,
            topics,
            image,
            related,
            updated,
        ) = fields
        return Article(
            id=id_,
            title=title,
            published=from_microseconds(published),
            provider=Provider(*provider),
            link=link,
            excerpt=excerpt,
            category=category,
            topics=tuple(Topic(*topic) for topic in topics),
            image=None if image is None else Image(*image),
            related=tuple(Related(*item) for item in related),
            updated=None if updated is None else from_microseconds(updated),
        )
    except (LookupError, TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"malformed article row: {error.__class__.__name__}") from None

"""JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/)."""

from __future__ import annotations

import json
from typing import Any

from feeds.model import Article
from feeds.publish.document import FeedDocument
from feeds.render.common import rfc3339
from feeds.render.content import entry_html
from feeds.renders import paced

VERSION = "https://jsonfeed.org/version/1.1"


def render(document: FeedDocument) -> bytes:
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": document.selection.title,
        "home_page_url": document.page_url,
        "feed_url": document.self_url,
        "description": document.selection.description,
    }
    older = document.link("prev-archive")
    if older:
        feed["next_url"] = older  # JSON Feed pages towards older items, as archives do
    hub = document.link("hub")
    if hub:
        feed["hubs"] = [{"type": "WebSub", "url": hub}]
    feed["items"] = [_item(article) for article in paced(document.articles)]
    return json.dumps(feed, ensure_ascii=False, indent=2).encode("utf-8")


def _item(article: Article) -> dict[str, Any]:
    item: dict[str, Any] = {"id": article.id}
    if article.link:
        item["url"] = article.link
    item["title"] = article.title
    item["content_html"] = entry_html(article)
    if article.excerpt:
        item["summary"] = article.excerpt
    if article.image is not None:
        item["image"] = article.image.url
    item["date_published"] = rfc3339(article.published)
    if article.updated is not None:
        item["date_modified"] = rfc3339(article.updated)
    author: dict[str, str] = {"name": article.provider.name}
    if article.provider.url:
        author["url"] = article.provider.url
    item["authors"] = [author]
    if article.tags:
        item["tags"] = list(article.tags)
    if article.image is not None and article.image.mime_type:
        attachment: dict[str, Any] = {
            "url": article.image.url,
            "mime_type": article.image.mime_type,
        }
        if article.image.title:
            attachment["title"] = article.image.title
        item["attachments"] = [attachment]
    return item

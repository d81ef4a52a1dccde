"""Which URLs are topics of this hub, and the feed document a topic stands for."""

from __future__ import annotations

from urllib.parse import urlsplit

from feeds.cache import Rendered
from feeds.publish.selection import UnknownFeed
from feeds.publish.urls import parse_feed_path
from feeds.render import FORMATS
from feeds.site import Site


class UnknownTopic(ValueError):
    """Not one of our current feed URLs; the message says why, in one line."""


def origin(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise UnknownTopic("hub.topic is not a URL") from None
    return f"{parts.scheme}://{parts.netloc}"


def topic_address(topic: str) -> tuple[str, str] | None:
    """The (kind, slug) of the feed a topic URL names, as the index keys feeds; else None."""
    try:
        address = parse_feed_path(urlsplit(topic).path)
    except ValueError:
        return None
    return None if address is None else (address.kind, address.slug or "")


def topic_feed(site: Site, topic: str) -> Rendered:
    """The current document of `topic`, rendered as a GET of that URL would send it.

    Topics are current feeds without a query (the URL a feed gives as rel=self); archive
    pages never change and have nothing to push.
    """
    parts = urlsplit(topic)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UnknownTopic("hub.topic must be a feed URL without a query, like /feeds/all.rss")
    address = parse_feed_path(parts.path)
    if address is None or address.extension not in FORMATS:
        raise UnknownTopic("hub.topic must be a feed URL, like /feeds/all.rss")
    if address.page is not None:
        raise UnknownTopic("archive pages never change; subscribe to the current feed")
    try:
        selection = site.selection(address.kind, address.slug)
    except UnknownFeed as unknown:
        raise UnknownTopic(f"hub.topic: {unknown}") from None
    return site.feed(selection, address.extension, site.settings["DEFAULT_ITEMS"], origin(topic))

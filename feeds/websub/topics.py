"""Which URLs are topics of this hub, and the feed document a topic stands for."""

from __future__ import annotations

from urllib.parse import urlsplit

from feeds.cache import Rendered
from feeds.index.search import Filter
from feeds.publish.custom import BadFilter, canonical_query, parse_filter
from feeds.publish.selection import UnknownFeed
from feeds.publish.urls import CUSTOM_PATH, parse_feed_path
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
    """The (kind, slug) of the feed a topic URL names, as the index keys feeds; else None.

    A custom feed's key is ("custom", its canonical query).
    """
    try:
        parts = urlsplit(topic)
    except ValueError:
        return None
    if _custom_extension(parts.path):
        return ("custom", parts.query)
    address = parse_feed_path(parts.path)
    return None if address is None else (address.kind, address.slug or "")


def custom_filter(query: str) -> Filter:
    """The filter of a custom topic, which must be given by its canonical URL."""
    try:
        selected = parse_filter(query.encode("latin-1"))
    except (BadFilter, UnicodeError) as bad:
        raise UnknownTopic(f"hub.topic: {bad}") from None
    if not selected or canonical_query(selected) != query:
        raise UnknownTopic("hub.topic must be a custom feed's canonical URL, without limit")
    return selected


def _custom_extension(path: str) -> str | None:
    stem, dot, extension = path.rpartition(".")
    return extension if dot and stem == CUSTOM_PATH and extension in FORMATS else None


def topic_feed(site: Site, topic: str) -> Rendered:
    """The current document of `topic`, rendered as a GET of that URL would send it.

    Topics are current feeds without a query (the URL a feed gives as rel=self), or
    custom feeds by their canonical URL; archive pages never change and have nothing
    to push.
    """
    parts = urlsplit(topic)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise UnknownTopic("hub.topic must be a feed URL, like /feeds/all.rss")
    limit = site.settings["DEFAULT_ITEMS"]
    extension = _custom_extension(parts.path)
    try:
        if extension:
            selection = site.custom_selection(custom_filter(parts.query), limit)
        else:
            if parts.query:
                raise UnknownTopic("hub.topic must be a feed URL without a query")
            address = parse_feed_path(parts.path)
            if address is None or address.extension not in FORMATS:
                raise UnknownTopic("hub.topic must be a feed URL, like /feeds/all.rss")
            if address.page is not None:
                raise UnknownTopic("archive pages never change; subscribe to the current feed")
            extension = address.extension
            selection = site.selection(address.kind, address.slug)
    except UnknownFeed as unknown:
        raise UnknownTopic(f"hub.topic: {unknown}") from None
    return site.feed(selection, extension, limit, origin(topic))

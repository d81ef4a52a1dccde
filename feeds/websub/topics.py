"""Which URLs are topics of this hub, and the feed document a topic stands for."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from feeds.cache.rendered import Rendered
from feeds.index.search import Filter
from feeds.publish.custom import BadFilter, canonical_query, parse_filter
from feeds.publish.selection import UnknownFeed
from feeds.publish.urls import CUSTOM_PATH, parse_feed_path
from feeds.render import FORMATS
from feeds.settings import Settings
from feeds.site import Site


class UnknownTopic(ValueError):
    """Not one of our current feed URLs; the message says why, in one line."""


class ForeignTopic(UnknownTopic):
    """A URL of another origin: this deployment neither accepts nor pushes it."""


def origin(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise UnknownTopic("hub.topic is not a URL") from None
    return f"{parts.scheme}://{parts.netloc}"


def stored_base(settings: Settings, topic: str) -> str:
    """The base URL a stored topic is pushed under: FEEDS_BASE_URL, whose URLs alone this
    deployment pushes, else (no configured origin) the origin the topic was accepted at."""
    return settings.base_url or origin(topic)


def _within(topic: str, base: str) -> SplitResult:
    """The path, query and fragment of `topic` below `base` (an origin, perhaps with the
    path prefix of FEEDS_BASE_URL); ForeignTopic when it is not one of base's URLs."""
    origin(topic)  # a URL at all
    rest = topic[len(base) :] if topic.startswith(base) else ""
    if not rest.startswith("/") or rest.startswith("//"):
        raise ForeignTopic(f"hub.topic must be a feed of {base}")
    try:
        return urlsplit(rest)
    except ValueError:
        raise UnknownTopic("hub.topic is not a URL") from None


def topic_address(topic: str, base: str) -> tuple[str, str] | None:
    """The (kind, slug) of the feed a topic URL of `base` names, as the index keys feeds;
    else None. A custom feed's key is ("custom", its canonical query)."""
    try:
        parts = _within(topic, base)
    except UnknownTopic:
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


def topic_feed(site: Site, topic: str, base: str) -> Rendered:
    """The current document of `topic`, one of `base`'s URLs, rendered as a GET of that URL
    would send it (links under `base`); ForeignTopic for a URL of another origin.

    Topics are current feeds without a query (the URL a feed gives as rel=self), or
    custom feeds by their canonical URL; archive pages never change and have nothing
    to push.
    """
    if urlsplit(base).scheme not in ("http", "https"):
        raise UnknownTopic("hub.topic must be a feed URL, like /feeds/all.rss")
    parts = _within(topic, base)
    if parts.fragment:
        raise UnknownTopic("hub.topic must be a feed URL, like /feeds/all.rss")
    limit = site.settings.default_items
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
    return site.feed(selection, extension, limit, base)

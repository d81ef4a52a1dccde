"""The index's current view with the settings and cache: what every request, command and
export reads.

`Site.catalog` is the index as the last committed change left it (`feeds.index.reader`);
rendered documents are cached under each feed's own digest, so a change re-renders only
the feeds it touched.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis

from feeds.cache.control import cache_control
from feeds.cache.identity import cache_key
from feeds.cache.rendered import Rendered, prepare
from feeds.cache.shared import shared_tier
from feeds.cache.tiers import FeedCache
from feeds.index.indexer import Target
from feeds.index.reader import FeedArticles, IndexReader, View
from feeds.index.search import Filter
from feeds.publish.archive import IMMUTABLE_CACHE_CONTROL, Archive
from feeds.publish.custom import canonical_query, custom_selection
from feeds.publish.document import link_header
from feeds.publish.selection import Selection, UnknownFeed, as_sealed, select
from feeds.publish.urls import HUB_PATH, feed_path
from feeds.render import FORMATS, FeedDocument
from feeds.renders import RenderGate, pause
from feeds.settings import Settings
from feeds.stores import redis_for

log = logging.getLogger("feeds.site")

# Settings that change the bytes of a feed; they are part of the corpus version.
OUTPUT_SETTINGS = (
    "SITE_TITLE",
    "SITE_DESCRIPTION",
    "MAX_AGE",
    "DEFAULT_ITEMS",
    "ARCHIVE_PAGE_SIZE",
    "WEBSUB_HUB_URL",
)


@dataclass(frozen=True)
class Site:
    settings: Settings
    reader: IndexReader
    cache: FeedCache

    @property
    def catalog(self) -> View:
        """The index as last committed; raises NotReady before the first complete index."""
        return self.reader.view()

    @property
    def cache_control(self) -> str:
        return cache_control(self.settings.max_age)

    def selection(self, kind: str, slug: str | None) -> Selection:
        return select(
            self.catalog, kind, slug, self.settings.site_title, self.settings.site_description
        )

    def custom_selection(self, selected: Filter, limit: int) -> Selection:
        """A custom feed's newest `limit` articles; UnknownFeed for a slug not indexed."""
        return custom_selection(self.catalog, selected, limit, self.settings.site_title)

    @staticmethod
    def archive(selection: Selection) -> Archive:
        """The feed's sealed pages; custom feeds have none."""
        articles = selection.articles
        if not isinstance(articles, FeedArticles):
            return Archive(0, len(articles))
        return Archive(articles.pages, articles.open)

    def hub_url(self, base_url: str) -> str:
        return self.settings.websub_hub_url or f"{base_url}{HUB_PATH}"

    def feed(self, selection: Selection, extension: str, limit: int, base_url: str) -> Rendered:
        """The current feed document, from the cache or rendered now."""
        self_url = self._self_url(selection.kind, selection.slug, extension, limit, base_url)
        archive = self.archive(selection)
        links = [("hub", self.hub_url(base_url))]
        # Only a document holding every unarchived article may lead into the archives.
        if selection.archived and archive.pages and limit >= archive.unarchived:
            links.append(
                ("prev-archive", self._page_url(selection, extension, archive.pages, base_url))
            )
        document = FeedDocument(
            selection,
            selection.articles[:limit],
            base_url,
            self_url,
            self._ttl_minutes,
            tuple(links),
        )
        return self._rendered(
            extension, document, self.cache_control, modified=selection.articles.changed
        )

    def custom_feed(self, selected: Filter, extension: str, limit: int, base_url: str) -> Rendered:
        """A custom feed, found by its URL in this index version before any query runs.

        The query is part of the render, so a filter asked for again costs a lookup, and a
        first one waits for a render slot before it queries. Its document is then cached by
        its articles' digest as every feed is, so a change that leaves its articles alone
        costs a query but no render. UnknownFeed for a slug not indexed.
        """
        slug = canonical_query(selected)
        self_url = self._self_url("custom", slug, extension, limit, base_url)

        def query_and_render() -> Rendered:
            selection = self.custom_selection(selected, limit)
            pause()
            return self.feed(selection, extension, limit, base_url)

        # Only in this process: the document itself goes to the shared tier under its digest.
        key = cache_key(self.output_version(self.catalog.version), "custom", self_url)
        return self.cache.get_or_render(key, query_and_render, shared=False)

    def _self_url(
        self, kind: str, slug: str | None, extension: str, limit: int, base_url: str
    ) -> str:
        url = f"{base_url}{feed_path(kind, slug, extension)}"
        joiner = "&" if "?" in url else "?"
        return url if limit == self.settings.default_items else f"{url}{joiner}limit={limit}"

    def archive_page(
        self, selection: Selection, extension: str, page: int, base_url: str
    ) -> Rendered:
        """Archive page `page` (1 is the oldest); a page that does not exist is UnknownFeed."""
        archive = self.archive(selection)
        articles = selection.articles
        if not archive.has(page) or not isinstance(articles, FeedArticles):
            raise UnknownFeed(f"{selection.page_path} has {archive.pages} archive pages")
        current = f"{base_url}{selection.feed_path(extension)}"
        links = [("current", current)]
        if archive.has(page - 1):
            links.append(("prev-archive", self._page_url(selection, extension, page - 1, base_url)))
        # The newest page's next document is the current one: readers walking forward get
        # there, and a lone page is not left without archive links (the W3C validator's
        # ArchiveIncomplete warning).
        newer = archive.has(page + 1)
        links.append(
            (
                "next-archive",
                self._page_url(selection, extension, page + 1, base_url) if newer else current,
            )
        )
        sealed = articles.page(page)
        document = FeedDocument(
            as_sealed(selection, sealed.articles, self.settings.site_title),
            sealed.articles,
            base_url,
            self._page_url(selection, extension, page, base_url),
            self._ttl_minutes,
            tuple(links),
            archive=True,
        )
        immutable = archive.immutable(page)
        cache_control = IMMUTABLE_CACHE_CONTROL if immutable else self.cache_control
        # A page's bytes depend only on what it sealed and whether a newer page follows.
        version = f"{selection.kind}/{selection.slug or ''}/page/{page}/{sealed.sealed}/{newer}"
        # The newest page's bytes change when the next page is sealed (its `next-archive`),
        # at a time its seal date does not tell: until then its only validator is the ETag,
        # so no If-Modified-Since can keep the link from a client. Once a newer page follows,
        # its bytes are final and its Last-Modified is its seal time, forever.
        modified = sealed.sealed if immutable else None
        return self._rendered(extension, document, cache_control, modified, version)

    @property
    def _ttl_minutes(self) -> int:
        return max(1, self.settings.max_age // 60)

    @staticmethod
    def _page_url(selection: Selection, extension: str, page: int, base_url: str) -> str:
        return f"{base_url}{selection.feed_path(extension, page)}"

    def _rendered(
        self,
        extension: str,
        document: FeedDocument,
        cache_control: str,
        modified: datetime | None,
        version: str | None = None,
    ) -> Rendered:
        """Render at most once per process and content version; the key is the document's URL.

        A current document's version and Last-Modified are its feed's; an archive page
        passes its own (`modified` None: no Last-Modified, the ETag alone validates).
        """
        fmt = FORMATS[extension]

        def render() -> Rendered:
            body = fmt.render(document)
            pause()
            return prepare(body, modified, fmt.content_type, cache_control, link_header(document))

        content_version = version or document.selection.version
        key = cache_key(self.output_version(content_version), document.self_url)
        return self.cache.get_or_render(key, render)

    def output_version(self, content_version: str) -> str:
        """What a document's bytes depend on: its articles' digest and the output settings."""
        fingerprint = "\n".join(
            [
                content_version,
                *(str(getattr(self.settings, name.lower())) for name in OUTPUT_SETTINGS),
            ]
        )
        return hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()


def load_site(settings: Settings, client: Callable[[], redis.Redis] | None = None) -> Site:
    """A site reading the index of the configured corpus (built by `feeds.index.indexer`).

    `client` is the runtime's Redis client (`feeds.runtime`); a process with no runtime (the
    indexer) has its own.
    """
    local_bytes = settings.cache_local_mb * 1024 * 1024
    gate = RenderGate(settings.renders, settings.render_queue, settings.renders_per_client)
    shared = shared_tier(settings, client or redis_for(settings).get)
    cache = FeedCache(shared, settings.cache_threshold, local_bytes, gate)
    return Site(settings, IndexReader(Target.from_settings(settings).path), cache)

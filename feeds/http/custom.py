"""Custom feeds over HTTP: `/feeds/custom.<ext>?<filter>` and the `/custom` preview page.

Both read the filter strictly (`feeds.publish.custom.parse_filter`), send any other spelling of
it to its canonical URL with a 301, and answer an unknown slug with 404 and a bad query
with 400. Feeds and preview pages are cached by their canonical URL and the index
version (per-worker LRU caches, so memory stays bounded however many filters are asked
for); a filter asked for again costs no query, and first renders are bounded per worker
and per client (`feeds.renders`).
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from werkzeug.exceptions import BadRequest, NotFound

from feeds.cache.rendered import Rendered, prepare
from feeds.http.pages import HTML, _site_context, alternates, page_key
from feeds.http.responses import CORS_HEADERS
from feeds.http.routes import FEED_METHODS, base_url, parse_limit, preflight, send
from feeds.http.served import current_site
from feeds.index.search import Filter
from feeds.model import EPOCH
from feeds.publish.custom import BadFilter, canonical_query, describe, parse_filter
from feeds.publish.listing import Listing
from feeds.publish.selection import Selection, UnknownFeed
from feeds.publish.urls import CUSTOM_PATH, feed_path
from feeds.render import FORMATS
from feeds.renders import pause
from feeds.site import Site

blueprint = Blueprint("custom", __name__, template_folder="templates")
PAGE_PATH = "/custom"


@blueprint.route(f"{CUSTOM_PATH}.<extension>", methods=FEED_METHODS)
def custom_feed(extension: str) -> Response:
    if extension not in FORMATS:
        raise NotFound(f"unknown format .{extension}; try .{', .'.join(FORMATS)}")
    if request.method == "OPTIONS":
        return preflight()
    site = current_site()
    selected, limit = _filter_and_limit(site)
    if not selected:
        return moved(feed_path("all", None, extension) + _limit_query("?", site, limit))
    query = canonical_query(selected) + _limit_query("&", site, limit)
    if request.query_string.decode("latin-1") != query:
        return moved(f"{CUSTOM_PATH}.{extension}?{query}")
    try:
        return send(site.custom_feed(selected, extension, limit, base_url(site)))
    except UnknownFeed as unknown:
        raise NotFound(f"{unknown}; see / for every topic and provider") from None


@blueprint.route(PAGE_PATH)
def custom_page() -> Response:
    """The form's answer: the feed's newest entries, its canonical URLs, autodiscovery."""
    site = current_site()
    selected, limit = _filter_and_limit(site)
    if not selected:
        return moved("/")
    query = canonical_query(selected) + _limit_query("&", site, limit)
    if request.query_string.decode("latin-1") != query:
        return moved(f"{PAGE_PATH}?{query}")
    origin = base_url(site)

    def render() -> Rendered:
        selection = _selection(site, selected, limit)
        pause()
        articles = selection.articles[:limit]
        newest = articles[0].published if articles else None
        feed = Listing(selection, describe(site.catalog, selected), len(articles), newest)
        html = render_template(
            "custom.html",
            site=_site_context(site),
            origin=origin,
            feed=feed,
            articles=articles,
            alternates=alternates(feed, origin),
        )
        return prepare(html.encode("utf-8"), newest or EPOCH, HTML, site.cache_control)

    # Kept by this worker only: clients choose these keys without bound.
    key = page_key(site, "custom", origin, query)
    return send(site.cache.get_or_render(key, render, shared=False))


def _filter_and_limit(site: Site) -> tuple[Filter, int]:
    try:
        selected = parse_filter(request.query_string)
    except BadFilter as bad:
        raise BadRequest(str(bad)) from None
    return selected, parse_limit(site.settings.default_items, site.settings.max_items)


def _limit_query(joiner: str, site: Site, limit: int) -> str:
    """`limit` as the canonical URL carries it: only when it is not the default."""
    return "" if limit == site.settings.default_items else f"{joiner}limit={limit}"


def _selection(site: Site, selected: Filter, limit: int) -> Selection:
    try:
        return site.custom_selection(selected, limit)
    except UnknownFeed as unknown:
        raise NotFound(f"{unknown}; see / for every topic and provider") from None


def moved(location: str) -> Response:
    """A permanent redirect to the one URL of this filter (or of the all feed)."""
    body = f"301 Moved Permanently: {location}\n"
    response = Response(body, 301, content_type="text/plain; charset=utf-8")
    response.headers["Location"] = location
    response.headers["Cache-Control"] = current_site().cache_control
    response.headers.extend(CORS_HEADERS)
    return response

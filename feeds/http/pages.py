"""Pages for people: the feed directory, a page per topic and provider, OPML and assets.

Every answer here is rendered once per corpus version and request shape, kept in the
site's feed cache and sent by `feeds.http.routes.send`, so pages get the feeds' ETags, 304s,
compression and CORS headers without a second implementation.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Response, render_template, request
from werkzeug.exceptions import BadRequest, NotFound

from feeds.cache.identity import cache_key
from feeds.cache.rendered import Rendered, prepare
from feeds.http.routes import FEED_METHODS, base_url, parse_limit, preflight, send
from feeds.http.served import current_site
from feeds.model import EPOCH
from feeds.publish import listing
from feeds.publish.listing import Listing
from feeds.publish.selection import UnknownFeed
from feeds.render import FORMATS, opml
from feeds.render.common import rfc3339
from feeds.render.xmlfeed import STYLESHEET_PATH
from feeds.renders import pause
from feeds.site import Site

blueprint = Blueprint("pages", __name__, template_folder="templates")

HTML = "text/html; charset=utf-8"
OPML_TYPE = "text/x-opml; charset=utf-8"
STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
ASSETS = {
    STYLESHEET_PATH.lstrip("/"): "text/xsl; charset=utf-8",
    "feeds.css": "text/css; charset=utf-8",
}
FORMAT_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON"}
MAX_QUERY = 100
OTHER = "#"

Group = tuple[str, list[Listing]]


@blueprint.route("/")
def directory() -> Response:
    site = current_site()
    origin = base_url(site)
    query = _query()

    def render() -> Rendered:
        feeds = list(listing.listings(site.catalog, *_titles(site)))
        shown = [feed for feed in feeds[1:] if matches(feed, query)]
        pause()
        html = render_template(
            "directory.html",
            site=_site_context(site),
            origin=origin,
            everything=feeds[0],
            query=query,
            sections=[
                ("topics", "Topics", group_by_letter(f for f in shown if f.kind == "topics")),
                (
                    "providers",
                    "Providers",
                    group_by_letter(f for f in shown if f.kind == "providers"),
                ),
            ],
            totals={"topics": len(site.catalog.topics), "providers": len(site.catalog.providers)},
            alternates=alternates(feeds[0], origin),
            choices=_choices(feeds),
        )
        return prepare(html.encode("utf-8"), _newest(site), HTML, site.cache_control)

    # A search (`?q=`) is cached by its normalised words, by this worker only: clients
    # choose those keys without bound, and a search is cheap to render again elsewhere.
    key = page_key(site, "directory", origin, query)
    return send(site.cache.get_or_render(key, render, shared=not query))


@blueprint.route("/<any(topics, providers):kind>/<slug>")
def feed_page(kind: str, slug: str) -> Response:
    site = current_site()
    origin = base_url(site)
    limit = parse_limit(site.settings.default_items, site.settings.max_items)
    try:
        selection = site.selection(kind, slug)
    except UnknownFeed:
        raise NotFound(f"no {kind[:-1]} '{slug}'; see / for every feed") from None
    feed = listing.listing(site.catalog, selection)

    def render() -> Rendered:
        html = render_template(
            "feed.html",
            site=_site_context(site),
            origin=origin,
            feed=feed,
            articles=selection.articles[:limit],
            alternates=alternates(feed, origin),
        )
        modified = feed.newest or EPOCH
        return prepare(html.encode("utf-8"), modified, HTML, site.cache_control)

    key = page_key(site, "page", kind, slug, origin, str(limit))
    return send(site.cache.get_or_render(key, render))


@blueprint.route("/feeds.opml", methods=FEED_METHODS)
def opml_export() -> Response:
    if request.method == "OPTIONS":
        return preflight()
    site = current_site()
    origin = base_url(site)
    extension = request.args.get("format", "rss")
    if extension not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}")

    def render() -> Rendered:
        feeds = listing.listings(site.catalog, *_titles(site))
        title = f"{site.settings.site_title}: every feed ({FORMAT_LABELS[extension]})"
        body = opml.build(feeds, origin, extension, title, _newest(site))
        return prepare(body, _newest(site), OPML_TYPE, site.cache_control)

    return send(site.cache.get_or_render(page_key(site, "opml", origin, extension), render))


@blueprint.route(f"/<any({', '.join(ASSETS)}):name>", methods=FEED_METHODS)
def asset(name: str) -> Response:
    """The feeds' XSLT and the one stylesheet that pages and transformed feeds share."""
    if request.method == "OPTIONS":
        return preflight()
    site = current_site()
    # The XSLT links the site's pages, so it is a template: under a base URL with a path,
    # its links carry that path too.
    templated = name == STYLESHEET_PATH.lstrip("/")
    path = (TEMPLATE_DIR if templated else STATIC_DIR) / name

    def render() -> Rendered:
        modified = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
        body = (
            render_template(name, prefix=request.script_root).encode("utf-8")
            if templated
            else path.read_bytes()
        )
        return prepare(body, modified, ASSETS[name], site.cache_control)

    return send(site.cache.get_or_render(page_key(site, "asset", name), render))


def _choices(feeds: list[Listing]) -> dict[str, list[tuple[str, str]]]:
    """The (slug, name) options of the custom feed form's lists, sorted as listed."""
    ordered = sorted(feeds[1:], key=listing.sort_key)
    return {
        kind: [(feed.selection.slug or "", feed.name) for feed in ordered if feed.kind == kind]
        for kind in ("topics", "providers")
    }


def matches(feed: Listing, query: str) -> bool:
    """The filter: every word of the query appears in the feed's name or slug."""
    haystack = f"{feed.name} {feed.selection.slug or ''}".casefold()
    return all(word in haystack for word in query.casefold().split())


def group_by_letter(feeds: Iterable[Listing]) -> list[Group]:
    """Feeds sorted by name, in groups by initial (A-Z, accents folded; anything else `#`)."""
    groups: dict[str, list[Listing]] = {}
    for feed in sorted(feeds, key=listing.sort_key):
        groups.setdefault(initial(feed.name), []).append(feed)
    return sorted(groups.items(), key=lambda group: (group[0] == OTHER, group[0]))


def initial(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.strip()[:1]).upper()[:1]
    return folded if "A" <= folded <= "Z" else OTHER


def alternates(feed: Listing, origin: str) -> list[dict[str, str]]:
    """Autodiscovery links (and the subscribe box) for one feed, in every format."""
    return [
        {
            "extension": extension,
            "label": FORMAT_LABELS[extension],
            "title": f"{feed.selection.title} ({FORMAT_LABELS[extension]})",
            "type": fmt.mime_type.split(";", 1)[0],
            "href": feed.feed_url(origin, extension),
        }
        for extension, fmt in FORMATS.items()
    ]


@blueprint.context_processor
def formats() -> dict[str, dict[str, str]]:
    return {"formats": FORMAT_LABELS}


@blueprint.app_template_filter("day")
def day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%-d %b %Y") if moment else "never"


blueprint.add_app_template_filter(rfc3339, "iso")  # <time datetime>: as the feeds write it


def _query() -> str:
    return " ".join(request.args.get("q", "")[:MAX_QUERY].split())


def _titles(site: Site) -> tuple[str, str]:
    return site.settings.site_title, site.settings.site_description


def _site_context(site: Site) -> dict[str, str]:
    title, description = _titles(site)
    return {"title": title, "description": description}


def _newest(site: Site) -> datetime:
    return site.catalog.articles[0].published if site.catalog.articles else EPOCH


def page_key(site: Site, *parts: str) -> str:
    """A page's cache key: its parts in this index version."""
    return cache_key(site.catalog.version, "pages", *parts)

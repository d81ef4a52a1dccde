"""Query strings of fixed documents: only the parameters a document reads, else a 301.

Every distinct query string of a feed, page or asset is its own fast-path entry and cache
key, so `/feeds/all.rss?x=1`, `?x=2`, … would each cost a full-size entry. Feed URLs are
pasted with trackers (`utm_source=…`) and readers follow a permanent redirect (many store
the new URL), so a query with anything else is sent, once and cacheably, to the same URL
with only the parameters the document reads. Nothing is rendered for it.
"""

from __future__ import annotations

from urllib.parse import quote, unquote_plus

from flask import Response, request

from feeds.http.custom import moved

# Flask endpoint: the parameters its documents read. Custom feeds have their own canonical
# form (feeds.http.custom); other endpoints are not cached.
KNOWN_PARAMETERS: dict[str, frozenset[str]] = {
    "feeds.feed": frozenset({"limit"}),  # archive pages refuse limit with a 400
    "pages.feed_page": frozenset({"limit"}),
    "pages.directory": frozenset({"q"}),
    "pages.opml_export": frozenset({"format"}),
    "pages.asset": frozenset(),
}
REDIRECTED_METHODS = frozenset({"GET", "HEAD"})  # a preflight must not be redirected


def known_query(query: str, known: frozenset[str]) -> str:
    """`query` with only the pairs whose name is known, in their order and spelling."""
    return "&".join(
        pair for pair in query.split("&") if pair and unquote_plus(pair.split("=", 1)[0]) in known
    )


def redirect_unknown_parameters() -> Response | None:
    """before_request: a 301 to the URL without the parameters the document does not read."""
    known = KNOWN_PARAMETERS.get(request.endpoint or "")
    if known is None or request.method not in REDIRECTED_METHODS:
        return None
    query = request.environ.get("QUERY_STRING", "")
    kept = known_query(query, known)
    if kept == query:
        return None
    path = quote(request.script_root + request.path, safe="/:@!$&'()*+,;=-._~")
    return moved(f"{path}?{kept}" if kept else path)

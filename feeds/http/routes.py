"""The HTTP layer: routes, headers and errors. Thin: everything else happens in `Site`."""

from __future__ import annotations

import os
import re

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

from feeds.cache.rendered import COMPRESSIONS, Rendered
from feeds.http.responses import CORS_HEADERS
from feeds.http.served import current, current_site
from feeds.index.indexer import write_problem
from feeds.index.reader import NotReady
from feeds.index.search import CostlyFilter
from feeds.publish.selection import UnknownFeed
from feeds.publish.urls import parse_feed_path
from feeds.render import FORMATS
from feeds.renders import CLIENT, Busy, pause
from feeds.site import Site

blueprint = Blueprint("feeds", __name__)
FEED_METHODS = ["GET", "HEAD", "OPTIONS"]
_LIMIT = re.compile(r"[0-9]{1,7}")
RETRY_AFTER_SECONDS = 5


@blueprint.before_app_request
def take_turns() -> None:
    """Name the client, and let the worker serve its other connections first.

    Renders are shared out per client address (`feeds.renders`); it is never logged.
    gevent's server reads a kept-alive connection's next request without yielding when
    it has already arrived, so a client that asks again at once (a 503 loop) kept a
    worker to itself: a reader's cached feed waited 0.34 s (p50) behind 64 such
    connections asking for bad filters, 0.10 s with this pause. Cached answers (the fast
    path) skip it and cost nothing more.
    """
    CLIENT.set(request.remote_addr or "unknown")
    pause()


@blueprint.route("/feeds/<path:rest>", methods=FEED_METHODS)
def feed(rest: str) -> Response:
    """Current feeds (`/feeds/all.rss`, `/feeds/topics/ai.atom`) and their archive pages."""
    address = parse_feed_path(f"/feeds/{rest}")
    if address is None:
        raise NotFound("feed URLs look like /feeds/all.rss or /feeds/topics/<slug>.atom")
    if address.extension not in FORMATS:
        raise NotFound(f"unknown format .{address.extension}; try .{', .'.join(FORMATS)}")
    if request.method == "OPTIONS":
        return preflight()
    site = current_site()
    try:
        selection = site.selection(address.kind, address.slug)
        if address.page is None:
            limit = parse_limit(site.settings.default_items, site.settings.max_items)
            return send(site.feed(selection, address.extension, limit, base_url(site)))
        if "limit" in request.args:
            raise BadRequest("archive pages have a fixed size; limit does not apply")
        page = site.archive_page(selection, address.extension, address.page, base_url(site))
        return send(page)
    except UnknownFeed as unknown:
        raise NotFound(f"{unknown}; see / for every feed") from None


def send(rendered: Rendered) -> Response:
    """Answer with a rendered document, and let the fast path answer the same request next."""
    answers = current().fast_path.remember(request.environ, rendered)
    answer = answers.answer(request.environ)
    return Response(answer.body, answer.status, answer.headers)


def parse_limit(default: int, maximum: int) -> int:
    values = request.args.getlist("limit")
    if not values:
        return default
    if len(values) > 1:
        raise BadRequest("limit is given more than once")
    if not _LIMIT.fullmatch(values[0]) or not 1 <= int(values[0]) <= maximum:
        raise BadRequest(f"limit must be a whole number from 1 to {maximum}")
    return int(values[0])


def base_url(site: Site) -> str:
    """The configured public origin, else the one this request came to (a served host name:
    `feeds.http.edge` answered every other with a 400)."""
    if site.settings.base_url:
        return site.settings.base_url
    if not request.host:  # werkzeug empties a Host it cannot use
        raise BadRequest("the Host header is not a valid host name")
    return request.host_url.rstrip("/")


def preflight() -> Response:
    """CORS preflight: any origin may read feeds with conditional requests."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    response.headers.extend(CORS_HEADERS)
    response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "If-None-Match, If-Modified-Since"
    response.headers["Access-Control-Max-Age"] = "86400"
    response.headers["Allow"] = "GET, HEAD, OPTIONS"
    return response


@blueprint.route("/healthz")
def healthz() -> Response:
    site = current_site()
    try:
        view = site.catalog
    except NotReady as progress:
        # No index yet: if none can be written either, say why instead of "indexing".
        problem = write_problem(site.reader.path)
        status = {"status": "unavailable", "reason": problem} if problem else {"status": "indexing"}
        response = jsonify(**status, indexed=progress.indexed, files=progress.files)
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    else:
        response = jsonify(
            status="ok",
            corpus_version=view.version,
            articles=len(view.articles),
            **view.counts(),
            cache={
                "worker_pid": os.getpid(),
                **site.cache.stats,
                "renders_in_flight": site.cache.gate.in_flight,
                "compressions": dict(COMPRESSIONS),
                "entries": len(site.cache.local),
                "fast_path_entries": len(current().fast_path.answers()),
            },
        )
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.app_errorhandler(NotReady)
def not_ready(progress: NotReady) -> Response:
    """Before the first complete index: a 503 that says how far indexing has come."""
    return _unavailable(f"the corpus is being indexed ({progress}); try again soon")


@blueprint.app_errorhandler(CostlyFilter)
def costly_filter(error: CostlyFilter) -> Response:
    """A custom filter stopped at its time bound: the worker was answering no one else."""
    return _unavailable(
        f"this filter is too costly now ({error}); narrow it with a topic or a provider,"
        f" or try again in {RETRY_AFTER_SECONDS} s"
    )


@blueprint.app_errorhandler(Busy)
def busy(error: Busy) -> Response:
    """Over this worker's render bound: a quick 503, so no client's renders pile up."""
    return _unavailable(
        f"this server is busy rendering other documents; try again in {error.retry_after} s",
        error.retry_after,
    )


def _unavailable(reason: str, retry_after: int = RETRY_AFTER_SECONDS) -> Response:
    response = Response(
        f"503 Service Unavailable: {reason}\n", 503, content_type="text/plain; charset=utf-8"
    )
    response.headers["Retry-After"] = str(retry_after)
    response.headers["Cache-Control"] = "no-store"
    response.headers.extend(CORS_HEADERS)
    return response


@blueprint.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """Every client error as one short line of text, with the headers werkzeug chose (Allow)."""
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    body = f"{error.code} {error.name}: {error.description}\n"
    response = Response(body, error.code, headers, content_type="text/plain; charset=utf-8")
    response.headers.extend(CORS_HEADERS)
    return response

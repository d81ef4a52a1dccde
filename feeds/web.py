"""The HTTP layer: routes, headers and errors. Thin: everything else happens in `Site`."""

from __future__ import annotations

import os
import re

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

from feeds.render import FORMATS
from feeds.responses import CORS_HEADERS, feed_answer
from feeds.selection import UnknownFeed
from feeds.site import Site

blueprint = Blueprint("feeds", __name__)
FEED_METHODS = ["GET", "HEAD", "OPTIONS"]
_LIMIT = re.compile(r"[0-9]{1,7}")


def current_site() -> Site:
    return current_app.extensions["feeds"]


@blueprint.route("/feeds/all.<extension>", methods=FEED_METHODS)
def all_feed(extension: str) -> Response:
    return _feed("all", None, extension)


@blueprint.route("/feeds/<any(topics, providers):kind>/<path:name>", methods=FEED_METHODS)
def slug_feed(kind: str, name: str) -> Response:
    slug, dot, extension = name.rpartition(".")
    if not dot:
        raise NotFound(f"feed URLs end in .{', .'.join(FORMATS)}")
    return _feed(kind, slug, extension)


def _feed(kind: str, slug: str | None, extension: str) -> Response:
    if extension not in FORMATS:
        raise NotFound(f"unknown format .{extension[:20]}; try .{', .'.join(FORMATS)}")
    if request.method == "OPTIONS":
        return preflight()
    site = current_site()
    limit = parse_limit(site.settings["DEFAULT_ITEMS"], site.settings["MAX_ITEMS"])
    try:
        selection = site.selection(kind, slug)
    except UnknownFeed:
        raise NotFound(f"no {kind[:-1]} '{slug}'; see / for every feed") from None
    rendered = site.feed(selection, extension, limit, base_url(site))
    site.fast_path.remember(request.environ, rendered)
    answer = feed_answer(rendered, request.environ, site.fast_path.cache_control)
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
    """The configured public origin, else the one this request came to."""
    return site.settings["BASE_URL"] or request.host_url.rstrip("/")


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
    response = jsonify(
        status="ok",
        corpus_version=site.catalog.version,
        articles=len(site.catalog.articles),
        **site.report.as_dict(),
        cache={"worker_pid": os.getpid(), **site.cache.stats},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """Every client error as one short line of text, with the headers werkzeug chose (Allow)."""
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    body = f"{error.code} {error.name}: {error.description}\n"
    response = Response(body, error.code, headers, content_type="text/plain; charset=utf-8")
    response.headers.extend(CORS_HEADERS)
    return response

"""`/metrics`, `/stats` and `/stats.json`: for the operator and the publisher, not the world.

They answer clients on loopback that came through no proxy, or requests that carry
`Authorization: Bearer <FEEDS_STATS_TOKEN>`; anyone else gets the 404 of a page that does
not exist. A request with `X-Forwarded-For` or `Forwarded` came through a proxy on this
host, so its loopback socket address says nothing about who sent it. A proxy that forwards
no address still passes the public `Host`: tokenless access also needs a loopback name in
`Host` (`localhost`, `127.0.0.1`, `[::1]`), as a local client sends.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, Response, jsonify, render_template, request
from werkzeug.exceptions import NotFound

from feeds import metrics
from feeds.http.edge import is_loopback_address, is_loopback_host
from feeds.http.served import current, current_site
from feeds.stats.recorder import RETRY_AFTER_SECONDS, Recorder
from feeds.stats.subscribers import HISTORY_DAYS, FeedStats, StoreUnavailable
from feeds.stores import STORE_ERRORS

blueprint = Blueprint("stats", __name__, template_folder="templates")

PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")
SORT_KEYS = {
    "path": lambda s: s.path,
    "subscribers": lambda s: s.subscribers,
    "aggregators": lambda s: sum(s.aggregators.values()),
    "direct": lambda s: s.direct,
}
CHART_WIDTH, CHART_HEIGHT = 270, 48


def recorder() -> Recorder:
    return current().runtime.recorder


def allowed(environ: dict, token: str) -> bool:
    """Loopback address and `Host` and no proxy header, or the right bearer token."""
    given = environ.get("HTTP_AUTHORIZATION", "")
    if token and given.startswith("Bearer "):
        return hmac.compare_digest(given.removeprefix("Bearer ").encode(), token.encode())
    if any(name in environ for name in PROXY_HEADERS) or not is_loopback_host(environ):
        return False
    return is_loopback_address(environ.get("REMOTE_ADDR", ""))


@blueprint.before_request
def only_for_the_operator() -> None:
    if not allowed(request.environ, current_site().settings.stats_token):
        raise NotFound("the requested URL was not found on the server")


@blueprint.after_request
def private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.errorhandler(StoreUnavailable)
def store_unavailable(_: StoreUnavailable) -> Response:
    """A store that is down or silent: a quick 503, never a hang or a 500."""
    response = Response(
        "subscriber counts are unavailable: their store does not answer; try again shortly\n",
        503,
        content_type="text/plain; charset=utf-8",
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@blueprint.route("/metrics")
def prometheus_metrics() -> Response:
    current().observer.requests.flush()  # this worker's last counts; others' are at most 1 s old
    body = metrics.exposition(scrape_values)
    return Response(body, 200, content_type=metrics.CONTENT_TYPE)


def scrape_values() -> dict:
    site = current_site()
    values: dict = metrics.index_values(site)
    values["subscribers"] = {s.path: s.subscribers for s in recorder().report()}
    try:
        values["feeds_websub_subscriptions"] = current().runtime.hub.get().count()
    except STORE_ERRORS:
        raise StoreUnavailable from None
    return values


@blueprint.route("/stats.json")
def stats_json() -> Response:
    return jsonify(feeds=[stats.as_json() for stats in recorder().report()])


@blueprint.route("/stats")
def stats_page() -> Response:
    sort = request.args.get("sort", "subscribers")
    if sort not in SORT_KEYS:
        sort = "subscribers"
    descending = request.args.get("order", "desc" if sort != "path" else "asc") == "desc"
    rows = sorted(recorder().report(), key=SORT_KEYS[sort], reverse=descending)
    today = datetime.now(UTC).date()
    site = current_site()
    html = render_template(
        "stats.html",
        site={"title": site.settings.site_title, "description": ""},
        origin="",
        alternates=[],
        feeds=[(stats, chart(stats, today)) for stats in rows],
        sort=sort,
        descending=descending,
        days=HISTORY_DAYS,
        total=sum(stats.subscribers for stats in rows),
    )
    return Response(html, 200, content_type="text/html; charset=utf-8")


@dataclass(frozen=True, slots=True)
class Chart:
    """A feed's last HISTORY_DAYS days as SVG coordinates, drawn by the template."""

    line: str  # polyline points
    area: str  # the polygon under the line
    peak: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def chart(stats: FeedStats, today: date) -> Chart:
    """One point per day (days without a count are 0), scaled to the feed's own peak."""
    counts = dict(stats.history)
    first = today - timedelta(days=HISTORY_DAYS - 1)
    values = [counts.get((first + timedelta(days=i)).isoformat(), 0) for i in range(HISTORY_DAYS)]
    peak = max(values) or 1
    step = CHART_WIDTH / (HISTORY_DAYS - 1)
    top = 4  # room for the line's width at the peak
    points = [
        (round(i * step, 1), round(CHART_HEIGHT - (CHART_HEIGHT - top) * v / peak, 1))
        for i, v in enumerate(values)
    ]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"0,{CHART_HEIGHT} {line} {CHART_WIDTH},{CHART_HEIGHT}"
    return Chart(line, area, max(values))

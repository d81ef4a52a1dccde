"""A WSGI layer in front of Flask that answers repeat requests for rendered feeds.

Flask's routing and request objects cost about a third of the throughput for a cached
feed. Once the Flask view has answered a feed request, the exact request (scheme, host,
path, query) is remembered with its rendered bytes; the same request later is answered
here with the same `feed_answer` the view uses. Anything else (first requests, errors,
other methods, other pages) goes through Flask untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from feeds.cache import TIER, LocalLRU, Rendered
from feeds.index.reader import NotReady
from feeds.responses import feed_answer

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]
STATUS_LINES = {code: f"{code} {HTTPStatus(code).phrase}" for code in (200, 304)}


def request_key(environ: dict) -> str:
    """Everything about a request that can change a feed's bytes."""
    return "\n".join(
        (
            environ.get("wsgi.url_scheme", ""),
            environ.get("HTTP_HOST", ""),
            environ.get("SCRIPT_NAME", ""),
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
        )
    )


class FastPath:
    """Remembered feed requests of one view of the index; a committed change starts a new one."""

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.answers = LocalLRU(capacity, max_bytes)

    def remember(self, environ: dict, rendered: Rendered) -> None:
        self.answers.put(request_key(environ), rendered)


def fast_path_middleware(app: WSGIApp, current: Callable[[], FastPath]) -> WSGIApp:
    def serve(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method in {"GET", "HEAD"}:
            try:
                fast_path = current()
            except NotReady:  # no index yet: Flask answers 503
                return app(environ, start_response)
            rendered = fast_path.answers.get(request_key(environ))
            if rendered is not None:
                TIER.set("fast")
                answer = feed_answer(rendered, environ)
                start_response(STATUS_LINES[answer.status], answer.headers)
                return [b""] if method == "HEAD" else [answer.body]
        return app(environ, start_response)

    return serve

"""The answers to repeat requests for rendered feeds, found without Flask.

Flask's routing and request objects cost about a third of the throughput for a cached
feed. Once the Flask view has answered a feed request, the exact request (scheme, host,
path, query) is remembered with its rendered bytes; the same request later is answered
with the same `Answers` the view used, by the outermost WSGI layer
(`feeds.http.observe`). Anything else (first requests, errors, other methods, other
pages) goes through Flask untouched, except that a client whose every render slot is
taken (`feeds.renders`) gets its 503 for a new query right here: a client looping on
503s then costs the worker about what a cached answer costs, not a Flask request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from feeds.cache.lru import LocalLRU
from feeds.cache.rendered import Rendered
from feeds.http.responses import CORS_HEADERS, Answer, Answers, security_headers
from feeds.index.reader import NotReady
from feeds.renders import RETRY_AFTER_SECONDS, RenderGate, pause

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]
STATUS_LINES = {code: f"{code} {HTTPStatus(code).phrase}" for code in (200, 304, 400, 503)}
CACHED_METHODS = frozenset({"GET", "HEAD"})
_BUSY_BODY = (
    "503 Service Unavailable: this client's renders are all in flight; "
    f"try again in {RETRY_AFTER_SECONDS} s\n"
).encode("ascii")
BUSY = Answer(
    503,
    [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Retry-After", str(RETRY_AFTER_SECONDS)),
        ("Cache-Control", "no-store"),
        *CORS_HEADERS,
        *security_headers("text/plain"),
        ("Content-Length", str(len(_BUSY_BODY))),
    ],
    _BUSY_BODY,
)


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


def path_key(environ: dict) -> str:
    """The same under `FEEDS_BASE_URL`, where links never follow the scheme or `Host`: each
    port of a served name (`localhost:1`, `:2`, …) would otherwise be an entry of its own."""
    return "\n".join(
        (
            environ.get("SCRIPT_NAME", ""),
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
        )
    )


class FastPath:
    """Remembered feed requests of the current view of the index.

    A committed change gives a new view, and the remembered answers of the old one are
    dropped; what the change did not touch is still in the render cache, so only the
    feeds it touched are rendered again.
    """

    def __init__(
        self,
        current_view: Callable[[], object],
        capacity: int,
        max_bytes: int,
        gate: RenderGate | None = None,
        by_origin: bool = True,
    ) -> None:
        self._current_view = current_view
        self._gate = gate
        self._key = request_key if by_origin else path_key
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._view: object = None
        self._answers: LocalLRU[Answers] = LocalLRU(capacity, max_bytes)

    def answers(self) -> LocalLRU[Answers]:
        """The answers of the current view (raises NotReady before the first index)."""
        view = self._current_view()
        if view is not self._view:
            self._answers = LocalLRU(self._capacity, self._max_bytes)
            self._view = view
        return self._answers

    def remember(self, environ: dict, rendered: Rendered) -> Answers:
        """The document's answers, kept for this request's next asking."""
        answers = Answers(rendered)
        self.answers().put(self._key(environ), answers)
        return answers

    def lookup(self, environ: dict) -> Answer | None:
        """The answer to a GET or HEAD remembered for this view; None: Flask must answer."""
        if environ.get("REQUEST_METHOD") not in CACHED_METHODS:
            return None
        try:
            answers = self.answers().get(self._key(environ))
        except NotReady:  # no index yet: Flask answers 503
            return None
        if answers is not None:
            return answers.answer(environ)
        # A query is what clients vary to ask for new renders; without one, Flask answers.
        if (
            self._gate is not None
            and environ.get("QUERY_STRING")
            and not self._gate.has_share(environ.get("REMOTE_ADDR") or "unknown")
        ):
            pause()  # its next request may be read at once: let the others in first
            return BUSY
        return None

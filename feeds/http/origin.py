"""Where links point: nothing a client sends may change the links cached for others.

Links in feeds and pages are absolute, and rendered bytes are cached for every client.
So the path prefix (`SCRIPT_NAME`) comes only from the configured `FEEDS_BASE_URL`,
whatever header a server took it from. Without `FEEDS_BASE_URL` links follow the request's
scheme and `Host`, which are part of every key; only served names get that far
(`feeds.http.edge`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


@lru_cache(maxsize=8)
def script_name(base_url: str) -> str:
    """The path prefix of the public origin (`/news` in `https://example.org/news`), or ``."""
    return urlsplit(base_url).path.rstrip("/")


def pinned_script_name(app: WSGIApp, base_url: Callable[[], str]) -> WSGIApp:
    """Set every request's `SCRIPT_NAME` to the path of the configured base URL.

    gunicorn takes `SCRIPT_NAME` from a header of trusted peers (loopback by default), so
    one request could otherwise change the links of pages cached for everyone. The base
    URL is read per request: a reload may change it.
    """

    def serve(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        environ["SCRIPT_NAME"] = script_name(base_url())
        return app(environ, start_response)

    return serve

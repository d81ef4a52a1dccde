"""Where links point: nothing a client sends may change the links cached for others.

Links in feeds and pages are absolute, and rendered bytes are cached for every client.
So the path prefix (`SCRIPT_NAME`) comes only from the configured `FEEDS_BASE_URL`,
whatever header a server took it from, and without `FEEDS_BASE_URL` each worker renders
for a bounded number of request origins (scheme and `Host`), which are part of every key.
"""

from __future__ import annotations

import threading
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


class Origins:
    """The request origins one worker renders for: the first `capacity` it sees.

    Every origin is its own set of cached documents, so each new `Host` costs a render of
    whatever it asks for. Admitting a fixed set (not a least-recently-used one, which a
    flood of new names would keep rendering for) bounds that work per worker.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, origin: str) -> bool:
        with self._lock:
            if origin in self._known:
                return True
            if len(self._known) >= self.capacity:
                return False
            self._known.add(origin)
            return True

"""What every answer passes at the edge: the `Host` check and the security headers.

Links are built from the request's `Host` when `FEEDS_BASE_URL` is not set, and every
host name is its own set of rendered documents. So only configured names are served
(Django's `ALLOWED_HOSTS`): a junk `Host` costs a short 400, before the fast path or any
render, and cannot crowd real names out. The check sits in front of the fast path, in
the same call, so a cached answer is never sent for a name that is not served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from feeds.http.responses import NOSNIFF, Answer, security_headers

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
UNCHECKED_PATHS = frozenset({"/healthz"})  # load balancers probe by address; no links in it


def add_security_headers(response: Any) -> Any:
    """Flask's after_request: answers not built by `feed_answer` (errors, redirects, stats)."""
    for name, value in security_headers(response.content_type or ""):
        response.headers.setdefault(name, value)
    return response


@lru_cache(maxsize=1024)
def host_name(host: str) -> str | None:
    """The name of a `Host` value without its port, lower-cased; None when malformed."""
    host = host.lower()
    if host.startswith("["):
        name, bracket, port = host.partition("]")
        name += bracket
    else:
        name, _, port = host.partition(":")
        port = f":{port}" if port else ""
    if port and not (port.startswith(":") and port[1:].isdigit() and len(port) <= 6):
        return None
    return name or None


def is_loopback_host(environ: Mapping[str, Any]) -> bool:
    """The request names this host by a loopback name, as a proxy in front would not."""
    return host_name(environ.get("HTTP_HOST", "")) in LOOPBACK_NAMES


def served_names(allowed: Iterable[str], base_url: str) -> frozenset[str]:
    """`FEEDS_ALLOWED_HOSTS` and the host of `FEEDS_BASE_URL`."""
    names = set(allowed)
    if base_url:
        names.add(host_name(urlsplit(base_url).netloc.rpartition("@")[2]) or "")
    return frozenset(names - {""})


def bad_request(reason: str) -> Answer:
    """A short plain-text 400 that no cache keeps."""
    body = f"400 Bad Request: {reason}\n".encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        NOSNIFF,
    ]
    return Answer(400, headers, body)


MISSING_HOST = bad_request("a Host header is required")


def refusal(host: str) -> Answer:
    return bad_request(
        f"this server does not answer for the host {host[:100]!a}; "
        "its operator can add the name to FEEDS_ALLOWED_HOSTS"
    )


def checking_hosts(
    names: frozenset[str], cached: Callable[[dict], Answer | None]
) -> Callable[[dict], Answer | None]:
    """`cached` (the fast path's lookup) behind the host check: a 400 for names not served.

    A served `Host` is lower-cased in place, so `LOCALHOST` and `localhost` are one key.
    """

    def answer_first(environ: dict) -> Answer | None:
        host = environ.get("HTTP_HOST")
        if host is None:
            return None if environ.get("PATH_INFO") in UNCHECKED_PATHS else MISSING_HOST
        if host_name(host) not in names and environ.get("PATH_INFO") not in UNCHECKED_PATHS:
            return refusal(host)
        environ["HTTP_HOST"] = host.lower()
        return cached(environ)

    return answer_first

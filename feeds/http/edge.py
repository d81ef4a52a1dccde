"""What every answer passes at the edge: the `Host` check and the security headers.

Links are built from the request's `Host` when `FEEDS_BASE_URL` is not set, and every
host name is its own set of rendered documents. So only configured names are served
(Django's `ALLOWED_HOSTS`): a junk `Host` costs a short 400, before the fast path or any
render, and cannot crowd real names out. The check sits in front of the fast path, in
the same call, so a cached answer is never sent for a name that is not served.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from feeds.http.responses import NOSNIFF, Answer, security_headers

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
UNCHECKED_PATHS = frozenset({"/healthz"})  # load balancers probe by address; no links in it


def add_security_headers(response: Any) -> Any:
    """Flask's after_request: answers not built by `Answers` (errors, redirects, stats)."""
    for name, value in security_headers(response.content_type or ""):
        response.headers.setdefault(name, value)
    return response


@lru_cache(maxsize=1024)
def split_host(host: str) -> tuple[str, str] | None:
    """(name, port) of a `Host` value, lower-cased, port `` when absent; None when malformed."""
    host = host.lower()
    if host.startswith("["):
        name, bracket, rest = host.partition("]")
        name += bracket
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        name, _, port = host.partition(":")
    if (port and not (port.isdigit() and len(port) <= 5)) or not name:
        return None
    return name, port


def host_name(host: str) -> str | None:
    """The name of a `Host` value without its port, lower-cased; None when malformed."""
    parts = split_host(host)
    return parts[0] if parts else None


@lru_cache(maxsize=1024)
def is_loopback_address(address: str) -> bool:
    """A peer on this host (`REMOTE_ADDR`); a Unix socket's empty address is not."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a Unix socket, or no address at all
        return False


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


def other_port(host: str) -> Answer:
    return bad_request(
        f"this server answers for {host[:100]!a} on its own port only; "
        "its operator can set FEEDS_BASE_URL"
    )


def checking_hosts(
    names: frozenset[str], by_origin: bool, cached: Callable[[dict], Answer | None]
) -> Callable[[dict], Answer | None]:
    """`cached` (the fast path's lookup) behind the host check: a 400 for names not served.

    `by_origin` (no `FEEDS_BASE_URL`): links follow the `Host`, port included, so each port
    is a render of its own. A port other than the one the server listens on is then served
    to clients on this host only (a browser, a tunnel, a proxy), never to remote ones.
    A served `Host` is lower-cased in place, so `LOCALHOST` and `localhost` are one key.
    """

    def answer_first(environ: dict) -> Answer | None:
        host = environ.get("HTTP_HOST")
        if environ.get("PATH_INFO") in UNCHECKED_PATHS:
            return cached(environ)
        if host is None:
            return MISSING_HOST
        parts = split_host(host)
        if parts is None or parts[0] not in names:
            return refusal(host)
        port = parts[1]
        if (
            by_origin
            and port
            and port != environ.get("SERVER_PORT")
            and not is_loopback_address(environ.get("REMOTE_ADDR", ""))
        ):
            return other_port(host)
        environ["HTTP_HOST"] = host.lower()
        return cached(environ)

    return answer_first

"""The only way the hub reaches a callback: so a callback URL cannot aim the server at others.

Only http and https; the host is resolved once, every address must be public unless
private callbacks are allowed, and the connection goes to the address that was checked
(no second resolution, so DNS rebinding gains nothing). Redirects are not followed,
every socket operation times out, the whole exchange has a deadline, and at most a
few bytes of the answer are read.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

SOCKET_TIMEOUT_SECONDS = 5.0
TOTAL_SECONDS = 15.0
MAX_CALLBACK_LENGTH = 2048
READ_CAP_BYTES = 4096


class CallbackRefused(ValueError):
    """The callback URL is not one the hub will call; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, never empty
    address: str  # the checked IP address to connect to


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes  # at most READ_CAP_BYTES


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_url(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of an acceptable callback URL, without resolving it."""
    if len(url) > MAX_CALLBACK_LENGTH:
        raise CallbackRefused(f"hub.callback is longer than {MAX_CALLBACK_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CallbackRefused("hub.callback is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("hub.callback must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise CallbackRefused("hub.callback must not hold credentials or a fragment")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise CallbackRefused("hub.callback must not hold spaces or control characters")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def resolve(url: str, allow_private: bool) -> Target:
    """Check the URL and resolve its host; refused if any address is not public."""
    scheme, host, port, path = check_url(url)
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal needs no resolver
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise CallbackRefused(f"hub.callback host {host} does not resolve") from None
        addresses = [info[4][0] for info in infos]
    if not addresses:
        raise CallbackRefused(f"hub.callback host {host} does not resolve")
    if not allow_private and not all(is_public(a) for a in addresses):
        raise CallbackRefused(
            f"hub.callback host {host} is a loopback, private or reserved address"
        )
    return Target(scheme, host, port, path, addresses[0])


def with_query(path: str, params: dict[str, str]) -> str:
    return f"{path}{'&' if '?' in path else '?'}{urlencode(params)}"


def call(
    target: Target, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> Reply:
    """One request to the checked address; raises OSError or HTTPException on failure."""
    if target.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            target.host, target.port, timeout=SOCKET_TIMEOUT_SECONDS,
            context=ssl.create_default_context(),
        )  # fmt: skip
    else:
        connection = http.client.HTTPConnection(
            target.host, target.port, timeout=SOCKET_TIMEOUT_SECONDS
        )

    def connect(_address: object, timeout: float, source: object = None) -> socket.socket:
        return socket.create_connection((target.address, target.port), timeout)

    connection._create_connection = connect  # type: ignore[attr-defined]  # pin the address
    watchdog = threading.Timer(TOTAL_SECONDS, _abort, (connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(method, path, body=body, headers={**headers, "Connection": "close"})
        response = connection.getresponse()
        return Reply(response.status, response.read(READ_CAP_BYTES))
    finally:
        watchdog.cancel()
        connection.close()


def _abort(connection: http.client.HTTPConnection) -> None:
    """The deadline passed: unblock the exchange, whatever it is waiting for."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

"""The only way the hub reaches a callback: so a callback URL cannot aim the server at others.

Only http and https; the host is resolved once, every address must be public unless
private callbacks are allowed, and the connection goes to the address that was checked
(no second resolution, so DNS rebinding gains nothing). Redirects are not followed,
every socket operation times out, the whole exchange has a deadline that every read and
write checks, and at most a few bytes of the answer are read. `HostSlots` shares the
exchanges under way out by callback host.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

SOCKET_TIMEOUT_SECONDS = 5.0  # the longest wait for any one socket call
MAX_CALLBACK_LENGTH = 2048
READ_CAP_BYTES = 4096
RECV_BYTES = 16384

_T = TypeVar("_T")
_TLS = ssl.create_default_context()


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
        addresses = [str(info[4][0]) for info in infos]
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
    target: Target,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    total_seconds: float,
) -> Reply:
    """One request to the checked address, over within `total_seconds` whatever the peer
    sends; raises OSError (TimeoutError at the deadline) or HTTPException on failure."""
    deadline = time.monotonic() + total_seconds
    sock = socket.create_connection(
        (target.address, target.port), min(total_seconds, SOCKET_TIMEOUT_SECONDS)
    )
    channel = Channel(sock, deadline)
    try:
        if target.scheme == "https":
            channel.start_tls(target.host)
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                target.host, target.port, context=_TLS
            )
        else:
            connection = http.client.HTTPConnection(target.host, target.port)
        connection.sock = channel  # http.client never connects itself
        connection.request(method, path, body=body, headers={**headers, "Connection": "close"})
        response = connection.getresponse()
        return Reply(response.status, response.read(READ_CAP_BYTES))
    finally:
        sock.close()


class Channel:
    """A connection whose every read and write ends by one deadline.

    A watchdog that shuts the socket down misses reads once http.client has handed the
    socket to the response (`Connection: close` sets `connection.sock` to None), and a
    timeout per socket call never ends a peer that drips a byte a second. Here each socket
    call checks the deadline first and waits at most min(remaining, SOCKET_TIMEOUT_SECONDS),
    and TLS runs over memory buffers so that its reads pass through the same check. This
    holds under gevent and under plain threads alike.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.tls: ssl.SSLObject | None = None
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()

    def start_tls(self, host: str) -> None:
        self.tls = _TLS.wrap_bio(self._incoming, self._outgoing, server_hostname=host)
        self._tls_step(self.tls.do_handshake)

    def sendall(self, data: bytes) -> None:
        tls = self.tls
        if tls is None:
            self._send(data)
        else:
            self._tls_step(lambda: tls.write(data))

    def recv_into(self, buffer: memoryview, size: int = 0) -> int:
        size = size or len(buffer)
        tls = self.tls
        if tls is None:
            self._arm()
            return self.sock.recv_into(buffer, size)
        try:
            data = self._tls_step(lambda: tls.read(size))
        except ssl.SSLZeroReturnError:  # the peer closed TLS cleanly
            return 0
        buffer[: len(data)] = data
        return len(data)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        """What http.client reads the response from."""
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        """http.client closes its connection once the response holds the channel: the
        socket stays open until `call` has read the response and closes it."""

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the callback did not finish within the hub's deadline")
        self.sock.settimeout(min(remaining, SOCKET_TIMEOUT_SECONDS))

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._arm()
            view = view[self.sock.send(view) :]

    def _tls_step(self, step: Callable[[], _T]) -> _T:
        """Run one TLS operation, moving its bytes to and from the network until it is done."""
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                self._send(self._outgoing.read())
                self._arm()
                data = self.sock.recv(RECV_BYTES)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            self._send(self._outgoing.read())
            return result


class _Reader(io.RawIOBase):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self.channel.recv_into(memoryview(buffer).cast("B"))


def host_key(target: Target) -> str:
    """Who answers at this address, for sharing out exchanges: an IPv4 address or an IPv6
    /64 (one party's many names, ports and paths land on one key)."""
    ip = ipaddress.ip_address(target.address.split("%", 1)[0])
    if not isinstance(ip, ipaddress.IPv6Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


class HostSlots:
    """Exchanges under way in this worker: at most `per_host` with one host and `total`
    with all, so slow hosts can never hold every slot that others need."""

    def __init__(self, per_host: int, total: int) -> None:
        self.per_host, self.total = per_host, total
        self.busy: dict[str, int] = {}
        self.lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        with self.lock:
            taken = self.busy.get(key, 0)
            if taken >= self.per_host or sum(self.busy.values()) >= self.total:
                return False
            self.busy[key] = taken + 1
            return True

    def release(self, key: str) -> None:
        with self.lock:
            left = self.busy.pop(key) - 1
            if left:
                self.busy[key] = left

    def full(self) -> bool:
        with self.lock:
            return sum(self.busy.values()) >= self.total

"""The only way the hub reaches a callback: so a callback URL cannot aim the server at others.

Only http and https; the host is resolved once, every address must be public unless
private callbacks are allowed, and urllib3 connects to the address that was checked (no
second resolution, so DNS rebinding gains nothing) while TLS still sends the host name
for SNI and verifies the certificate against it. Redirects are not followed, every socket
operation times out, the whole exchange ends at one deadline, and at most a few bytes of
the answer are read. `HostSlots` shares the exchanges under way out by callback host.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from http.client import HTTPException
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

SOCKET_TIMEOUT_SECONDS = 5.0  # the longest wait for any one socket call
MAX_CALLBACK_LENGTH = 2048
READ_CAP_BYTES = 4096
USER_AGENT = "feeds-websub-hub"
# What `call` raises when an exchange fails: the socket's, http.client's and urllib3's.
CALL_ERRORS = (OSError, HTTPException, urllib3.exceptions.HTTPError)
TLS_CONTEXT = ssl.create_default_context()  # the system's CAs; host names checked


class CallbackRefused(ValueError):
    """The callback URL is not one the hub will call; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Callback:
    """A callback URL taken apart, with the address checked for it."""

    scheme: str
    host: str  # the name, for Host, SNI and the certificate check
    port: int
    path: str  # path and query, never empty
    address: str  # the checked IP address to connect to

    @property
    def authority(self) -> str:
        """The Host header, as http.client would write it for this URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


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
    """Scheme, host (ASCII), port and path of an acceptable callback URL, without resolving it."""
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
    try:  # the name as DNS, the Host header and SNI spell it
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise CallbackRefused("hub.callback host is not a valid host name") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def resolve(url: str, allow_private: bool) -> Callback:
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
    return Callback(scheme, host, port, path, addresses[0])


def with_query(path: str, params: dict[str, str]) -> str:
    return f"{path}{'&' if '?' in path else '?'}{urlencode(params)}"


def call(
    callback: Callback,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    total_seconds: float,
) -> Reply:
    """One request to the checked address, over within `total_seconds` whatever the peer
    sends; raises one of CALL_ERRORS (TimeoutError at the deadline) on failure."""
    timeout = min(total_seconds, SOCKET_TIMEOUT_SECONDS)
    connection: _Connection
    if callback.scheme == "https":
        connection = _TLSConnection(
            callback.address,
            callback.port,
            timeout=timeout,
            server_hostname=callback.host,
            ssl_context=TLS_CONTEXT,
        )
    else:
        connection = _Connection(callback.address, callback.port, timeout=timeout)
    watchdog = threading.Timer(total_seconds, connection.cut)
    watchdog.start()
    try:
        connection.request(
            method,
            path,
            body=body,
            headers={
                "Host": callback.authority,
                "User-Agent": USER_AGENT,
                **headers,
                "Connection": "close",
            },
            preload_content=False,
            decode_content=False,
        )
        response = connection.getresponse()
        try:
            reply = Reply(response.status, response.read(READ_CAP_BYTES))
        finally:
            response.close()
    except CALL_ERRORS as error:
        if connection.past_deadline:
            raise _late() from error
        raise
    finally:
        watchdog.cancel()
        watchdog.join()  # never running once `release` closes the duplicate it shuts down
        connection.release()
    if connection.past_deadline:  # a body read to its end because the socket was shut down
        raise _late()
    return reply


def _late() -> TimeoutError:
    return TimeoutError("the callback did not finish within the hub's deadline")


class _Connection(HTTPConnection):
    """urllib3's connection, holding a duplicate of its TCP socket for the deadline.

    A timeout per socket call never ends a peer that drips a byte a second, so at the
    deadline `cut` shuts the socket down, which ends any read or write on it, from any
    thread or greenlet. It shuts down a duplicate: TLS takes the socket it wraps over (the
    original object is then detached) and http.client lets go of it once the response
    holds it, but both still use the kernel socket that the duplicate names.
    """

    past_deadline = False
    _spare: socket.socket | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._spare = sock.dup()
        if self.past_deadline:  # `cut` ran while the socket connected
            self._shut()
        return sock

    def cut(self) -> None:
        self.past_deadline = True
        self._shut()

    def _shut(self) -> None:
        with contextlib.suppress(OSError):
            if self._spare is not None:
                self._spare.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        self.close()
        if self._spare is not None:
            self._spare.close()


class _TLSConnection(_Connection, HTTPSConnection):
    """The same over TLS: urllib3 verifies the certificate against `server_hostname`."""


def host_key(callback: Callback) -> str:
    """Who answers at this address, for sharing out exchanges: an IPv4 address or an IPv6
    /64 (one party's many names, ports and paths land on one key)."""
    ip = ipaddress.ip_address(callback.address.split("%", 1)[0])
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

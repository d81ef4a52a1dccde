"""The callback client through real sockets on loopback, in this process (plain threads:
the hub's tests in tests/test_websub.py run it under gunicorn's gevent workers).

TLS peers use a certificate made here with the openssl command, for a name that is never
resolved; the client's trust store is swapped for one that holds only that certificate.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from feeds.websub import client

NAME = "callback.example"
DEADLINE = 1.0


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
    names = ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run([*command.split(), *names, *files], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    return {name: certificate(folder, name) for name in (NAME, "other.example", "untrusted")}


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch, certificates: dict) -> None:
    """The client trusts the certificates for NAME and other.example, and no others."""
    context = ssl.create_default_context(cafile=str(certificates[NAME][0]))
    context.load_verify_locations(cafile=str(certificates["other.example"][0]))
    monkeypatch.setattr(client, "TLS_CONTEXT", context)


class Peer:
    """An HTTP(S) server on 127.0.0.1 that records what it was asked and answers `status`
    with `body` (and a Location header)."""

    def __init__(self, tls: tuple[Path, Path] | None = None, status: int = 200) -> None:
        self.requests: list[dict[str, str]] = []
        self.server_names: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append({"path": self.path, **dict(self.headers)})
                body = b"echo:" + self.path.encode() + b"x" * (1 << 20) * (status == 302)
                self.send_response(status)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            context.sni_callback = lambda _sock, name, _context: self.server_names.append(name)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.stop()


def test_tls_goes_to_the_checked_address_and_verifies_the_name(
    monkeypatch: pytest.MonkeyPatch, trusted: None, certificates: dict, peers: list[Peer]
) -> None:
    peers.append(peer := Peer(certificates[NAME]))
    real, lookups = socket.getaddrinfo, []

    def rebinding(host: str, port: object, *args: object, **kwargs: object) -> list:
        """NAME is loopback when checked, then moves to ::1, where nothing listens."""
        if host != NAME:
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "::1"
        return real(address, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    callback = client.resolve(f"https://{NAME}:{peer.port}/hook?id=1", allow_private=True)
    assert callback.address == "127.0.0.1"
    reply = client.call(callback, "GET", callback.path, None, {}, total_seconds=5)
    assert (reply.status, reply.body) == (200, b"echo:/hook?id=1")
    assert lookups == [NAME]  # resolved once, when it was checked
    assert peer.server_names == [NAME]  # SNI carries the name, not the address
    (request,) = peer.requests
    assert request["Host"] == f"{NAME}:{peer.port}"
    assert request["User-Agent"] == client.USER_AGENT


@pytest.mark.parametrize("served", ["other.example", "untrusted"])
def test_a_certificate_that_does_not_prove_the_name_is_refused(
    trusted: None, certificates: dict, peers: list[Peer], served: str
) -> None:
    peers.append(peer := Peer(certificates[served]))
    callback = client.Callback("https", NAME, peer.port, "/hook", "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        client.call(callback, "GET", callback.path, None, {}, total_seconds=5)
    assert peer.requests == []


def test_redirects_are_not_followed_and_at_most_the_cap_is_read(peers: list[Peer]) -> None:
    peers.append(peer := Peer(status=302))
    callback = client.resolve(f"http://127.0.0.1:{peer.port}/moved", allow_private=True)
    reply = client.call(callback, "GET", callback.path, None, {}, total_seconds=5)
    assert reply.status == 302
    assert len(reply.body) == client.READ_CAP_BYTES
    assert len(peer.requests) == 1


def test_private_addresses_are_refused_unless_allowed() -> None:
    with pytest.raises(client.CallbackRefused, match="loopback, private or reserved"):
        client.resolve("http://localhost:9/hook", allow_private=False)
    assert client.resolve("http://localhost:9/hook", allow_private=True).address in (
        "127.0.0.1",
        "::1",
    )


class Watchdog:
    """Stands in for the client's `threading.Timer`: records the deadline it was armed
    with and fires only when the test says, so no test waits on the wall clock."""

    armed: ClassVar[list[Watchdog]] = []

    def __init__(self, interval: float, function: Callable[[], None]) -> None:
        self.interval, self.function = interval, function
        self.cancelled = False

    def start(self) -> None:
        Watchdog.armed.append(self)

    def cancel(self) -> None:
        self.cancelled = True

    def join(self) -> None:
        pass


@pytest.mark.parametrize(
    ("scheme", "drip"),
    [
        ("https", b"\x16\x03\x03\x40\x00" + b"\x02" * 100),  # a server hello, a byte at a time
        ("http", b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100),  # headers that never end
    ],
)
def test_a_peer_that_drips_is_cut_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, scheme: str, drip: bytes
) -> None:
    """Per-socket timeouts never end a peer that keeps dripping: the exchange ends when the
    deadline's watchdog fires, with the deadline's error, and the peer sees the hang-up
    while it still had bytes to send."""
    monkeypatch.setattr(Watchdog, "armed", [])
    monkeypatch.setattr(client.threading, "Timer", Watchdog)
    listener = socket.create_server(("127.0.0.1", 0))
    sent, closed = [0], threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)  # the hello or the request
            conn.settimeout(0.2)
            for byte in drip:
                try:
                    conn.sendall(bytes([byte]))
                    sent[0] += 1
                    if conn.recv(1) == b"":
                        closed.set()
                        return
                except TimeoutError:
                    continue
                except OSError:
                    closed.set()
                    return

    threading.Thread(target=serve, daemon=True).start()
    callback = client.Callback(scheme, NAME, listener.getsockname()[1], "/", "127.0.0.1")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            client.call(callback, "GET", "/", None, {}, total_seconds=DEADLINE)
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    wait_until(lambda: sent[0] >= 5)  # the peer is dripping and the call goes on
    assert caller.is_alive() and not closed.is_set()
    (watchdog,) = Watchdog.armed
    assert watchdog.interval == DEADLINE  # armed with the whole exchange's deadline
    watchdog.function()  # the deadline comes
    caller.join(30)  # a hang guard: the cut ends the call at once
    assert len(outcome) == 1 and isinstance(outcome[0], TimeoutError), outcome
    assert "deadline" in str(outcome[0])
    assert closed.wait(30), "the peer saw the hang-up"
    assert sent[0] < len(drip), "cut while the peer still had bytes to send"
    listener.close()


def wait_until(done: Callable[[], bool], timeout: float = 30) -> None:
    """Polls `done`; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.01)

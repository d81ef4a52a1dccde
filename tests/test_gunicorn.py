"""How the Procfile's gunicorn runs: what several instances on one host share, what its
logs hold and what a start leaves behind."""

from __future__ import annotations

import os
import re
import socket
import stat
import time
from pathlib import Path

from tests.support import Server, start_server

CONTROL_SOCKET = re.compile(r"Control socket (disabled|listening at (\S+))")


def control_socket(server: Server, timeout: float = 10) -> str:
    """`disabled`, or the path this instance's control socket listens at."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = CONTROL_SOCKET.search(server.log())
        if match:
            return match[2] or match[1]
        time.sleep(0.05)
    raise AssertionError(f"no control socket line within {timeout}s:\n{server.log()}")


def test_two_instances_share_no_control_socket(server_factory, tmp_path: Path) -> None:
    """gunicorn's default is one socket per user: the second instance took over the first's."""
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": "", "FEEDS_LOG_LEVEL": "debug"}
    first, second = server_factory(**home), server_factory(**home)
    assert control_socket(first) == control_socket(second) == "disabled"
    assert not (tmp_path / ".gunicorn").exists()


def test_an_instance_can_have_its_own_control_socket(server_factory, tmp_path: Path) -> None:
    paths = [tmp_path / "one.ctl", tmp_path / "two.ctl"]
    servers = [server_factory(FEEDS_CONTROL_SOCKET=str(path)) for path in paths]
    for server, path in zip(servers, paths, strict=True):
        assert control_socket(server) == str(path)
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def send_from(address: str, server: Server, data: bytes) -> bytes:
    """Bytes sent as they are from a chosen loopback address; the start of the answer."""
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind((address, 0))
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(data)
        return sock.recv(200)


def test_no_client_address_or_raw_byte_reaches_the_log(server_factory) -> None:
    """gunicorn logged `Invalid request from ip=…` with the bytes the client sent, and its
    classic access log starts with the address."""
    server = server_factory(FEEDS_ACCESS_LOG="classic")
    client = "127.0.0.2"  # an address that is in no other line of the log
    for data in (
        b"G\xffT /feeds/all.rss HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /feeds/all.rss HTTP/9.9\r\nHost: localhost\r\n\r\n",
        b"GET /feeds/all.rss HTTP/1.1\r\nHost: localhost\r\nBad\x01Header: y\r\n\r\n",
    ):
        assert send_from(client, server, data).startswith(b"HTTP/1.1 400")
    normal = b"GET /feeds/all.rss HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    assert send_from(client, server, normal).startswith(b"HTTP/1.1 200")
    server.stop()
    log = server.log()
    assert log.count("Invalid request: ") == 3, log
    assert '"GET /feeds/all.rss HTTP/1.1" 200' in log
    assert client not in log
    assert log.isascii(), [line for line in log.splitlines() if not line.isascii()]


def test_a_start_and_stop_leave_no_folder_warning_or_traceback(tmp_path: Path) -> None:
    """Every start left /tmp/feeds-metrics-* (and feeds-cache-* with the filesystem cache)
    behind, and printed gevent's MonkeyPatchWarning once per worker."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = start_server({"TMPDIR": str(scratch), "FEEDS_CACHE_TYPE": "filesystem"})
    try:
        # The master makes both; the indexer process its own cache folder.
        made = {path.name.rsplit("-", 1)[0] for path in scratch.iterdir()}
        assert made == {"feeds-cache", "feeds-metrics"}
        for path in ("/feeds/all.rss", "/", "/metrics"):
            assert server.get(path).status_code == 200
        assert any((scratch / name).iterdir() for name in os.listdir(scratch))
    finally:
        server.stop(graceful=True)  # SIGTERM, as a platform stops it
    assert server.process.returncode == 0
    assert list(scratch.iterdir()) == []
    log = server.log()
    for word in ("Warning", "Traceback", "Exception ignored", "Error"):
        assert word not in log, log

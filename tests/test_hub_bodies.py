"""Malformed `POST /websub` bodies through the real gunicorn, sent as raw bytes.

Bad chunking, a body shorter than its Content-Length, one over the limit and a form that
is not one are each a 4xx with one short line, and one log line that quotes none of the
bytes sent (each case carries a marker that must never reach the log).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support import SEEDS, Server, start_server
from tests.test_websub import hub_settings

MARK = b"Qx7MARKx7Q"
HEAD = (
    b"POST /websub HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n"
)
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
CASES = {
    "chunk size not hex": (CHUNKED + b"zz" + MARK + b"\r\n\r\n", 400),
    "empty chunk size": (CHUNKED + b"zz\r\n\r\n", 400),
    "bad chunk terminator": (CHUNKED + b"5\r\nhub.m" + MARK + b"0\r\n\r\n", 400),
    "over-long chunk extension": (CHUNKED + b"5;" + MARK * 7000 + b"\r\nhub.m\r\n0\r\n\r\n", 400),
    "shorter than Content-Length": (HEAD + b"Content-Length: 100\r\n\r\nhub.mode=" + MARK, 400),
    "declared over the limit": (HEAD + b"Content-Length: 9000\r\n\r\n" + MARK, 413),
    "chunked over the limit": (CHUNKED + b"2400\r\n" + b"a" * 9206 + MARK + b"\r\n0\r\n\r\n", 413),
    "not UTF-8": (HEAD + b"Content-Length: 16\r\n\r\nhub.mode=%ff" + MARK[:4], 400),
    "not name=value": (HEAD + b"Content-Length: 10\r\n\r\n" + MARK, 400),
}


def send_raw(server: Server, raw: bytes) -> bytes:
    """Send `raw` while reading the answer until the server closes: a server that answers
    before reading everything resets the connection, after its answer arrived."""

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)

    with socket.create_connection(("127.0.0.1", server.port), 10) as sock:
        sock.settimeout(10)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        sender.join(10)
    return answer


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(hub_settings(tmp_path_factory.mktemp("hub-bodies"), SEEDS))
    yield server
    server.stop()


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_body_is_a_4xx_with_one_log_line_that_echoes_nothing(
    hub_server: Server, case: str
) -> None:
    raw, status = CASES[case]
    before = hub_server.log()
    answer = send_raw(hub_server, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:300]
    assert body.count(b"\n") == 1 and MARK not in body, body
    logged = hub_server.log()[len(before) :]
    assert "Traceback" not in logged and " 500" not in logged
    assert "Qx7" not in logged
    app_lines = [line for line in logged.splitlines() if "malformed request body" in line]
    assert len(app_lines) == 1, logged
    assert len(app_lines[0]) < 120 and "127.0.0.1" not in app_lines[0]


def test_a_well_formed_chunked_request_is_still_read(hub_server: Server) -> None:
    fields = b"hub.mode=subscribe&hub.callback=ftp%3A%2F%2Fx%2F&hub.topic=x"
    raw = CHUNKED + b"%x\r\n%s\r\n0\r\n\r\n" % (len(fields), fields)
    answer = send_raw(hub_server, raw)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"must be a feed of" in answer, answer

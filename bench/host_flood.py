"""A flood of requests for rendered documents under Host values nobody configured.

The Procfile's server (one worker) serves a generated corpus; 200 connections send, at
once, `GET /feeds/all.<ext>?limit=500` with a Host each (junk names, or junk ports of a
loopback name), while one client keeps asking for a cached feed for `--seconds`. Prints
what the flood got back and how slow the normal requests were.

    .venv/bin/python -m bench.host_flood            # junk names: 400s, no render
    .venv/bin/python -m bench.host_flood --ports    # localhost:10000..: a loopback peer's
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from tests.generate import write_corpus
from tests.support import start_server


def flood(documents: int, connections: int, seconds: float, ports: bool) -> str:
    with tempfile.TemporaryDirectory(prefix="feeds-host-flood-") as folder:
        return _flood(Path(folder), documents, connections, seconds, ports)


def _flood(work: Path, documents: int, connections: int, seconds: float, ports: bool) -> str:
    write_corpus(work / "corpus", documents)
    env = {
        "FEEDS_CORPUS_DIR": str(work / "corpus"),
        "FEEDS_DATA_DIR": str(work / "data"),
        "WEB_CONCURRENCY": "1",
    }
    server = start_server(env, timeout=60)
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with contextlib.ExitStack() as cleanup, requests.Session() as session:
            session.get(server.url + "/feeds/all.rss", timeout=5)
            socks = [
                cleanup.enter_context(socket.create_connection((host, int(port)), timeout=60))
                for _ in range(connections)
            ]
            for number, sock in enumerate(socks):
                name = f"localhost:{10000 + number}" if ports else f"flood-{number}.example"
                extension = ("rss", "atom", "json")[number % 3]
                sock.sendall(
                    f"GET /feeds/all.{extension}?limit=500 HTTP/1.1\r\nHost: {name}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
            slowest, answered, dropped = 0.0, 0, 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = session.get(server.url + "/feeds/all.rss", timeout=60)
                except requests.ConnectionError:  # a kept-alive connection the server closed
                    dropped += 1
                    continue
                assert response.status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
                answered += 1
            statuses = Counter(sock.recv(64).split(b" ")[1].decode() for sock in socks)
    finally:
        server.stop()
    return (
        f"{connections} flood requests: {dict(statuses)}; normal requests meanwhile: "
        f"{answered} in {seconds:g} s, slowest {slowest * 1000:.1f} ms, {dropped} dropped"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=600)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--ports", action="store_true", help="junk ports of localhost")
    arguments = parser.parse_args()
    print(flood(arguments.documents, arguments.connections, arguments.seconds, arguments.ports))


if __name__ == "__main__":
    main()

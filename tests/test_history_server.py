"""Releases and rebuilds through the real server from the Procfile: no request fails, and
every promise (immutable pages, Last-Modified, edit times, pushes) holds across them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from bench.history import data_files
from tests.history_corpus import answered, write
from tests.support import (
    PROJECT_ROOT,
    FromAddress,
    Server,
    children,
    gone,
    indexer_of,
    revalidation,
    start_server,
    wait_for,
    worker_pids,
)
from tests.test_history import assert_history_kept
from tests.test_websub import Subscriber, hub_request

POLLERS = 64
POLL_LIMIT_SECONDS = 120.0  # every load loop here stops by itself


def env_for(corpus: Path, data: Path, **more: str) -> dict[str, str]:
    """Both workers share their renders (as one host's workers do in production), so what
    one rendered before is what the other answers with."""
    return {
        "FEEDS_CORPUS_DIR": str(corpus),
        "FEEDS_DATA_DIR": str(data),
        "FEEDS_CACHE_TYPE": "filesystem",
        "FEEDS_CACHE_DIR": str(data.parent / "renders"),
        "FEEDS_ARCHIVE_PAGE_SIZE": "3",
        "FEEDS_DEFAULT_ITEMS": "10",
        "FEEDS_WEBSUB_DB": str(data / "websub.sqlite3"),
        "FEEDS_WEBSUB_ALLOW_PRIVATE_CALLBACKS": "1",
        **more,
    }


def lived(server: Server, corpus: Path) -> None:
    """Live changes through the server's own indexer: pages sealed in arrival order, an
    edit and a removal after sealing."""
    for number in range(20, 26):
        write(corpus, number)
    wait_for(lambda: count(server), lambda n: n == 26)
    write(corpus, 1, title="Article 1, corrected")
    (corpus / "002.txt").unlink()
    write(corpus, 60, year=2001)
    wait_for(lambda: count(server), lambda n: n == 26)
    wait_for(lambda: titles(server), lambda found: "Article 1, corrected" in found)


def count(server: Server) -> int:
    return len(server.get("/feeds/all.json?limit=100").json()["items"])


def titles(server: Server) -> set[str]:
    return {item["title"] for item in server.get("/feeds/all.json?limit=100").json()["items"]}


def documents(server: Server) -> list[str]:
    """Every feed's current documents and archive pages, in every format."""
    opml = etree.fromstring(server.get("/feeds.opml").content)
    bases = sorted(
        {
            outline.get("xmlUrl").split("/feeds/", 1)[1].rsplit(".", 1)[0]
            for outline in opml.iter("outline")
            if outline.get("xmlUrl")
        }
    )
    paths = []
    for base in bases:
        for extension in ("rss", "atom", "json"):
            paths.append(f"/feeds/{base}.{extension}")
            page = 1
            while server.get(f"/feeds/{base}/archive/{page}.{extension}").status_code == 200:
                paths.append(f"/feeds/{base}/archive/{page}.{extension}")
                page += 1
    return paths


class Pollers:
    """`count` readers (each from an address of its own in 127.0.1.0/24) polling `paths`
    until stopped (or POLL_LIMIT_SECONDS), conditional GETs as feed readers send them;
    every answer that is not 200 or 304 is kept."""

    def __init__(self, url: str, paths: list[str], count: int) -> None:
        self.url, self.paths = url, paths
        self.stopped = threading.Event()
        self.failures: list[str] = []
        self.answers = 0
        self.threads = [threading.Thread(target=self._poll, args=(n,)) for n in range(count)]
        for thread in self.threads:
            thread.start()

    def _poll(self, number: int) -> None:
        session = requests.Session()
        session.mount("http://", FromAddress(f"127.0.1.{1 + number}"))
        deadline = time.monotonic() + POLL_LIMIT_SECONDS
        seen: dict[str, dict[str, str]] = {}
        turn = number
        while not self.stopped.is_set() and time.monotonic() < deadline:
            path = self.paths[turn % len(self.paths)]
            turn += 1
            try:
                response = session.get(self.url + path, headers=seen.get(path, {}), timeout=10)
            except requests.RequestException as error:
                self.failures.append(f"{path}: {error.__class__.__name__}")
                continue
            self.answers += 1
            if response.status_code == 200:
                seen[path] = revalidation(response)
            elif response.status_code != 304:
                self.failures.append(f"{path}: {response.status_code} {response.text[:80]!r}")
        session.close()

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for number in range(20):
        write(root, number)
    return root


def data_bytes(data: Path) -> int:
    return sum(data_files(data).values())


def test_a_forced_rebuild_under_polling_fails_nothing_and_changes_nothing(
    server_factory, corpus: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = env_for(corpus, data)
    server = server_factory(**env)
    lived(server, corpus)
    subscriber = Subscriber()
    try:
        topic = server.url + "/feeds/all.rss"
        assert hub_request(server, subscriber.url, topic).status_code == 202
        wait_for(lambda: subscriber.challenges("subscribe"), bool)
        paths = documents(server)
        before = answered(server, paths)
        served_before = os.readlink(next(data.glob("index-????????????????.sqlite")))
        one_index = data_bytes(data)
        pollers = Pollers(server.url, paths, POLLERS)
        peak = [0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], data_bytes(data))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            rebuilt = subprocess.run(
                [sys.executable, "-m", "feeds", "index", "--rebuild"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            time.sleep(1.0)  # requests in flight at the switch are answered too
        finally:
            pollers.stop()
            sampling.set()
            sampler.join()
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "rebuilt and served" in rebuilt.stdout
        assert pollers.failures == [] and pollers.answers > POLLERS
        link = next(data.glob("index-????????????????.sqlite"))
        assert os.readlink(link) != served_before, "the new index is served"
        assert answered(server, paths) == before, "every document keeps its bytes and validators"
        assert peak[0] <= 2.2 * one_index, (peak[0], one_index)
        time.sleep(1.5)  # a push would have been made by now
        assert subscriber.posts() == [], "nothing changed, so nothing was pushed"
    finally:
        subscriber.stop()


@pytest.fixture
def release(tmp_path: Path) -> Iterator[Path]:
    """A copy of the package to release from: its source changes, the checkout's does not."""
    folder = tmp_path / "release"
    shutil.copytree(PROJECT_ROOT / "feeds", folder / "feeds")
    yield folder


def test_a_release_serves_every_document_through_the_restart(
    corpus: Path, tmp_path: Path, release: Path
) -> None:
    data = tmp_path / "data"
    env = {**env_for(corpus, data), "PYTHONPATH": str(release)}
    server = start_server(env, cwd=release)
    try:
        released(server, corpus, data, release)
    finally:
        server.stop()


def released(server: Server, corpus: Path, data: Path, release: Path) -> None:
    lived(server, corpus)
    paths = documents(server)
    before = answered(server, paths)
    served_before = os.readlink(next(data.glob("index-????????????????.sqlite")))
    old_workers = worker_pids(server)
    # A release: a source file that decides rows changes (this once meant a full rebuild).
    with (release / "feeds" / "corpus" / "fields.py").open("a") as source:
        source.write("\n# a comment in a new release\n")
    pollers = Pollers(server.url, paths, 16)
    new_master = 0
    try:
        server.process.send_signal(signal.SIGUSR2)  # gunicorn starts a new master beside
        new_master = wait_for(
            lambda: next(iter(children(server.pid) - old_workers - indexer_of(server.pid)), 0),
            bool,
        )
        wait_for(lambda: len(children(new_master) - indexer_of(new_master)), lambda n: n >= 2)
        time.sleep(1.0)  # its workers take connections
        server.process.send_signal(signal.SIGTERM)  # the old master goes, gracefully
        server.process.wait(timeout=40)
        write(corpus, 70)  # written after the release: the new master's indexer takes over
        wait_for(lambda: count(server), lambda n: n == 27, timeout=30)
    finally:
        pollers.stop()
    try:
        assert pollers.failures == [], pollers.failures[:10]
        link = next(data.glob("index-????????????????.sqlite"))
        assert os.readlink(link) == served_before, "no rebuild for a release of the same versions"
        after = answered(server, paths)
        assert_history_kept(before, after)
    finally:
        if new_master and not gone(new_master):
            os.kill(new_master, signal.SIGTERM)
            wait_for(lambda: gone(new_master), bool, timeout=40)

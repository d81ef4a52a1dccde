"""The index writer under bad conditions: a full disk, a read-only data directory, and a
corpus whose files are truncated, rewritten in bursts or stamped with odd times.

Every case runs the Procfile's server (or `feeds index`) as a process. A full disk is a
lowered RLIMIT_FSIZE (SQLite's writes fail as on a full disk, with no mount needed); a
read-only data directory is mode 0555 with the process's root privilege to ignore modes
dropped (or an ordinary user, for whom the mode is enough).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.support import (
    PROJECT_ROOT,
    Server,
    document,
    index_view,
    launch,
    procfile_command,
    wait_for,
)
from tests.test_live import LIVE, body, robots

LIMIT_BYTES = 1_572_864  # above prometheus' 1 MiB files and the server log, below the index
BIG_FILES = 300  # about 2.4 MB of index: more than LIMIT_BYTES
DROPPED = "-dac_override,-dac_read_search,-fowner"  # root's rights to ignore file modes
FULL = "disk full or file size limit reached"


def file_size_limit(command: list[str]) -> list[str]:
    """`command` whose writes past LIMIT_BYTES fail with EFBIG, as on a disk that is full
    (Python ignores SIGXFSZ, so the write fails instead of killing the process)."""
    return ["prlimit", f"--fsize={LIMIT_BYTES}:unlimited", "--", *command]


def make_space(server: Server) -> None:
    """Lift the indexer's file size limit while it runs: space came back."""
    pid = re.search(r"indexer started \(pid (\d+)\)", server.log()).group(1)
    subprocess.run(["prlimit", "--pid", pid, "--fsize=unlimited"], check=True, timeout=10)


def without_override(command: list[str]) -> list[str]:
    """`command` bound by file modes even as root (its override capabilities dropped)."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--bounding-set", DROPPED, "--", *command]


@pytest.fixture
def read_only() -> Iterator[Callable[..., None]]:
    """Makes directories read-only (and with `files`, what they hold); skips where that
    cannot bind."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("root, and no setpriv to give up the right to ignore file modes")
    made: list[Path] = []

    def make(directory: Path, files: bool = False) -> None:
        for file in directory.iterdir() if files else ():
            file.chmod(0o444)
        directory.chmod(0o555)
        made.append(directory)

    yield make
    for directory in made:  # pytest must be able to remove tmp_path
        directory.chmod(0o755)


@pytest.fixture
def read_only_data(read_only: Callable[..., None], tmp_path: Path) -> Path:
    """An empty data directory this process cannot write."""
    data = tmp_path / "data"
    data.mkdir()
    read_only(data)
    return data


def add_big_files(corpus: Path, count: int = BIG_FILES) -> None:
    """Documents whose excerpts are long and varied: together they outgrow LIMIT_BYTES."""
    chance = random.Random(7)
    for number in range(count):
        words = " ".join(f"w{chance.randrange(10**6)}" for _ in range(500))
        (corpus / f"big{number:03}.md").write_text(
            document(
                title=f'"Big {number}"',
                excerpt=f'"{words}"',
                webUrl=f'"https://example.com/big/{number}"',
            )
        )


def settings(corpus: Path, data: Path, **extra: str) -> dict[str, str]:
    return {"FEEDS_CORPUS_DIR": str(corpus), "FEEDS_DATA_DIR": str(data), **extra}


def logged(server: Server, text: str, timeout: float = 45) -> str:
    """The server's log once it holds `text`."""
    return wait_for(server.log, lambda log: text in log, timeout=timeout, pause=0.1)


def assert_calm(server: Server, problem: str, seconds: float = 3.0) -> None:
    """The problem is said once, with no traceback, and the indexer is not restarted."""
    time.sleep(seconds)  # the time a crash or retry loop would need to show
    log = server.log()
    assert log.count(problem) == 1, log
    assert "Traceback" not in log, log
    assert log.count("indexer started") == 1, log
    assert server.process.poll() is None


def articles(server: Server) -> int:
    """How many articles the server serves (-1 while it has no complete index or no port)."""
    try:
        response = server.get("/healthz")
    except requests.ConnectionError:
        return -1
    return response.json()["articles"] if response.status_code == 200 else -1


# -- a disk that fills while the index is written (issue #11) --------------------------


def test_an_update_that_fills_the_disk_keeps_the_last_index_served(
    server_factory, corpus: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    index_view(corpus, data)  # the last good index: the two seeds
    add_big_files(corpus)
    server = server_factory(file_size_limit(procfile_command()), **settings(corpus, data))
    log = logged(server, FULL)
    assert "still serving the last complete index" in log
    assert str(data / "index-") in log  # names the index file
    assert_calm(server, FULL)
    assert articles(server) == 2
    assert server.get("/feeds/all.rss").status_code == 200
    make_space(server)  # retried after a pause, without a restart
    wait_for(lambda: articles(server), lambda count: count == 2 + BIG_FILES)
    assert "indexing works again" in server.log()


def test_a_first_build_that_fills_the_disk_is_never_served(corpus: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_big_files(corpus)
    server = launch(settings(corpus, data), file_size_limit(procfile_command()))
    try:
        logged(server, "no complete index yet, feeds answer 503")
        assert_calm(server, FULL)
        feed = server.get("/feeds/all.rss")
        assert feed.status_code == 503
        assert feed.headers["Retry-After"]
        health = server.get("/healthz")
        assert (health.status_code, health.json()["status"]) == (503, "indexing")
        make_space(server)
        wait_for(lambda: articles(server), lambda count: count == 2 + BIG_FILES)
        assert server.log().count("indexer started") == 1
    finally:
        server.stop()


# -- a read-only data directory (issue #11) ---------------------------------------------


@pytest.mark.parametrize("files", [False, True], ids=["index-writable", "index-read-only"])
def test_a_read_only_data_directory_still_serves_its_index(
    server_factory, read_only, corpus: Path, tmp_path: Path, files: bool
) -> None:
    data = tmp_path / "data"
    index_view(corpus, data)
    read_only(data, files)  # SQLite cannot make the WAL's -wal and -shm files here
    server = server_factory(without_override(procfile_command()), **settings(corpus, data))
    problem = f"data directory {data} is not writable by this process, so the index"
    log = logged(server, problem)
    assert "FEEDS_DATA_DIR" in log
    assert "serving the index as it is, without updates" in log
    assert_calm(server, problem)
    assert articles(server) == 2
    assert "<item>" in server.get("/feeds/all.rss").text


def test_no_index_and_a_read_only_data_directory_say_why_on_healthz(
    read_only_data: Path, corpus: Path
) -> None:
    data = read_only_data
    server = launch(settings(corpus, data), without_override(procfile_command()))
    try:
        problem = f"data directory {data} is not writable by this process, so the index"
        logged(server, problem)
        assert_calm(server, problem)
        health = wait_for(lambda: server.get("/healthz"), lambda r: r.status_code == 503)
        assert health.json()["status"] == "unavailable"
        assert "FEEDS_DATA_DIR" in health.json()["reason"]
        assert health.headers["Retry-After"]
    finally:
        server.stop()


def test_feeds_index_into_a_read_only_data_directory_exits_with_one_line(
    read_only_data: Path, corpus: Path
) -> None:
    data = read_only_data
    result = subprocess.run(
        without_override([sys.executable, "-m", "feeds", "index"]),
        cwd=PROJECT_ROOT,
        env={**os.environ, **settings(corpus, data)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"data directory {data} is not writable" in lines[0]
    assert "FEEDS_DATA_DIR" in lines[0]


# -- a living corpus (issue #12) --------------------------------------------------------


def test_a_file_truncated_then_rewritten_leaves_and_comes_back(
    server_factory, corpus: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **LIVE)
    path = corpus / "robots.md"
    path.write_text(robots("Robots before"))
    wait_for(lambda: body(server, "/feeds/all.rss"), lambda text: "Robots before" in text)
    path.write_bytes(b"")
    wait_for(lambda: body(server, "/feeds/all.rss"), lambda text: "Robots before" not in text)
    # Reported with its reason, not dropped silently; the other worker may answer /healthz
    # from the view before this commit for up to its 10 ms recheck, so ask until it agrees.
    wait_for(lambda: server.get("/healthz").json()["skipped"], lambda n: n == 1, timeout=5)
    assert "robots.md" in server.log()
    path.write_text(robots("Robots after"))
    wait_for(lambda: body(server, "/feeds/all.rss"), lambda text: "Robots after" in text)
    assert server.get("/healthz").json()["skipped"] == 0


def test_a_burst_of_rewrites_fails_no_request_and_ends_on_the_last(
    server_factory, corpus: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **LIVE)
    path = corpus / "robots.md"
    statuses: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                statuses.append(session.get(server.url + "/feeds/all.rss", timeout=10).status_code)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for number in range(50):
            path.write_text(robots(f"Robots take {number}"))
            time.sleep(0.04)
    finally:
        stop.set()
        poller.join(timeout=15)
    assert statuses and all(status == 200 for status in statuses), set(statuses)
    shown = wait_for(
        lambda: body(server, "/feeds/all.rss"), lambda text: "Robots take 49" in text, timeout=5
    )
    assert shown.count("Robots take") == 1


def test_odd_modification_times_do_not_hide_a_change(server_factory, corpus: Path) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **LIVE)
    future = corpus / "future.md"
    future.write_text(robots("Robots from tomorrow", slug="future"))
    tomorrow = time.time() + 86_400
    os.utime(future, (tomorrow, tomorrow))
    back = corpus / "back.md"
    back.write_text(robots("Robots first", slug="back"))
    wait_for(
        lambda: body(server, "/feeds/all.rss"),
        lambda text: "Robots from tomorrow" in text and "Robots first" in text,
    )
    stamp = back.stat()
    back.write_text(robots("Robots again", slug="back"))  # same size, older time
    os.utime(back, ns=(stamp.st_atime_ns, stamp.st_mtime_ns - 10_000_000_000))
    wait_for(lambda: body(server, "/feeds/all.rss"), lambda text: "Robots again" in text)
    future.write_text(robots("Robots from the day after", slug="future"))
    os.utime(future, (tomorrow - 60, tomorrow - 60))  # edited later, time moved back
    wait_for(lambda: body(server, "/feeds/all.rss"), lambda text: "the day after" in text)

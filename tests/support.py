"""Helpers for tests: seed-shaped documents and a real gunicorn started from the Procfile."""

from __future__ import annotations

import gc
import gzip
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import brotli
import requests
from werkzeug.test import TestResponse

from feeds.index.indexer import Target, update
from feeds.index.reader import IndexReader, View
from feeds.settings import load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEEDS = PROJECT_ROOT / "seeds"
CLIENT_ORIGIN = "http://localhost"  # where Flask's test client sends its requests
T = TypeVar("T")


def document(**fields: str) -> str:
    """A document shaped like the seeds; each keyword replaces one top-level YAML line."""
    lines = {
        "title": '"A headline"',
        "excerpt": '"What happened, in one sentence."',
        "publishedDateTime": "2022-03-04T05:06:07Z",
        "webUrl": '"https://example.com/news/a-headline"',
        "provider": "\n  name: Example News\n  domain: example.com",
        "topics": "\n  - AI",
    }
    lines.update(fields)
    body = "\n".join(
        f"{key}: {value}" if value != "" else f"{key}:"
        for key, value in lines.items()
        if value is not None
    )
    return f"---\n{body}\n---\n"


def wait_for(
    get: Callable[[], T], done: Callable[[T], bool], timeout: float = 20.0, pause: float = 0.1
) -> T:
    """Call `get` until `done` holds for its result; the last result after `timeout` fails."""
    deadline = time.monotonic() + timeout
    while True:
        result = get()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still not done after {timeout}s: {result!r}")
        time.sleep(pause)


def decoded(response: TestResponse) -> bytes:
    """A test client's body as an HTTP client reads it: decoded by its Content-Encoding."""
    body = response.get_data()
    coding = response.headers.get("Content-Encoding")
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)
    assert coding is None, coding
    return body


def index_view(root: Path, data_dir: Path, **overrides: object) -> View:
    """The index of `root` built (or brought up to date) now, as a worker reads it."""
    settings = load_settings({"CORPUS_DIR": str(root), "DATA_DIR": str(data_dir), **overrides})
    target = Target.from_settings(settings)
    update(target)
    return IndexReader(target.path).view()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A gunicorn master started from the Procfile; only it and its children are signalled."""

    process: subprocess.Popen
    url: str
    log_path: Path
    started_at: float = field(default_factory=time.perf_counter)
    quitting: bool = False  # SIGQUIT sent by `quit`

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def reload(self) -> None:
        """SIGHUP, as an operator sends it: new workers, and the old ones stopped gracefully.

        The master waits for the old workers, and each waits for idle keep-alive
        connections (up to `keepalive`, 5 s): the test's own, left open by responses of
        `requests.get` until the garbage collector breaks a reference cycle, are closed first.
        """
        gc.collect()
        self.process.send_signal(signal.SIGHUP)

    def quit(self) -> None:
        """SIGQUIT without waiting: servers stopped together exit side by side (`stop`
        then waits without signalling again)."""
        if self.process.poll() is None and not self.quitting:
            self.process.send_signal(signal.SIGQUIT)
            self.quitting = True

    def stop(self, graceful: bool = False, timeout: float = 40) -> None:
        """Stop the master and wait for it to exit.

        By default SIGQUIT, gunicorn's quick shutdown: each worker exits at once (its
        `worker_exit` hook still runs, so counts are flushed), then the master stops the
        indexer, removes its folders and exits; well under a second. `graceful` sends
        SIGTERM, what a platform sends, for tests of a production stop: a gevent worker
        notices it within a second and then waits for idle keep-alive connections (up to
        `keepalive`, 5 s); a response of `requests.get` keeps its socket open until the
        garbage collector breaks a reference cycle, so collect first.
        """
        if graceful:
            gc.collect()
        if self.process.poll() is None:
            if graceful or not self.quitting:
                self.process.send_signal(signal.SIGTERM if graceful else signal.SIGQUIT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def procfile_command() -> list[str]:
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return shlex.split(line.removeprefix("web:"))
    raise AssertionError("Procfile has no web process")


def launch(
    env: dict[str, str],
    command: list[str] | None = None,
    log_dir: Path | None = None,
    name: str = "feeds",
    cwd: Path = PROJECT_ROOT,
) -> Server:
    """Start the Procfile's web command (or `command`) on a free loopback port; no waiting.

    The one way tests and benchmarks start a server, as production does.
    """
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    environ = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        **env,
    }
    directory = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"{name}-test-{port}.log"
    with log_path.open("wb") as log_file:
        started_at = time.perf_counter()
        process = subprocess.Popen(
            command or procfile_command(),
            cwd=cwd,
            env=environ,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Server(process, f"http://127.0.0.1:{port}", log_path, started_at)


def start_server(
    env: dict[str, str],
    timeout: float = 30.0,
    command: list[str] | None = None,
    cwd: Path = PROJECT_ROOT,
) -> Server:
    """The Procfile's web command (or `command`) with the test's settings, once every worker
    answers."""
    server = launch(env, command, cwd=cwd)
    process = server.process
    # Ready means every worker answers: a worker still booting loses a SIGTERM sent to it
    # (a reload right after start), and would keep serving the old state.
    workers = int(env.get("WEB_CONCURRENCY", "2"))
    answered: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            response = requests.get(server.url + "/healthz", timeout=1)
            if response.status_code == 200:
                answered.add(response.json()["cache"]["worker_pid"])
                if len(answered) >= workers:
                    return server
                continue
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server did not answer within {timeout}s:\n{server.log()}")


# A running server's processes, and readers of their own address: shared by the tests and
# bench/history.py, which drive releases and rebuilds the same way.


def worker_pids(server: Server) -> set[int]:
    """The master's worker processes (its other child is the indexer, which stays)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children if b"--follow" not in _cmdline(int(child))}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children(pid: int) -> set[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return set()
    return {int(child) for child in found}


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def indexer_of(pid: int) -> set[int]:
    return {
        child
        for child in children(pid)
        if b"--follow" in Path(f"/proc/{child}/cmdline").read_bytes()
    }


def corpus_version(server: Server) -> str:
    return str(server.get("/healthz").json()["corpus_version"])


@contextmanager
def reloaded(server: Server, timeout: float = 60) -> Iterator[None]:
    """Make a change to the corpus inside; on leaving, SIGHUP and wait until the workers that
    served the old corpus are gone and the new version is served.

    The version is read before the change: the indexer follows the corpus, and may take the
    change in before the SIGHUP does. Seeing the new version is not enough either: until
    the master stops them, old workers still accept connections, and answer from the old
    corpus.
    """
    before = corpus_version(server)
    yield
    old_workers = worker_pids(server)
    server.reload()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        old_gone = not any(Path(f"/proc/{pid}").exists() for pid in old_workers)
        if old_gone and corpus_version(server) != before:
            return
    raise AssertionError(f"no reload within {timeout}s:\n{server.log()}")


class FromAddress(requests.adapters.HTTPAdapter):
    """Connections from one loopback address: each poller is a reader of its own."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


CONDITIONS = {"ETag": "If-None-Match", "Last-Modified": "If-Modified-Since"}


def revalidation(response: requests.Response) -> dict[str, str]:
    """The conditional headers a polling reader sends next: one per validator it was given."""
    return {
        asked: response.headers[given]
        for given, asked in CONDITIONS.items()
        if given in response.headers
    }

"""Shared fixtures: documents written to temporary corpora, and the real server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from feeds.app import create_app
from tests.postgres import PostgresCluster
from tests.support import PROJECT_ROOT, Server, start_server
from tests.test_websub import Subscriber


@pytest.fixture(scope="session", autouse=True)
def indexes_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Corpus indexes from the tests go to a temporary directory."""
    os.environ.setdefault("FEEDS_DATA_DIR", str(tmp_path_factory.mktemp("indexes")))


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """This worker's PostgreSQL cluster, started on first use (about a second)."""
    cluster = PostgresCluster()
    yield cluster
    cluster.close()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh database of this worker's cluster, for one test."""
    return postgres_cluster.create_database()


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated corpus of 800 documents (with skips, repairs and duplicates); read only."""
    root = tmp_path_factory.mktemp("generated")
    command = [sys.executable, "-m", "tests.generate", str(root), "--count", "800"]
    subprocess.run(command, check=True, capture_output=True, cwd=PROJECT_ROOT)
    # Written a minute ago, as a corpus is: a file read within 2 s of its write is in
    # doubt, and the rescan that takes it out commits, which makes every worker drop its
    # cached answers in the middle of a test that counts them.
    written = time.time_ns() - 60 * 10**9
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, ns=(written, written))
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A temporary corpus holding copies of the bundled seeds."""
    root = tmp_path / "corpus"
    shutil.copytree(PROJECT_ROOT / "seeds", root)
    return root


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Server]]:
    """Starts real gunicorn servers from the Procfile; stops them all after the test."""
    started: list[Server] = []

    def start(command: list[str] | None = None, **env: str) -> Server:
        server = start_server(env, command=command)
        started.append(server)
        return server

    yield start
    for server in started:  # all at once: each takes about a second to exit
        server.quit()
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def seeds_server() -> Iterator[Server]:
    """One server of the bundled corpus, shared by a module's read-only tests."""
    server = start_server({})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def seeds_client() -> FlaskClient:
    """The bundled corpus through Flask's test client, shared by a module's read-only tests:
    the whole WSGI stack (host check, fast path, observer) with no server process, for what
    is HTTP semantics only. Links start with `CLIENT_ORIGIN`."""
    return create_app().test_client()


@pytest.fixture
def subscribers() -> Iterator[Callable[..., Subscriber]]:
    """Starts WebSub subscribers on loopback (tests.test_websub.Subscriber); stops them."""
    started: list[Subscriber] = []

    def start(**kwargs: Any) -> Subscriber:
        started.append(Subscriber(**kwargs))
        return started[-1]

    yield start
    for subscriber in started:
        subscriber.stop()

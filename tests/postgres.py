"""A throwaway PostgreSQL cluster from the Debian `postgresql` package, for the tests.

One cluster per pytest-xdist worker (a session fixture in conftest.py), a fresh database per
test (CREATE DATABASE copies a template in milliseconds). PostgreSQL refuses to run as root:
as root (CI), initdb and pg_ctl run as the `postgres` system user, in a directory it owns.
It listens on 127.0.0.1 at a free port and on a Unix socket in that directory.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from feeds.postgres.database import Database
from feeds.postgres.migrate import upgrade
from tests.support import free_port

DEBIAN_ROOT = Path("/usr/lib/postgresql")
OWNER = "postgres"  # the Debian package's system user, who runs the cluster when we are root
TEST_DEPLOYMENT = "feeds:0123456789abcdef:"


def postgres_bin() -> Path | None:
    """The newest installed version's bin directory (they live outside PATH)."""
    found = [p.parent for p in DEBIAN_ROOT.glob("*/bin/pg_ctl") if p.parent.parent.name.isdigit()]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


class PostgresCluster:
    def __init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("postgresql is not installed; ./dev test installs it")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="feeds-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, OWNER)
        self.data = self.root / "data"
        self.port = free_port()
        self._names = itertools.count()
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
            "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        self.start()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", OWNER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -F"
            " -c full_page_writes=off -c synchronous_commit=off"
        )
        log = str(self.root / "log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-s", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-s", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"test{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-s", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def migrated(url: str, deployment: str = TEST_DEPLOYMENT) -> Iterator[Database]:
    """The deployment's schema in `url`, migrated, with an open pool (closed after)."""
    database = Database(url, deployment, 2.0)
    upgrade(database)
    database.open()
    try:
        yield database
    finally:
        database.close()

"""SQLite the way every store here uses it: a connection per operation, one transaction shape."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path


@contextmanager
def connection(path: Path, busy_seconds: float) -> Iterator[sqlite3.Connection]:
    """A short-lived connection in autocommit mode: nothing is shared across forks, threads
    or greenlets. With WAL, NORMAL syncs at checkpoints, not at every commit: these calls
    block a gevent worker's every connection, so they must not wait for the disk each time."""
    db = sqlite3.connect(path, timeout=busy_seconds, isolation_level=None)
    db.execute("PRAGMA synchronous=NORMAL")
    try:
        yield db
    finally:
        db.close()


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: readers never see half a change."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteFile:
    """A database file with its schema: created on first use, WAL, a connection per operation
    (nothing shared across forks, threads or greenlets)."""

    schema = ""
    busy_seconds = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(self.schema)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connection(self.path, self.busy_seconds)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db, transaction(db):
            yield db

"""SQLite the way every store here uses it: a connection per operation, one transaction shape,
and every file opened defensively.

A file in the data directory may have been planted or edited by someone else: a trigger
runs on our own writes, a view runs when we read it, and either may call functions. So
every connection turns `trusted_schema` off (functions and virtual tables used by the
schema must be innocuous: none of ours, no application-defined ones), checks each b-tree
cell it reads (`cell_size_check`), and refuses a file whose schema holds any object the
store's own schema script does not create, before running anything else on it. Python 3.11
has no `Connection.setconfig`, so SQLite's defensive mode itself is out of reach.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from functools import cache
from pathlib import Path

Object = tuple[str, str, str, str | None]  # sqlite_master's (type, name, tbl_name, sql)
NAME_CHARS = 80  # of a planted object's name in a message


class UntrustedDatabase(sqlite3.DatabaseError):
    """The file's schema holds something feeds did not create: refused before it can run."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path} is refused: {reason}")
        self.path = str(path)
        self.reason = reason


def harden(db: sqlite3.Connection) -> sqlite3.Connection:
    """What every connection sets first: schema code may call innocuous functions only."""
    db.execute("PRAGMA trusted_schema = OFF")
    db.execute("PRAGMA cell_size_check = ON")
    return db


@cache
def expected_objects(schema: str) -> frozenset[Object]:
    """What `schema` creates, as sqlite_master lists it (built once in memory)."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.executescript(schema)
        return frozenset(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))


def verify_schema(
    db: sqlite3.Connection, path: Path | str, schema: str, earlier: tuple[str, ...] = ()
) -> None:
    """Raise UntrustedDatabase unless every object in the file is one `schema` creates, or
    one of the `earlier` scripts (a past release's layout, and that layout migrated).

    Objects it lacks are fine (the schema script creates them); a trigger, view, table or
    index it does not create, or one whose definition differs, is refused. Reading
    sqlite_master runs nothing of the file's."""
    expected = expected_objects(schema).union(*map(expected_objects, earlier))
    found = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    unknown = [row for row in found if tuple(row) not in expected]
    if unknown:  # a trigger or view first: what would run
        kind, name = min(unknown, key=lambda row: row[0] not in {"trigger", "view"})[:2]
        shown = str(name)[:NAME_CHARS]
        raise UntrustedDatabase(path, f"it holds a {kind} {shown!r} that feeds did not create")


def open_file(
    path: Path,
    schema: str,
    busy_seconds: float,
    *,
    read_only: bool = False,
    earlier: tuple[str, ...] = (),
) -> sqlite3.Connection:
    """A hardened autocommit connection to a file whose schema has been checked."""
    if read_only:
        db = sqlite3.connect(
            f"file:{path}?mode=ro",
            uri=True,
            timeout=busy_seconds,
            isolation_level=None,
            check_same_thread=False,
        )
    else:
        db = sqlite3.connect(
            path, timeout=busy_seconds, isolation_level=None, check_same_thread=False
        )
    try:
        harden(db)
        verify_schema(db, path, schema, earlier)
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def connection(
    path: Path, busy_seconds: float, schema: str, earlier: tuple[str, ...] = ()
) -> Iterator[sqlite3.Connection]:
    """A short-lived connection in autocommit mode: nothing is shared across forks, threads
    or greenlets. With WAL, NORMAL syncs at checkpoints, not at every commit: these calls
    block a gevent worker's every connection, so they must not wait for the disk each time."""
    db = open_file(path, schema, busy_seconds, earlier=earlier)
    try:
        db.execute("PRAGMA synchronous=NORMAL")
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
    (nothing shared across forks, threads or greenlets), each checked before use."""

    schema = ""
    earlier: tuple[str, ...] = ()  # past layouts, each with its migration: still trusted
    busy_seconds = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            self.migrate(db)
            db.executescript(self.schema)

    def migrate(self, db: sqlite3.Connection) -> None:
        """Bring a file of an earlier release forward, before the schema script runs."""

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connection(self.path, self.busy_seconds, self.schema, self.earlier)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db, transaction(db):
            yield db

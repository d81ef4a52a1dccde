"""What the SQL stores share: their SQL is written once, with `?` placeholders in the dialect
SQLite and PostgreSQL have in common, and runs on a SQLite connection (`feeds.sqlite`) or a
PostgreSQL one (`feeds.postgres.database.Qmark`). A store class holds the logic; its SQLite
and PostgreSQL subclasses only say where the tables are."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Rows(Protocol):
    """A cursor: sqlite3's or psycopg's."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Sql(Protocol):
    """A connection that runs SQL written with `?` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Rows: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object: ...


class SqlTables:
    """A store's tables: an autocommit connection, and a transaction in which the store's
    writes run one at a time (SQLite's BEGIN IMMEDIATE; a PostgreSQL advisory lock)."""

    skip_locked = ""  # what a claim adds to skip rows another claim holds (PostgreSQL's)

    def _connect(self) -> AbstractContextManager[Sql]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Sql]:
        raise NotImplementedError

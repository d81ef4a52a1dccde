"""One database of a fleet as a process uses it: one pool, every call bounded in time, every
table in the deployment's own schema.

The pool is made on first use in each process (`feeds.stores.PerProcess`, never in the
gunicorn master), after the schema was brought forward (`feeds.postgres.migrate`). Each
connection names the deployment's schema as its `search_path` and carries the timeouts, so
the stores' SQL is the same text for SQLite and PostgreSQL (`feeds.tables`): a database
that is down or silent costs a caller `timeout` seconds (or libpq's 2 s to connect), then
one of `feeds.stores.STORE_ERRORS`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

POOL_SIZE = 4  # connections per process: its requests, its flush and its delivery loop


class NewerSchema(Exception):
    """The database's schema was migrated by a newer release: refused, never changed."""


def schema_name(deployment: str) -> str:
    """The deployment's PostgreSQL schema: `feeds:<16 hex>:` is `feeds_<16 hex>`."""
    key = deployment.split(":")[1]
    if not key.isalnum():
        raise ValueError(f"not a deployment key: {deployment!r}")
    return f"feeds_{key.lower()}"


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (a schema and what the lock guards)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def connection_options(schema: str, timeout: float) -> dict[str, Any]:
    """libpq parameters of every connection: the schema, and a bound on every wait."""
    ms = max(1, int(timeout * 1000))
    return {
        "autocommit": True,
        "connect_timeout": max(2, math.ceil(timeout)),  # libpq allows no less than 2 s
        "tcp_user_timeout": ms,  # a peer that stops acknowledging is given up
        "application_name": "feeds",
        "options": (
            f"-c search_path={schema} -c statement_timeout={ms} -c lock_timeout={ms}"
            f" -c idle_in_transaction_session_timeout={10 * ms}"
        ),
    }


@lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Qmark:
    """A psycopg connection that runs SQL written with SQLite's `?` placeholders."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        return self.connection.execute(_pyformat(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(_pyformat(sql), parameters)


class Database:
    """A database URL, the deployment's schema in it, and this process's pool."""

    def __init__(self, url: str, deployment: str, timeout: float) -> None:
        self.url = url
        self.schema = schema_name(deployment)
        self.timeout = timeout
        self.options = connection_options(self.schema, timeout)
        self.pool = ConnectionPool(
            url,
            kwargs=self.options,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=timeout,
            check=ConnectionPool.check_connection,  # a restarted database costs no request
            name=f"feeds-{self.schema}",
            open=False,
        )

    def open(self) -> Database:
        self.pool.open(wait=False)
        return self

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A connection outside the pool (migrations)."""
        return psycopg.connect(self.url, **{**self.options, "autocommit": autocommit})

    @contextmanager
    def connection(self) -> Iterator[Qmark]:
        """A pooled connection in autocommit mode."""
        with self.pool.connection() as connection:
            yield Qmark(connection)

    @contextmanager
    def transaction(self, lock: int) -> Iterator[Qmark]:
        """A transaction that first takes the advisory lock `lock`: writes of one store run
        one at a time across the fleet, as SQLite's BEGIN IMMEDIATE runs them on one host."""
        with self.pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            yield Qmark(connection)

    def close(self) -> None:
        self.pool.close()


class PostgresTables:
    """A store's tables in a `Database`; `purpose` names its write lock."""

    purpose = ""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._lock = lock_key(f"{database.schema}:{self.purpose}")

    skip_locked = " FOR UPDATE SKIP LOCKED"  # a claim passes over the rows others hold

    def _connect(self) -> AbstractContextManager[Qmark]:
        return self.database.connection()

    def _transaction(self) -> AbstractContextManager[Qmark]:
        return self.database.transaction(self._lock)

"""What the hub's subscriptions and the subscriber counts share as stores: one pattern, three
kinds (a SQLite file of this host, keys in a Redis shared by hosts, or tables in a
PostgreSQL database shared by hosts), opened once per process by `feeds.runtime.Runtime`.

Every way a store is this deployment's own (`feeds.settings.deployment_key`): its file is
named after it in the data directory, its Redis keys start with it, and its PostgreSQL
tables are in a schema named after it, so staging and production on one host, one Redis or
one database never see each other's.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Self, TypeVar

import psycopg
import redis
from psycopg_pool import PoolTimeout
from redis.backoff import NoBackoff
from redis.retry import Retry

from feeds.postgres.database import Database, NewerSchema
from feeds.settings import Settings, deployment_key, writable_data_directory
from feeds.sqlite import SqliteFile

# What a store that is down, locked, read-only or of a newer release raises: callers answer
# 503 or try later.
STORE_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error,
    redis.RedisError,
    psycopg.Error,
    PoolTimeout,
    NewerSchema,
    OSError,
)

S = TypeVar("S")
T = TypeVar("T")


class PerProcess(Generic[T]):
    """A part made on first use in each process and kept for the process's life.

    The app may be built in the gunicorn master before it forks: a socket or a SQLite
    handle opened there would be shared by every worker. So stores and clients are made
    here, in the process that uses them; no lock is made (none before gevent patches), and
    a part that failed to open is tried again at the next use. Two greenlets that both ask
    first may both make one: the second is kept, the first freed.
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: tuple[int, T] | None = None

    def get(self) -> T:
        made = self._made
        if made is None or made[0] != os.getpid():
            made = self._made = (os.getpid(), self._make())
        return made[1]


def redis_for(settings: Settings) -> PerProcess[redis.Redis]:
    """The one client of `FEEDS_CACHE_REDIS_URL` that every store in Redis shares."""
    return PerProcess(lambda: redis_client(settings.cache_redis_url, settings.redis_timeout))


def redis_client(url: str, timeout: float) -> redis.Redis:
    """A client that tries once within `timeout` seconds: each caller decides what a failure
    means (render locally, answer 503 with Retry-After, deliver at the next poll), and a
    retry inside the client would only make that answer late."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


class DeploymentFile(SqliteFile):
    """A store in one SQLite file per deployment in the data directory (else in the temp
    directory, logged): `<stem>-<16 hex>.sqlite3`."""

    stem = ""  # the file's name before the deployment's key
    purpose = ""  # what is lost when the data directory is not writable, for the log

    @classmethod
    def path_for(cls, settings: Settings) -> Path:
        directory = writable_data_directory(settings, cls.purpose)
        return directory / f"{cls.stem}-{deployment_key(settings).split(':')[1]}.sqlite3"

    @classmethod
    def for_deployment(cls, settings: Settings) -> Self:
        return cls(cls.path_for(settings))


class DeploymentKeys:
    """A store in Redis, every key under `<deployment key><namespace>`."""

    namespace = ""  # e.g. "websub:"

    def __init__(self, client: redis.Redis, deployment: str) -> None:
        self.client = client
        self.prefix = deployment + self.namespace


def database_for(settings: Settings) -> PerProcess[Database]:
    """This process's one pool of `FEEDS_DATABASE_URL`, which every store in PostgreSQL
    shares, opened after the schema was brought forward (`feeds.postgres.migrate`)."""
    return PerProcess(lambda: open_database(settings))


def open_database(settings: Settings) -> Database:
    # Alembic and SQLAlchemy load only in a process that opens PostgreSQL.
    from feeds.postgres.migrate import upgrade  # noqa: PLC0415

    database = Database(settings.database_url, deployment_key(settings), settings.database_timeout)
    upgrade(database)
    return database.open()


@dataclass(frozen=True, slots=True)
class Family(Generic[S]):
    """One store's three classes (or what makes each)."""

    in_sqlite: Callable[[Settings], S]
    in_redis: Callable[[redis.Redis, str], S]
    in_postgres: Callable[[Database], S]


def open_store(
    kind: str,
    settings: Settings,
    family: Family[S],
    client: Callable[[], redis.Redis],
    database: Callable[[], Database],
) -> S:
    """The store of `family` that `kind` names, each shared kind with the process's client."""
    if kind == "redis":
        return family.in_redis(client(), deployment_key(settings))
    if kind == "postgresql":
        return family.in_postgres(database())
    return family.in_sqlite(settings)

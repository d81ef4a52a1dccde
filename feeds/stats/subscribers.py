"""Subscribers per feed: aggregators' reported counts plus distinct direct pollers.

Requests are noted in each worker's memory (`Recorder.observe`, a dict and a set, no
I/O) and written to a store shared by every worker, and by every host through Redis, in
one batch a second (`feeds.http.observe.Flusher`, a greenlet per worker). The store
aggregates, so counts are exact whichever worker answered.

A direct poller is a client address and User-Agent. Neither is ever stored: the store
holds an HMAC of the two under a random key of the day, and deletes each key when its
day is over, so yesterday's hashes can no longer be tied to anyone. "Distinct in the
last 24 hours" spans two days and so two keys: every poll on day D is recorded under
the keys of days D and D + 1, and on day D the pollers of the last 24 hours are the
distinct day-D hashes of those hours. Each key thus lives two days.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import redis

from feeds.settings import writable_data_directory
from feeds.sqlite import SqliteFile
from feeds.stats.agents import AGGREGATOR, DIRECT, classify

log = logging.getLogger("feeds.stats.subscribers")

HOUR = 3600
DAY = 86_400
WINDOW_HOURS = 24
HISTORY_DAYS = 90
REPORT_MAX_AGE_DAYS = 7  # an aggregator silent this long no longer counts
SQLITE_BUSY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_PREFIX = "feeds:stats:"
STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, redis.RedisError, OSError)

Report = tuple[str, str, str]  # (feed, service, the service's feed id)
Poll = tuple[str, int, str, str]  # (feed, hour, address, user agent): memory only
Hashed = tuple[str, int, int, bytes]  # (feed, key day, hour, keyed hash)


@dataclass(frozen=True, slots=True)
class FeedStats:
    path: str
    subscribers: int
    aggregators: dict[str, int]
    direct: int
    history: list[tuple[str, int]]  # (ISO day, subscribers), oldest first

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "subscribers": self.subscribers,
            "aggregators": self.aggregators,
            "direct": self.direct,
            "history": [{"day": day, "subscribers": count} for day, count in self.history],
        }


@dataclass
class Batch:
    """What one worker noted since its last flush."""

    reports: dict[Report, tuple[int, int]] = field(default_factory=dict)  # (count, seen ns)
    polls: set[Poll] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.reports or self.polls)

    @property
    def feeds(self) -> set[str]:
        return {feed for feed, *_ in self.reports} | {feed for feed, *_ in self.polls}


class Store(Protocol):
    def day_key(self, day: int) -> bytes: ...
    def write(self, reports: dict[Report, tuple[int, int]], pollers: set[Hashed]) -> None: ...
    def snapshot(self, feeds: Iterable[str], now: float) -> None: ...
    def report(self, now: float) -> list[FeedStats]: ...


def poller_hash(key: bytes, address: str, user_agent: str) -> bytes:
    return hmac.digest(key, f"{address}\n{user_agent}".encode("utf-8", "replace"), "sha256")[:16]


def hashed(day_key: Callable[[int], bytes], polls: Iterable[Poll]) -> set[Hashed]:
    """Each poll under the key of its own day and of the next (see the module's note)."""
    found: set[Hashed] = set()
    for feed, hour, address, user_agent in polls:
        for key_day in (hour * HOUR // DAY, hour * HOUR // DAY + 1):
            found.add((feed, key_day, hour, poller_hash(day_key(key_day), address, user_agent)))
    return found


def iso_day(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, UTC).date().isoformat()


def sort_stats(stats: list[FeedStats]) -> list[FeedStats]:
    return sorted(stats, key=lambda s: (-s.subscribers, s.path))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS day_keys (day INTEGER PRIMARY KEY, key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
    feed TEXT NOT NULL, service TEXT NOT NULL, feed_id TEXT NOT NULL,
    subscribers INTEGER NOT NULL, seen_ns INTEGER NOT NULL,
    PRIMARY KEY (feed, service, feed_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pollers (
    feed TEXT NOT NULL, key_day INTEGER NOT NULL, hour INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (feed, key_day, hour, hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    feed TEXT NOT NULL, day INTEGER NOT NULL, subscribers INTEGER NOT NULL,
    PRIMARY KEY (feed, day)
) WITHOUT ROWID;
"""
_UPSERT_REPORT = (
    "INSERT INTO reports VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
    " SET subscribers = excluded.subscribers, seen_ns = excluded.seen_ns"
    " WHERE excluded.seen_ns > reports.seen_ns"
)


class SqliteStore(SqliteFile):
    """One file per corpus beside the index; a connection per operation (forks, greenlets)."""

    schema = _SCHEMA
    busy_seconds = SQLITE_BUSY_SECONDS

    def day_key(self, day: int) -> bytes:
        """The day's key, made by whichever worker asks first; keys of past days are gone."""
        with self._transaction() as db:
            db.execute("DELETE FROM day_keys WHERE day < ?", (day - 1,))
            db.execute(
                "INSERT OR IGNORE INTO day_keys VALUES (?, ?)", (day, secrets.token_bytes(32))
            )
            return db.execute("SELECT key FROM day_keys WHERE day = ?", (day,)).fetchone()[0]

    def write(self, reports: dict[Report, tuple[int, int]], pollers: set[Hashed]) -> None:
        with self._transaction() as db:
            db.executemany(_UPSERT_REPORT, [(*k, *v) for k, v in reports.items()])
            db.executemany("INSERT OR IGNORE INTO pollers VALUES (?, ?, ?, ?)", pollers)

    def snapshot(self, feeds: Iterable[str], now: float) -> None:
        """Today's point of each feed's history is its count at the last flush; prune."""
        today = int(now // DAY)
        with self._transaction() as db:
            for feed in feeds:
                count = sum(self._aggregators(db, feed, now).values()) + self._direct(db, feed, now)
                db.execute("INSERT OR REPLACE INTO history VALUES (?, ?, ?)", (feed, today, count))
            db.execute("DELETE FROM history WHERE day <= ?", (today - HISTORY_DAYS,))
            db.execute("DELETE FROM pollers WHERE key_day < ?", (today,))
            db.execute("DELETE FROM reports WHERE seen_ns < ?", (_oldest_report_ns(now),))

    def report(self, now: float) -> list[FeedStats]:
        today = int(now // DAY)
        with self._connect() as db:
            feeds = [
                feed
                for (feed,) in db.execute(
                    "SELECT feed FROM reports UNION SELECT feed FROM pollers"
                    " UNION SELECT feed FROM history"
                )
            ]
            stats = []
            for feed in feeds:
                aggregators = self._aggregators(db, feed, now)
                direct = self._direct(db, feed, now)
                rows = db.execute(
                    "SELECT day, subscribers FROM history WHERE feed = ? AND day > ? ORDER BY day",
                    (feed, today - HISTORY_DAYS),
                )
                history = [(iso_day(day), count) for day, count in rows]
                total = sum(aggregators.values()) + direct
                stats.append(FeedStats(feed, total, aggregators, direct, history))
        return sort_stats(stats)

    @staticmethod
    def _aggregators(db: sqlite3.Connection, feed: str, now: float) -> dict[str, int]:
        rows = db.execute(
            "SELECT service, sum(subscribers) FROM reports WHERE feed = ? AND seen_ns >= ?"
            " GROUP BY service ORDER BY service",
            (feed, _oldest_report_ns(now)),
        )
        return dict(rows)

    @staticmethod
    def _direct(db: sqlite3.Connection, feed: str, now: float) -> int:
        hour = int(now // HOUR)
        return db.execute(
            "SELECT count(DISTINCT hash) FROM pollers WHERE feed = ? AND key_day = ? AND hour > ?",
            (feed, int(now // DAY), hour - WINDOW_HOURS),
        ).fetchone()[0]


def _oldest_report_ns(now: float) -> int:
    return int((now - REPORT_MAX_AGE_DAYS * DAY) * 1e9)


# A report replaces the stored one only when it is newer, whichever worker sends it.
_SET_REPORT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and tonumber(string.match(old, '^(%d+)')) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
return 1
"""


class RedisStore:
    """The same counts in Redis, shared by every host: a HyperLogLog of poller hashes per
    feed, key day and hour (PFCOUNT of 24 of them is the union), reported counts in a hash
    per feed, history in a hash per feed. Every key expires once it is no longer
    written to: a feed nobody polls leaves nothing behind."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._set_report = self.client.register_script(_SET_REPORT)
        self.feeds = REDIS_PREFIX + "feeds"

    def day_key(self, day: int) -> bytes:
        name = f"{REDIS_PREFIX}key:{day}"
        # Expires when day + 1 ends: it is used on days day - 1 and day (see the module).
        ttl = int((day + 2) * DAY - time.time()) + 1
        self.client.set(name, secrets.token_bytes(32), nx=True, ex=max(ttl, 1))
        return self.client.get(name)

    def write(self, reports: dict[Report, tuple[int, int]], pollers: set[Hashed]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for (feed, service, feed_id), (count, seen_ns) in reports.items():
            self._set_report(
                keys=[self._reports(feed)],
                args=[f"{service}\t{feed_id}", seen_ns, count],
                client=pipe,
            )
            pipe.expire(self._reports(feed), REPORT_MAX_AGE_DAYS * DAY)
        for feed, key_day, hour, digest in pollers:
            name = self._pollers(feed, key_day, hour)
            pipe.pfadd(name, digest)
            pipe.expireat(name, (key_day + 1) * DAY + HOUR)
        feeds = {feed for feed, *_ in reports} | {feed for feed, *_ in pollers}
        if feeds:
            pipe.sadd(self.feeds, *feeds)
            pipe.expire(self.feeds, HISTORY_DAYS * DAY)
        pipe.execute()

    def snapshot(self, feeds: Iterable[str], now: float) -> None:
        today = int(now // DAY)
        for feed in feeds:
            count = sum(self._aggregators(feed, now).values()) + self._direct(feed, now)
            history = self._history(feed)
            self.client.hset(history, str(today), count)
            self.client.expire(history, HISTORY_DAYS * DAY)
            old = [d for d in self.client.hkeys(history) if int(d) <= today - HISTORY_DAYS]
            if old:
                self.client.hdel(history, *old)

    def report(self, now: float) -> list[FeedStats]:
        today = int(now // DAY)
        stats = []
        for raw in self.client.smembers(self.feeds):
            feed = raw.decode("utf-8")
            aggregators = self._aggregators(feed, now)
            direct = self._direct(feed, now)
            days = sorted(
                (int(d), int(c)) for d, c in self.client.hgetall(self._history(feed)).items()
            )
            history = [(iso_day(d), c) for d, c in days if d > today - HISTORY_DAYS]
            total = sum(aggregators.values()) + direct
            stats.append(FeedStats(feed, total, aggregators, direct, history))
        return sort_stats(stats)

    def _aggregators(self, feed: str, now: float) -> dict[str, int]:
        totals: dict[str, int] = {}
        for name, value in self.client.hgetall(self._reports(feed)).items():
            seen_ns, count = value.split(b" ")
            if int(seen_ns) < _oldest_report_ns(now):
                self.client.hdel(self._reports(feed), name)
                continue
            service = name.decode("utf-8").split("\t", 1)[0]
            totals[service] = totals.get(service, 0) + int(count)
        return dict(sorted(totals.items()))

    def _direct(self, feed: str, now: float) -> int:
        hour, today = int(now // HOUR), int(now // DAY)
        names = [self._pollers(feed, today, h) for h in range(hour - WINDOW_HOURS + 1, hour + 1)]
        return int(self.client.pfcount(*names))

    def _reports(self, feed: str) -> str:
        return f"{REDIS_PREFIX}reports:{feed}"

    def _history(self, feed: str) -> str:
        return f"{REDIS_PREFIX}history:{feed}"

    def _pollers(self, feed: str, key_day: int, hour: int) -> str:
        return f"{REDIS_PREFIX}direct:{feed}:{key_day}:{hour}"


def open_store(settings: dict[str, Any]) -> Store:
    """Redis when the cache is shared by hosts, else a SQLite file beside the index."""
    if settings["CACHE_TYPE"] == "redis":
        return RedisStore(settings["CACHE_REDIS_URL"])
    return SqliteStore(default_db_path(settings))


def default_db_path(settings: dict[str, Any]) -> Path:
    """One file per corpus directory in the data directory: it outlives index rebuilds."""
    corpus = os.fsencode(os.path.realpath(settings["CORPUS_DIR"]))
    name = f"stats-{hashlib.sha256(corpus).hexdigest()[:16]}.sqlite3"
    return writable_data_directory(settings, "subscriber counts") / name


class Recorder:
    """One process's notes since the last flush, and the flushes."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self._store: Store | None = None
        self._batch = Batch()
        self._lock = threading.Lock()
        self._keys: dict[int, bytes] = {}
        self._failing = False
        self.errors = 0  # failed flushes: their notes are dropped, logged and counted

    def observe(self, feed: str, address: str, user_agent: str) -> str:
        """Note one answered poll of `feed`; returns the client's class (for the logs)."""
        agent = classify(user_agent)
        if agent.kind == AGGREGATOR:
            report = (feed, agent.service, agent.feed_id)
            self._batch.reports[report] = (agent.subscribers, time.time_ns())
        elif agent.kind == DIRECT:
            self._batch.polls.add((feed, int(time.time() // HOUR), address, user_agent))
        return agent.kind

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def flush(self) -> None:
        """Write what was noted; a store that fails loses this batch, logged once a spell."""
        with self._lock:
            batch, self._batch = self._batch, Batch()
            if not batch:
                return
            try:
                now = time.time()
                self.store.write(batch.reports, hashed(self._day_key, batch.polls))
                self.store.snapshot(batch.feeds, now)
                self._failing = False
            except STORE_ERRORS as error:
                self.errors += 1
                if not self._failing:
                    log.warning("stats store failed (%s); %s dropped", error, _size(batch))
                self._failing = True

    def _day_key(self, day: int) -> bytes:
        """Asked of the store once a day per process; forgotten when its day is over."""
        if day not in self._keys:
            self._keys = {d: k for d, k in self._keys.items() if d >= day - 1}
            self._keys[day] = self.store.day_key(day)
        return self._keys[day]

    def report(self) -> list[FeedStats]:
        self.flush()
        return self.store.report(time.time())


def _size(batch: Batch) -> str:
    return f"{len(batch.reports)} reports and {len(batch.polls)} polls"

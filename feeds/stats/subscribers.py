"""Subscribers per feed: aggregators' reported counts plus distinct direct pollers.

Requests are noted in each worker's memory (`Recorder.observe`, a dict and a set, no I/O) and
written to a store shared by every worker, and by every host through Redis, in one batch
a second (`feeds.http.observe.Flusher`, a greenlet per worker). The store aggregates, so
counts are exact whichever worker answered.

A direct poller is a client address and User-Agent. Neither is ever stored: the store
holds an HMAC of the two under a random key of the day, and deletes each key when its
day is over, so yesterday's hashes can no longer be tied to anyone. "Distinct in the
last 24 hours" spans two days and so two keys: every poll on day D is recorded under
the keys of days D and D + 1, and on day D the pollers of the last 24 hours are the
distinct day-D hashes of those hours. Each key thus lives two days. Reports are kept
the same way: on day D a feed's reports are those recorded under the key of day D,
made yesterday or today.

Nothing a client sends is trusted to be big (see `Limits`): one address (an IPv6 /64)
holds one report per feed (its latest, capped at `MAX_REPORTED`) and at most
`MAX_AGENTS_PER_ADDRESS` direct readers; each feed and day keeps at most
`MAX_REPORT_SOURCES` reporting addresses, `MAX_FEED_IDS` ids per service and
`MAX_SERVICES` services, and at most `MAX_DIRECT` direct readers. What goes over a limit
is skipped and counted (`feeds_stats_skipped_total`, logged once a minute).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

import redis

from feeds.postgres.database import Database, PostgresTables
from feeds.settings import Settings
from feeds.stats.agents import MAX_REPORTED
from feeds.stores import DeploymentFile, DeploymentKeys, Family, open_store
from feeds.tables import Sql, SqlTables

log = logging.getLogger("feeds.stats.subscribers")

HOUR = 3600
DAY = 86_400
WINDOW_HOURS = 24
HISTORY_DAYS = 90
SQLITE_BUSY_SECONDS = 1.0  # a write takes milliseconds and blocks the worker while it waits

MAX_AGENTS_PER_ADDRESS = 4  # direct readers (User-Agents) one address adds to a feed
MAX_REPORT_SOURCES = 64  # addresses whose reports a feed keeps per day
MAX_FEED_IDS = 8  # ids per service and feed
MAX_SERVICES = 16  # services per feed
MAX_DIRECT = 100_000  # direct readers a feed keeps per day
MAX_BATCH_NOTES = 1_000  # reports and polls one worker holds between two flushes
IPV6_NETWORK_BITS = 64  # an IPv6 client owns its whole /64
SOURCES_PER_QUERY = 500  # addresses whose pollers one query reads (SQLite allows 32,766 values)

SOURCE_BYTES = 8
AGENT_BYTES = 16
TAG_BYTES = 4  # what Redis keeps of an agent's hash to tell an address's agents apart

ReportKey = tuple[str, str]  # (feed, address): memory only
Reported = tuple[str, str, int, int]  # (service, the service's feed id, count, seen ns)
PollKey = tuple[str, int, str, str]  # (feed, hour, address, user agent): memory only
SourceReport = tuple[str, int, bytes, Reported]  # (feed, key day, source hash, report)
Poller = tuple[str, int, int, bytes, bytes]  # (feed, key day, hour, source hash, agent hash)


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
    """What one worker noted since its last flush; bounded (`MAX_BATCH_NOTES`)."""

    reports: dict[ReportKey, Reported] = field(default_factory=dict)
    polls: set[PollKey] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.reports or self.polls)

    def full(self) -> bool:
        return len(self.reports) + len(self.polls) >= MAX_BATCH_NOTES


class CountStore(Protocol):
    def day_key(self, day: int) -> bytes: ...
    def write(self, reports: list[SourceReport], pollers: list[Poller]) -> Counter[str]: ...
    def save_history(self, counts: dict[str, int], day: int) -> None: ...
    def report(self, now: float) -> list[FeedStats]: ...


class StoreUnavailable(Exception):
    """The store did not answer (or failed a moment ago): the pages answer 503."""


@lru_cache(maxsize=4096)
def client_network(address: str) -> str:
    """The unit of "one address": an IPv4 address, or the /64 of an IPv6 one."""
    if ":" not in address:  # IPv4 as the socket gives it (parsing was half a flush's cost)
        return address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_NETWORK_BITS}", strict=False))
    return str(ip)


def source_hash(key: bytes, address: str) -> bytes:
    return hmac.digest(key, f"source\n{client_network(address)}".encode(), "sha256")[:SOURCE_BYTES]


def poller_hash(key: bytes, address: str, user_agent: str) -> bytes:
    text = f"{client_network(address)}\n{user_agent}"
    return hmac.digest(key, text.encode("utf-8", "replace"), "sha256")[:AGENT_BYTES]


def key_days(hour: int) -> tuple[int, int]:
    """A note of this hour is recorded under the keys of its day and the next."""
    day = hour * HOUR // DAY
    return day, day + 1


def hashed(
    day_key: Callable[[int], bytes], batch: Batch, now: float
) -> tuple[list[SourceReport], list[Poller]]:
    """The batch as the store keeps it: addresses and User-Agents only as keyed hashes."""
    hour = int(now // HOUR)
    reports = [
        (feed, key_day, source_hash(day_key(key_day), address), reported)
        for (feed, address), reported in batch.reports.items()
        for key_day in key_days(hour)
    ]
    pollers = [
        (
            feed,
            key_day,
            poll_hour,
            source_hash(day_key(key_day), address),
            poller_hash(day_key(key_day), address, user_agent),
        )
        for feed, poll_hour, address, user_agent in batch.polls
        for key_day in key_days(poll_hour)
    ]
    return reports, pollers


def admit_report(
    kept: Iterable[tuple[bytes, str, str]], source: bytes, service: str, feed_id: str
) -> str:
    """ "" if a report from `source` may be kept beside `kept` (source, service, feed id) of
    its feed and day, else the limit it is over. Both stores decide with this."""
    sources, services, ids = set(), set(), set()
    for kept_source, kept_service, kept_id in kept:
        if kept_source == source:
            return ""  # the address's newer report replaces its older one
        sources.add(kept_source)
        services.add(kept_service)
        if kept_service == service:
            ids.add(kept_id)
    if len(sources) >= MAX_REPORT_SOURCES:
        return "report sources"
    if service not in services and len(services) >= MAX_SERVICES:
        return "services"
    if feed_id not in ids and len(ids) >= MAX_FEED_IDS:
        return "feed ids"
    return ""


def aggregate(reports: Iterable[Reported]) -> dict[str, int]:
    """Each (service, feed id)'s latest count, whoever reported it, summed per service."""
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    for service, feed_id, count, seen_ns in reports:
        if (service, feed_id) not in latest or seen_ns > latest[service, feed_id][1]:
            latest[service, feed_id] = (min(count, MAX_REPORTED), seen_ns)
    totals: dict[str, int] = {}
    for (service, _), (count, _) in latest.items():
        totals[service] = totals.get(service, 0) + count
    return dict(sorted(totals.items()))


def _by_feed_and_day(pollers: list[Poller]) -> dict[tuple[str, int], list[Poller]]:
    grouped: dict[tuple[str, int], list[Poller]] = {}
    for poller in pollers:
        grouped.setdefault(poller[:2], []).append(poller)
    return grouped


def feed_stats(
    feed: str, aggregators: dict[str, int], direct: int, history: dict[int, int], today: int
) -> FeedStats:
    """A feed's counts; today's history point is its count now."""
    direct = min(direct, MAX_DIRECT)
    total = sum(aggregators.values()) + direct
    days = {day: count for day, count in history.items() if today - HISTORY_DAYS < day < today}
    if total or today in history:
        days[today] = total
    points = [(iso_day(day), count) for day, count in sorted(days.items())]
    return FeedStats(feed, total, aggregators, direct, points)


def iso_day(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, UTC).date().isoformat()


def sort_stats(stats: list[FeedStats]) -> list[FeedStats]:
    """Feeds with a count or a history, most subscribed first; both stores answer so."""
    kept = [s for s in stats if s.subscribers or s.history]
    return sorted(kept, key=lambda s: (-s.subscribers, s.path))


_SCHEMA = """
DROP TABLE IF EXISTS reports;  -- version 1: a row per service and feed id, unbounded
DROP TABLE IF EXISTS pollers;  -- version 1: a row per poller and hour, unbounded
CREATE TABLE IF NOT EXISTS day_keys (day INTEGER PRIMARY KEY, key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS source_reports (
    feed TEXT NOT NULL, key_day INTEGER NOT NULL, source BLOB NOT NULL,
    service TEXT NOT NULL, feed_id TEXT NOT NULL,
    subscribers INTEGER NOT NULL, seen_ns INTEGER NOT NULL,
    PRIMARY KEY (feed, key_day, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS direct_pollers (
    feed TEXT NOT NULL, key_day INTEGER NOT NULL, source BLOB NOT NULL, agent BLOB NOT NULL,
    hour INTEGER NOT NULL,
    PRIMARY KEY (feed, key_day, source, agent)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS direct_hours (
    feed TEXT NOT NULL, key_day INTEGER NOT NULL, hour INTEGER NOT NULL,
    pollers INTEGER NOT NULL,
    PRIMARY KEY (feed, key_day, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    feed TEXT NOT NULL, day INTEGER NOT NULL, subscribers INTEGER NOT NULL,
    PRIMARY KEY (feed, day)
) WITHOUT ROWID;
"""


# The tables of the release before the limits: a file it wrote is trusted, and the schema
# script drops its two unbounded tables (feeds.sqlite.verify_schema).
_SCHEMA_BEFORE_LIMITS = """
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


class SqlCountStore(SqlTables):
    """The counts in SQL, the same for SQLite and PostgreSQL (`feeds.tables`). Every table is
    bounded by the limits per feed and day, and pruned."""

    def day_key(self, day: int) -> bytes:
        """The day's key, made by whichever worker asks first; keys of past days are gone."""
        with self._transaction() as db:
            db.execute("DELETE FROM day_keys WHERE day < ?", (day - 1,))
            for table in ("source_reports", "direct_pollers", "direct_hours"):  # once a day
                db.execute(f"DELETE FROM {table} WHERE key_day < ?", (day - 1,))
            db.execute(
                "INSERT INTO day_keys VALUES (?, ?) ON CONFLICT DO NOTHING",
                (day, secrets.token_bytes(32)),
            )
            return db.execute("SELECT key FROM day_keys WHERE day = ?", (day,)).fetchone()[0]

    def write(self, reports: list[SourceReport], pollers: list[Poller]) -> Counter[str]:
        """One batch in one transaction, in a few statements per feed and key day (not per
        note): a database across the network costs a round trip per statement."""
        skipped: Counter[str] = Counter()
        with self._transaction() as db:
            self._write_reports(db, reports, skipped)
            for (feed, key_day), group in _by_feed_and_day(pollers).items():
                self._add_pollers(db, feed, key_day, group, skipped)
        return skipped

    @staticmethod
    def _write_reports(db: Sql, reports: list[SourceReport], skipped: Counter[str]) -> None:
        """Each report admitted beside those kept (read once per feed and key day, then kept
        up to date here as the upsert below keeps the table)."""
        kept: dict[tuple[str, int], dict[bytes, tuple[str, str, int]]] = {}
        rows = []
        for feed, key_day, source, (service, feed_id, count, seen_ns) in reports:
            if (feed, key_day) not in kept:
                kept[feed, key_day] = {
                    row[0]: (row[1], row[2], row[3])
                    for row in db.execute(
                        "SELECT source, service, feed_id, seen_ns FROM source_reports"
                        " WHERE feed = ? AND key_day = ?",
                        (feed, key_day),
                    )
                }
            here = kept[feed, key_day]
            admitted = ((kept_source, *held[:2]) for kept_source, held in here.items())
            if over := admit_report(admitted, source, service, feed_id):
                skipped[over] += 1
                continue
            if source not in here or seen_ns > here[source][2]:
                here[source] = (service, feed_id, seen_ns)
            rows.append((feed, key_day, source, service, feed_id, count, seen_ns))
        if rows:
            db.executemany(
                "INSERT INTO source_reports VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (feed, key_day, source) DO UPDATE"
                " SET service = excluded.service, feed_id = excluded.feed_id,"
                " subscribers = excluded.subscribers, seen_ns = excluded.seen_ns"
                " WHERE excluded.seen_ns > source_reports.seen_ns",
                rows,
            )

    @staticmethod
    def _add_pollers(
        db: Sql, feed: str, key_day: int, group: list[Poller], skipped: Counter[str]
    ) -> None:
        """Count each poller of one feed and key day unless over a limit. Each poller is
        counted in the hour it was last seen (`direct_hours`), so a count reads at most 24
        rows; what the batch's addresses already hold is read once."""
        seen: dict[tuple[bytes, bytes], int] = {}  # (source, agent) -> hour last seen
        agents: Counter[bytes] = Counter()  # per source
        sources = sorted({source for *_, source, _ in group})
        for first in range(0, len(sources), SOURCES_PER_QUERY):
            chunk = sources[first : first + SOURCES_PER_QUERY]
            for source, agent, hour in db.execute(
                "SELECT source, agent, hour FROM direct_pollers WHERE feed = ? AND key_day = ?"
                f" AND source IN ({', '.join('?' * len(chunk))})",
                (feed, key_day, *chunk),
            ):
                seen[source, agent] = hour
                agents[source] += 1
        (stored,) = db.execute(
            "SELECT coalesce(sum(pollers), 0) FROM direct_hours WHERE feed = ? AND key_day = ?",
            (feed, key_day),
        ).fetchone()
        added, moved, hours = [], [], Counter[int]()
        for _, _, hour, source, agent in group:
            last = seen.get((source, agent))
            if last is None:
                if agents[source] >= MAX_AGENTS_PER_ADDRESS:
                    skipped["agents per address"] += 1
                    continue
                if stored >= MAX_DIRECT:
                    skipped["direct readers"] += 1
                    continue
                added.append((feed, key_day, source, agent, hour))
                agents[source] += 1
                stored += 1
            elif last < hour:
                moved.append((hour, feed, key_day, source, agent))
                hours[last] -= 1
            else:
                continue
            seen[source, agent] = hour
            hours[hour] += 1
        if added:
            db.executemany("INSERT INTO direct_pollers VALUES (?, ?, ?, ?, ?)", added)
        if moved:
            db.executemany(
                "UPDATE direct_pollers SET hour = ?"
                " WHERE feed = ? AND key_day = ? AND source = ? AND agent = ?",
                moved,
            )
        if gone := [(-n, feed, key_day, hour) for hour, n in sorted(hours.items()) if n < 0]:
            db.executemany(
                "UPDATE direct_hours SET pollers = pollers - ?"
                " WHERE feed = ? AND key_day = ? AND hour = ?",
                gone,
            )
        if came := [(feed, key_day, hour, n) for hour, n in sorted(hours.items()) if n > 0]:
            db.executemany(
                "INSERT INTO direct_hours VALUES (?, ?, ?, ?) ON CONFLICT (feed, key_day, hour)"
                " DO UPDATE SET pollers = direct_hours.pollers + excluded.pollers",
                came,
            )

    def save_history(self, counts: dict[str, int], day: int) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO history VALUES (?, ?, ?) ON CONFLICT (feed, day)"
                " DO UPDATE SET subscribers = excluded.subscribers",
                [(feed, day, count) for feed, count in counts.items()],
            )
            db.execute("DELETE FROM history WHERE day <= ?", (day - HISTORY_DAYS,))

    def report(self, now: float) -> list[FeedStats]:
        today, hour = int(now // DAY), int(now // HOUR)
        with self._connect() as db:
            feeds = db.execute(
                "SELECT feed FROM source_reports WHERE key_day = ?"
                " UNION SELECT feed FROM direct_hours WHERE key_day = ?"
                " UNION SELECT feed FROM history WHERE day > ?",
                (today, today, today - HISTORY_DAYS),
            ).fetchall()
            stats = []
            for (feed,) in feeds:
                reports = db.execute(
                    "SELECT service, feed_id, subscribers, seen_ns FROM source_reports"
                    " WHERE feed = ? AND key_day = ?",
                    (feed, today),
                )
                direct = db.execute(
                    "SELECT coalesce(sum(pollers), 0) FROM direct_hours"
                    " WHERE feed = ? AND key_day = ? AND hour > ?",
                    (feed, today, hour - WINDOW_HOURS),
                ).fetchone()[0]
                history = db.execute(
                    "SELECT day, subscribers FROM history WHERE feed = ? AND day > ?",
                    (feed, today - HISTORY_DAYS),
                )
                stats.append(feed_stats(feed, aggregate(reports), direct, dict(history), today))
        return sort_stats(stats)


class SqliteCountStore(DeploymentFile, SqlCountStore):
    """One file per deployment in the data directory (it outlives index rebuilds); a
    connection per operation (forks, greenlets)."""

    stem = "stats"
    purpose = "subscriber counts"
    schema = _SCHEMA
    earlier = (_SCHEMA_BEFORE_LIMITS,)
    busy_seconds = SQLITE_BUSY_SECONDS


class PostgresCountStore(PostgresTables, SqlCountStore):
    """The deployment's tables in PostgreSQL (`FEEDS_DATABASE_URL`), shared by hosts: the
    counts are exact whichever host answered."""

    purpose = "stats"


# A poller is counted (PFADD) when its address has room for one more User-Agent; the
# address keeps the first bytes of its agents' hashes, and a feed keeps MAX_DIRECT addresses.
# KEYS: addresses hash, HyperLogLog. ARGV: source, agent, tag bytes, agents, sources, expiry.
_ADD_POLLER = """
local tags = redis.call('HGET', KEYS[1], ARGV[1])
local tag = string.sub(ARGV[2], 1, tonumber(ARGV[3]))
local known = false
if tags then
  for i = 1, #tags, #tag do
    if string.sub(tags, i, i + #tag - 1) == tag then known = true end
  end
  if not known and #tags >= tonumber(ARGV[4]) * #tag then return 'agents per address' end
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  return 'direct readers'
end
if not known then redis.call('HSET', KEYS[1], ARGV[1], (tags or '') .. tag) end
redis.call('PFADD', KEYS[2], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[6])
redis.call('EXPIREAT', KEYS[2], ARGV[6])
return ''
"""

# A report replaces its address's stored one only when newer, whichever worker sends it;
# a new address is kept only while the feed and day have room for one.
# KEYS: the reports hash. ARGV: source, "seen_ns count service<TAB>feed id", sources, expiry.
_SET_REPORT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  if tonumber(string.match(old, '^(%d+)')) >= tonumber(string.match(ARGV[2], '^(%d+)')) then
    return ''
  end
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 'report sources'
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return ''
"""


class RedisCountStore(DeploymentKeys):
    """The same counts in Redis, shared by every host, under the deployment's own prefix:
    per feed and key day a hash of reports by address and a hash of addresses with their
    agents' tags, a HyperLogLog of poller hashes per feed, key day and hour (PFCOUNT of 24
    of them is the union), history in a hash per feed. Every key expires."""

    namespace = "stats:"

    def __init__(self, client: redis.Redis, deployment: str) -> None:
        super().__init__(client, deployment)
        self._add_poller = self.client.register_script(_ADD_POLLER)
        self._set_report = self.client.register_script(_SET_REPORT)
        self.feeds = self.prefix + "feeds"

    def day_key(self, day: int) -> bytes:
        name = f"{self.prefix}key:{day}"
        # Expires when day + 1 ends: it is used on days day - 1 and day (see the module).
        ttl = int((day + 2) * DAY - time.time()) + 1
        self.client.set(name, secrets.token_bytes(32), nx=True, ex=max(ttl, 1))
        key = self.client.get(name)
        if not isinstance(key, bytes):  # expired or evicted between the two calls
            raise redis.RedisError("the day's key is gone")
        return key

    def write(self, reports: list[SourceReport], pollers: list[Poller]) -> Counter[str]:
        skipped: Counter[str] = Counter()
        kept = self._kept_reports({(feed, key_day) for feed, key_day, *_ in reports})
        pipe = self.client.pipeline(transaction=False)
        for feed, key_day, source, (service, feed_id, count, seen_ns) in reports:
            here = kept[feed, key_day]
            if over := admit_report(here, source, service, feed_id):
                skipped[over] += 1
                continue
            here.append((source, service, feed_id))
            value = f"{seen_ns} {count} {service}\t{feed_id}"
            args: list[bytes | str | int] = [source, value, MAX_REPORT_SOURCES, _expiry(key_day)]
            self._set_report(keys=[self._reports(feed, key_day)], args=args, client=pipe)
        for feed, key_day, hour, source, agent in pollers:
            keys = [self._sources(feed, key_day), self._pollers(feed, key_day, hour)]
            args = [source, agent, TAG_BYTES, MAX_AGENTS_PER_ADDRESS, MAX_DIRECT, _expiry(key_day)]
            self._add_poller(keys=keys, args=args, client=pipe)
        feeds = {feed for feed, *_ in reports} | {feed for feed, *_ in pollers}
        if feeds:
            pipe.sadd(self.feeds, *feeds)
            pipe.expire(self.feeds, HISTORY_DAYS * DAY)
        skipped.update(r.decode() for r in pipe.execute() if isinstance(r, bytes) and r)
        return skipped

    def _kept_reports(self, days: set[tuple[str, int]]) -> dict[tuple[str, int], list]:
        """(source, service, feed id) already kept for each (feed, key day), in one trip."""
        pipe = self.client.pipeline(transaction=False)
        ordered = sorted(days)
        for feed, key_day in ordered:
            pipe.hgetall(self._reports(feed, key_day))
        kept: dict[tuple[str, int], list] = {}
        for where, stored in zip(ordered, pipe.execute() if ordered else [], strict=True):
            kept[where] = [
                (source, service, feed_id)
                for source, (service, feed_id, _, _) in _parsed_reports(stored)
            ]
        return kept

    def save_history(self, counts: dict[str, int], day: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        for feed, count in counts.items():
            pipe.hset(self._history(feed), str(day), count)
            pipe.hdel(self._history(feed), str(day - HISTORY_DAYS))
            pipe.expire(self._history(feed), HISTORY_DAYS * DAY)
        pipe.execute()

    def report(self, now: float) -> list[FeedStats]:
        today, hour = int(now // DAY), int(now // HOUR)
        members: set[bytes] = self.client.smembers(self.feeds)  # type: ignore[assignment]
        feeds = sorted(raw.decode("utf-8", "replace") for raw in members)
        pipe = self.client.pipeline(transaction=False)
        hours = range(hour - WINDOW_HOURS + 1, hour + 1)
        for feed in feeds:
            pipe.hgetall(self._reports(feed, today))
            pipe.pfcount(*[self._pollers(feed, today, h) for h in hours])
            pipe.hgetall(self._history(feed))
        results = pipe.execute() if feeds else []
        stats = []
        for i, feed in enumerate(feeds):
            reports, direct, history = results[3 * i : 3 * i + 3]
            aggregators = aggregate(reported for _, reported in _parsed_reports(reports))
            stats.append(feed_stats(feed, aggregators, int(direct), _days(history), today))
        return sort_stats(stats)

    def _reports(self, feed: str, key_day: int) -> str:
        return f"{self.prefix}reports:{feed}:{key_day}"

    def _sources(self, feed: str, key_day: int) -> str:
        return f"{self.prefix}sources:{feed}:{key_day}"

    def _history(self, feed: str) -> str:
        return f"{self.prefix}history:{feed}"

    def _pollers(self, feed: str, key_day: int, hour: int) -> str:
        return f"{self.prefix}direct:{feed}:{key_day}:{hour}"


def _expiry(key_day: int) -> int:
    """Notes under a day's key are read on that day only; gone an hour after it ends."""
    return (key_day + 1) * DAY + HOUR


def _parsed_reports(stored: dict[bytes, bytes]) -> list[tuple[bytes, Reported]]:
    """The reports hash as written by `RedisCountStore.write`; anything else is skipped."""
    found = []
    for source, value in stored.items():
        try:
            seen_ns, count, rest = value.decode("utf-8").split(" ", 2)
            service, feed_id = rest.split("\t", 1)
            found.append((source, (service, feed_id, int(count), int(seen_ns))))
        except ValueError:  # UnicodeDecodeError included
            continue
    return found


def _days(stored: dict[bytes, bytes]) -> dict[int, int]:
    days = {}
    for day, count in stored.items():
        if day.isdigit() and count.isdigit():
            days[int(day)] = int(count)
    return days


def open_counts(
    settings: Settings, client: Callable[[], redis.Redis], database: Callable[[], Database]
) -> CountStore:
    """The store `FEEDS_STATS_STORE` names: PostgreSQL or Redis shared by hosts, or this
    host's SQLite file."""
    return open_store(settings.store_kinds.stats, settings, COUNT_STORES, client, database)


COUNT_STORES: Family[CountStore] = Family(
    SqliteCountStore.for_deployment, RedisCountStore, PostgresCountStore
)

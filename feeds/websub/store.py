"""Subscriptions and the delivery queue, on disk (SQLite) or shared by hosts (Redis).

A subscription has at most one pending delivery, holding the newest content: a change
that comes before an older one was delivered replaces it, so a subscriber never gets
stale bytes after fresh ones. Content is stored once per rendered document, already
rendered by the reloading process, so whichever worker delivers sends the same bytes.
A claim moves the delivery's due time forward by a hold and gives it a new token in
one atomic step, so exactly one worker of one host makes each attempt; a worker that
dies mid-delivery lets the hold expire and the delivery is tried again. Each
subscription remembers the content last queued for it, so hosts that reload the same
corpus queue one delivery, not one per host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis
from redis.typing import EncodableT, FieldT

from feeds.postgres.database import Database, PostgresTables
from feeds.settings import Settings
from feeds.stores import DeploymentFile, DeploymentKeys, Family, open_store
from feeds.tables import Sql, SqlTables

SQLITE_BUSY_SECONDS = 1.0  # writes take milliseconds; a longer lock is an outage
MAX_FIELD_CHARS = 4096  # a callback, topic, secret, media type or Link header read back
MAX_SKIPS = 100  # malformed deliveries one claim drops before it gives up until the next poll

log = logging.getLogger("feeds.websub")


@dataclass(frozen=True, slots=True)
class Subscription:
    callback: str
    topic: str
    secret: str  # "" when the subscriber gave none
    expires_at: float  # epoch seconds
    host: str = ""  # who answered the callback's verification (client.host_key): its quota

    def live(self, now: float) -> bool:
        return self.expires_at > now


@dataclass(frozen=True, slots=True)
class Limits:
    """How many subscriptions the hub holds: in all, per callback host and per topic, so
    that no one party can take the room others need. Renewals are never refused."""

    total: int
    per_host: int
    per_topic: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.websub_max_subscriptions,
            settings.websub_max_per_host,
            settings.websub_max_per_topic,
        )

    def refusal(self, total: int, host: int, topic: int) -> str | None:
        """Why a new subscription is refused, given the counts now held; None: room."""
        if total >= self.total:
            return "this hub holds as many subscriptions as it allows"
        if host >= self.per_host:
            return f"this callback's host holds {self.per_host} subscriptions, the most allowed"
        if topic >= self.per_topic:
            return f"this topic has {self.per_topic} subscriptions, the most allowed"
        return None


@dataclass(frozen=True, slots=True)
class Content:
    """One rendered feed document as it is pushed."""

    body: bytes
    content_type: str
    link_header: str

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.body)
        digest.update(b"\0" + self.content_type.encode() + b"\0" + self.link_header.encode())
        return digest.hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery one worker holds until it reports done or retry."""

    callback: str
    topic: str
    attempts: int  # failed attempts before this one
    token: str
    content: Content | None  # None if it was purged meanwhile


class SubscriptionStore(Protocol):
    def check_writable(self) -> None: ...
    def get(self, callback: str, topic: str) -> Subscription | None: ...
    def refusal(self, callback: str, topic: str, host: str, limits: Limits) -> str | None: ...
    def put(self, subscription: Subscription, limits: Limits) -> str | None: ...
    def remove(self, callback: str, topic: str) -> None: ...
    def count(self) -> int: ...
    def topics(self, now: float) -> list[str]: ...
    def enqueue(self, topic: str, content: Content, now: float) -> int: ...
    def claim(self, now: float, hold_seconds: float) -> Claim | None: ...
    def done(self, claim: Claim) -> None: ...
    def retry(self, claim: Claim, due_at: float) -> None: ...
    def defer(self, claim: Claim, due_at: float) -> None: ...
    def purge(self, now: float) -> int: ...


def open_subscriptions(
    settings: Settings, client: Callable[[], redis.Redis], database: Callable[[], Database]
) -> SubscriptionStore:
    """The store `FEEDS_HUB_STORE` names: PostgreSQL or Redis shared by hosts, or this host's
    SQLite file."""
    return open_store(settings.store_kinds.hub, settings, HUB_STORES, client, database)


def _copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite file (the backup API), made whole or not at all."""
    partial = target.with_name(f"{target.name}.{secrets.token_hex(4)}.partial")
    try:
        with sqlite3.connect(source) as old, sqlite3.connect(partial) as new:
            old.backup(new)
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as error:
        log.warning("websub store: could not copy %s: %s", source.name, error)
    finally:
        partial.unlink(missing_ok=True)


def _text(value: object) -> str | None:
    """A stored string as the hub writes it: str (or UTF-8 bytes), short, no control chars."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
        return None
    return None if any(ord(c) < 32 or ord(c) == 127 for c in value) else value


def _number(value: object) -> float | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def subscription_from(
    callback: object, topic: object, secret: object, expires_at: object, host: object = ""
) -> Subscription | None:
    """A subscription read back from a store, or None (logged) if a value is not one the hub
    writes: whoever can write the store must not crash the hub or the delivery loop."""
    callback_, topic_, secret_, host_ = _text(callback), _text(topic), _text(secret), _text(host)
    expires = _number(expires_at)
    if not callback_ or not topic_ or secret_ is None or expires is None or host_ is None:
        log.warning("websub store: skipped a malformed subscription (%.80r)", callback)
        return None
    return Subscription(callback_, topic_, secret_, expires, host_)


def content_from(body: object, content_type: object, link_header: object) -> Content | None:
    """Stored content, or None (logged) when malformed: it is then treated as purged."""
    content_type_, link_header_ = _text(content_type), _text(link_header)
    if not isinstance(body, bytes) or content_type_ is None or link_header_ is None:
        log.warning("websub store: skipped malformed content (%.80r)", content_type)
        return None
    return Content(body, content_type_, link_header_)


def claim_from(
    callback: object, topic: object, attempts: object, token: str, content: Content | None
) -> Claim | None:
    """A claimed delivery, or None (logged) when its stored fields are malformed."""
    callback_, topic_, attempts_ = _text(callback), _text(topic), _number(attempts)
    if not callback_ or not topic_ or attempts_ is None or not 0 <= attempts_ < 1_000_000:
        log.warning("websub store: dropped a malformed delivery (%.80r)", callback)
        return None
    return Claim(callback_, topic_, int(attempts_), token, content)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    callback TEXT NOT NULL, topic TEXT NOT NULL, secret TEXT NOT NULL,
    expires_at REAL NOT NULL, queued_key TEXT NOT NULL DEFAULT '',
    host TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (callback, topic));
CREATE INDEX IF NOT EXISTS subscriptions_topic ON subscriptions (topic, expires_at);
CREATE INDEX IF NOT EXISTS subscriptions_host ON subscriptions (host);
CREATE TABLE IF NOT EXISTS contents (
    key TEXT PRIMARY KEY, content_type TEXT NOT NULL, link_header TEXT NOT NULL,
    body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    callback TEXT NOT NULL, topic TEXT NOT NULL, content_key TEXT NOT NULL,
    attempts INTEGER NOT NULL, due_at REAL NOT NULL, token TEXT NOT NULL,
    PRIMARY KEY (callback, topic));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due_at);
"""


# Releases before the quotas made subscriptions without `host`; such a file gains the
# column (ALTER TABLE rewrites the table's definition as below). Both layouts are trusted.
_SUBSCRIPTIONS_WITHOUT_HOST = """
CREATE TABLE IF NOT EXISTS subscriptions (
    callback TEXT NOT NULL, topic TEXT NOT NULL, secret TEXT NOT NULL,
    expires_at REAL NOT NULL, queued_key TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (callback, topic));
"""
_ADD_HOST = "ALTER TABLE subscriptions ADD COLUMN host TEXT NOT NULL DEFAULT '';"


class SqlSubscriptionStore(SqlTables):
    """The store's logic in SQL, the same for SQLite and PostgreSQL (`feeds.tables`)."""

    def check_writable(self) -> None:
        """Raise unless a write could start now (read-only file or directory, lock held)."""
        with self._transaction():
            pass

    def get(self, callback: str, topic: str) -> Subscription | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT callback, topic, secret, expires_at, host FROM subscriptions"
                " WHERE callback = ? AND topic = ?",
                (callback, topic),
            ).fetchone()
        return subscription_from(*row) if row else None

    def refusal(self, callback: str, topic: str, host: str, limits: Limits) -> str | None:
        with self._connect() as db:
            return self._refusal(db, callback, topic, host, limits)

    @staticmethod
    def _refusal(db: Sql, callback: str, topic: str, host: str, limits: Limits) -> str | None:
        known = db.execute(
            "SELECT 1 FROM subscriptions WHERE callback = ? AND topic = ?", (callback, topic)
        ).fetchone()
        if known:
            return None  # a renewal
        (total,) = db.execute("SELECT count(*) FROM subscriptions").fetchone()
        (hosts,) = db.execute(
            "SELECT count(*) FROM subscriptions WHERE host = ?", (host,)
        ).fetchone()
        (topics,) = db.execute(
            "SELECT count(*) FROM subscriptions WHERE topic = ?", (topic,)
        ).fetchone()
        return limits.refusal(total, hosts, topics)

    def put(self, subscription: Subscription, limits: Limits) -> str | None:
        """Add or renew; a new subscription beyond a limit is refused (the reason)."""
        s = subscription
        with self._transaction() as db:
            refused = self._refusal(db, s.callback, s.topic, s.host, limits)
            if refused:
                return refused
            db.execute(
                "INSERT INTO subscriptions (callback, topic, secret, expires_at, host)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (callback, topic) DO UPDATE"
                " SET secret = excluded.secret, expires_at = excluded.expires_at,"
                " host = excluded.host",
                (s.callback, s.topic, s.secret, s.expires_at, s.host),
            )
        return None

    def remove(self, callback: str, topic: str) -> None:
        with self._transaction() as db:
            for table in ("subscriptions", "deliveries"):
                db.execute(
                    f"DELETE FROM {table} WHERE callback = ? AND topic = ?", (callback, topic)
                )

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT count(*) FROM subscriptions").fetchone()[0]

    def topics(self, now: float) -> list[str]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT DISTINCT topic FROM subscriptions WHERE expires_at > ?", (now,)
            ).fetchall()
        return sorted(topic for (value,) in rows if (topic := _text(value)))  # any collation

    def enqueue(self, topic: str, content: Content, now: float) -> int:
        """A delivery of `content`, due now, for every live subscriber of `topic`."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO contents VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (content.key, content.content_type, content.link_header, content.body),
            )
            cursor = db.execute(
                "INSERT INTO deliveries"
                " SELECT callback, topic, ?, 0, ?, ? FROM subscriptions"
                " WHERE topic = ? AND expires_at > ? AND queued_key != ?"
                " ON CONFLICT (callback, topic) DO UPDATE SET content_key = excluded.content_key,"
                " attempts = 0, due_at = excluded.due_at, token = excluded.token",
                (content.key, now, secrets.token_hex(8), topic, now, content.key),
            )
            db.execute(
                "UPDATE subscriptions SET queued_key = ? WHERE topic = ? AND expires_at > ?",
                (content.key, topic, now),
            )
            return cursor.rowcount

    def claim(self, now: float, hold_seconds: float) -> Claim | None:
        """The delivery due first, held for `hold_seconds`; malformed ones are dropped."""
        for _ in range(MAX_SKIPS):
            found = self._claim_row(now, hold_seconds)
            if found is None or found[0] is not None:
                return None if found is None else found[0]
            self._drop(*found[1])
        return None

    def _claim_row(
        self, now: float, hold_seconds: float
    ) -> tuple[Claim | None, tuple[object, object]] | None:
        token = secrets.token_hex(8)
        with self._connect() as db:
            # Workers poll twice a second: only take the write lock when something is due.
            if (
                db.execute("SELECT 1 FROM deliveries WHERE due_at <= ? LIMIT 1", (now,)).fetchone()
                is None
            ):
                return None
            row = db.execute(
                "UPDATE deliveries SET due_at = ?, token = ? WHERE (callback, topic) ="
                " (SELECT callback, topic FROM deliveries WHERE due_at <= ?"
                f" ORDER BY due_at LIMIT 1{self.skip_locked})"
                " RETURNING callback, topic, attempts, content_key",
                (now + hold_seconds, token, now),
            ).fetchone()
            if row is None:
                return None
            found = db.execute(
                "SELECT body, content_type, link_header FROM contents WHERE key = ?", (row[3],)
            ).fetchone()
        content = content_from(*found) if found else None
        return claim_from(row[0], row[1], row[2], token, content), (row[0], row[1])

    def _drop(self, callback: object, topic: object) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM deliveries WHERE callback = ? AND topic = ?", (callback, topic))

    def done(self, claim: Claim) -> None:
        """Remove the delivery, unless a newer change replaced it meanwhile."""
        with self._connect() as db:
            db.execute(
                "DELETE FROM deliveries WHERE callback = ? AND topic = ? AND token = ?",
                (claim.callback, claim.topic, claim.token),
            )

    def retry(self, claim: Claim, due_at: float) -> None:
        self._reschedule(claim, due_at, claim.attempts + 1)

    def defer(self, claim: Claim, due_at: float) -> None:
        """Try again later without counting an attempt (the callback's host was busy)."""
        self._reschedule(claim, due_at, claim.attempts)

    def _reschedule(self, claim: Claim, due_at: float, attempts: int) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE deliveries SET attempts = ?, due_at = ?"
                " WHERE callback = ? AND topic = ? AND token = ?",
                (attempts, due_at, claim.callback, claim.topic, claim.token),
            )

    def purge(self, now: float) -> int:
        """Drop expired subscriptions, their deliveries and content nobody waits for."""
        with self._transaction() as db:
            expired = db.execute("DELETE FROM subscriptions WHERE expires_at <= ?", (now,)).rowcount
            db.execute(
                "DELETE FROM deliveries WHERE NOT EXISTS (SELECT 1 FROM subscriptions s"
                " WHERE s.callback = deliveries.callback AND s.topic = deliveries.topic)"
            )
            db.execute("DELETE FROM contents WHERE key NOT IN (SELECT content_key FROM deliveries)")
        return expired


class SqliteSubscriptionStore(DeploymentFile, SqlSubscriptionStore):
    """This host's file; a connection per operation: nothing is shared across forks,
    threads or greenlets."""

    stem = "websub"
    purpose = "websub subscriptions"
    schema = _SCHEMA
    earlier = (_SUBSCRIPTIONS_WITHOUT_HOST, _SUBSCRIPTIONS_WITHOUT_HOST + _ADD_HOST)
    busy_seconds = SQLITE_BUSY_SECONDS

    @classmethod
    def path_for(cls, settings: Settings) -> Path:
        """`FEEDS_WEBSUB_DB`, else the deployment's file: servers of one deployment on one
        host share subscriptions, others (staging beside production on one corpus) never do.

        Unnamed deployments keep the file they had (its name was the corpus path's hash, as
        their key is); a named one starts from a copy of that file, whose topics of other
        origins are never pushed and expire.
        """
        if settings.websub_db:
            return Path(settings.websub_db)
        path = super().path_for(settings)
        corpus = os.fsencode(os.path.realpath(settings.corpus_dir))
        earlier = path.with_name(f"websub-{hashlib.sha256(corpus).hexdigest()[:16]}.sqlite3")
        if not path.exists() and earlier.is_file():
            _copy(earlier, path)
        return path

    def migrate(self, db: sqlite3.Connection) -> None:
        columns = {row[1] for row in db.execute("PRAGMA table_info(subscriptions)")}
        if columns and "host" not in columns:  # a file of an earlier release
            db.execute(_ADD_HOST)


class PostgresSubscriptionStore(PostgresTables, SqlSubscriptionStore):
    """The deployment's tables in PostgreSQL (`FEEDS_DATABASE_URL`), shared by hosts; a claim
    skips the rows that another host's claim holds."""

    purpose = "websub"


def _sid(callback: str, topic: str) -> str:
    return hashlib.sha256(f"{callback}\0{topic}".encode()).hexdigest()[:32]


_COUNTS = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return false end
return {redis.call('HLEN', KEYS[1]), redis.call('SCARD', KEYS[2]), redis.call('SCARD', KEYS[3])}
"""
_PUT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3])
    or redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4])
    or redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[5]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""
_ENQUEUE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'callback', ARGV[3], 'topic', ARGV[4], 'attempts', 0,
           'content_key', ARGV[2], 'token', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
return 1
"""
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #ids == 0 then return false end
local key = ARGV[4] .. ids[1]
if redis.call('TYPE', key).ok ~= 'hash' or redis.call('HEXISTS', key, 'callback') == 0 then
  redis.call('ZREM', KEYS[1], ids[1])
  redis.call('DEL', key)
  return {}
end
local found = redis.call('HMGET', key, 'callback', 'topic', 'attempts', 'content_key')
redis.call('ZADD', KEYS[1], ARGV[2], ids[1])
redis.call('HSET', key, 'token', ARGV[3])
return {ids[1], found[1], found[2] or '', found[3] or '', found[4] or ''}
"""
_FINISH = """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[2], 'attempts', ARGV[4])
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"""


class RedisSubscriptionStore(DeploymentKeys):
    """The same store in Redis, for hosts that share FEEDS_CACHE_REDIS_URL.

    Keys, all under the deployment's prefix (`feeds:<16 hex>:websub:`, so deployments that
    share a Redis never see each other's): `subs` (hash id -> JSON subscription), `queued`
    (hash id -> content key last queued), `due` (sorted set id -> due time),
    `delivery:<id>` (hash) and `content:<key>` (hash, expiring). Claims and their
    completion are Lua scripts, so they are atomic across hosts.
    """

    namespace = "websub:"

    def __init__(self, client: redis.Redis, deployment: str) -> None:
        super().__init__(client, deployment)
        self._put = self.client.register_script(_PUT)
        self._counts = self.client.register_script(_COUNTS)
        self._enqueue = self.client.register_script(_ENQUEUE)
        self._claim = self.client.register_script(_CLAIM)
        self._finish = self.client.register_script(_FINISH)
        self.subs, self.due = self.prefix + "subs", self.prefix + "due"
        self.queued = self.prefix + "queued"

    def _delivery(self, sid: str) -> str:
        return f"{self.prefix}delivery:{sid}"

    def _all(self) -> list[Subscription]:
        found = (_subscription_json(raw) for raw in self.client.hvals(self.subs))
        return [subscription for subscription in found if subscription is not None]

    def check_writable(self) -> None:
        self.client.ping()

    def get(self, callback: str, topic: str) -> Subscription | None:
        raw = self.client.hget(self.subs, _sid(callback, topic))
        return _subscription_json(raw) if raw else None

    def _quota_keys(self, topic: str, host: str) -> list[str]:
        """The subscriptions hash, and the sets of ids of one callback host and one topic."""
        topic_id = hashlib.sha256(topic.encode()).hexdigest()[:32]
        return [self.subs, f"{self.prefix}host:{host}", f"{self.prefix}topic:{topic_id}"]

    def refusal(self, callback: str, topic: str, host: str, limits: Limits) -> str | None:
        keys = self._quota_keys(topic, host)
        counts = self._counts(keys=keys, args=[_sid(callback, topic)])
        return None if counts is None else limits.refusal(*(int(n) for n in counts))

    def put(self, subscription: Subscription, limits: Limits) -> str | None:
        s = subscription
        sid = _sid(s.callback, s.topic)
        earlier = self.get(s.callback, s.topic)
        raw = json.dumps(
            {
                "callback": s.callback,
                "topic": s.topic,
                "secret": s.secret,
                "expires_at": s.expires_at,
                "host": s.host,
            }
        )
        args: list[str | int] = [sid, raw, limits.total, limits.per_host, limits.per_topic]
        if not self._put(keys=self._quota_keys(s.topic, s.host), args=args):
            return self.refusal(s.callback, s.topic, s.host, limits) or "the hub is full"
        if earlier is not None and earlier.host != s.host:  # renewed from another address
            self.client.srem(self._quota_keys(s.topic, earlier.host)[1], sid)
        return None

    def remove(self, callback: str, topic: str) -> None:
        sid = _sid(callback, topic)
        stored = self.get(callback, topic)
        with self.client.pipeline() as pipe:
            pipe.hdel(self.subs, sid)
            pipe.hdel(self.queued, sid)
            pipe.delete(self._delivery(sid))
            pipe.zrem(self.due, sid)
            _, host_set, topic_set = self._quota_keys(topic, stored.host if stored else "")
            pipe.srem(host_set, sid)
            pipe.srem(topic_set, sid)
            pipe.execute()

    def count(self) -> int:
        return int(self.client.hlen(self.subs))

    def topics(self, now: float) -> list[str]:
        return sorted({s.topic for s in self._all() if s.live(now)})

    def enqueue(self, topic: str, content: Content, now: float) -> int:
        targets = [s for s in self._all() if s.topic == topic and s.live(now)]
        if not targets:
            return 0
        content_key = f"{self.prefix}content:{content.key}"
        mapping: dict[FieldT, EncodableT] = {
            "body": content.body,
            "content_type": content.content_type,
            "link_header": content.link_header,
        }
        with self.client.pipeline() as pipe:
            pipe.hset(content_key, mapping=mapping)
            pipe.expire(content_key, 30 * 86400)
            pipe.execute()
        token = secrets.token_hex(8)
        queued = 0
        for s in targets:
            sid = _sid(s.callback, s.topic)
            keys = [self.queued, self.due, self._delivery(sid)]
            args: list[str | float] = [sid, content.key, s.callback, s.topic, token, now]
            queued += int(self._enqueue(keys=keys, args=args))
        return queued

    def claim(self, now: float, hold_seconds: float) -> Claim | None:
        """The delivery due first, held for `hold_seconds`; malformed ones are dropped."""
        args: list[str | float] = [now, now + hold_seconds, "", self.prefix + "delivery:"]
        for _ in range(MAX_SKIPS):
            args[2] = token = secrets.token_hex(8)
            found = self._claim(keys=[self.due], args=args)
            if found is None:
                return None
            if found:
                sid, callback, topic, attempts, content_key = found
                content = self._content(self.prefix.encode() + b"content:" + content_key)
                claim = claim_from(callback, topic, attempts, token, content)
                if claim is not None and _sid(claim.callback, claim.topic).encode() == sid:
                    return claim
                if claim is not None:
                    log.warning("websub store: dropped a malformed delivery (%.80r)", sid)
                with self.client.pipeline() as pipe:
                    pipe.delete(self.prefix.encode() + b"delivery:" + sid)
                    pipe.zrem(self.due, sid)
                    pipe.execute()
            else:
                log.warning("websub store: dropped a malformed delivery record")
        return None

    def _content(self, key: bytes) -> Content | None:
        """The content under `key`; None when purged meanwhile or not a hash we wrote."""
        try:
            raw = self.client.hgetall(key)
        except redis.ResponseError:  # another type of value: someone else wrote this key
            log.warning("websub store: skipped malformed content (%.80r)", key)
            return None
        if not raw:
            return None
        return content_from(raw.get(b"body"), raw.get(b"content_type"), raw.get(b"link_header"))

    def _finish_claim(self, claim: Claim, due_at: str, attempts: int) -> None:
        sid = _sid(claim.callback, claim.topic)
        self._finish(
            keys=[self.due, self._delivery(sid)], args=[sid, claim.token, due_at, attempts]
        )

    def done(self, claim: Claim) -> None:
        self._finish_claim(claim, "", 0)

    def retry(self, claim: Claim, due_at: float) -> None:
        self._finish_claim(claim, repr(due_at), claim.attempts + 1)

    def defer(self, claim: Claim, due_at: float) -> None:
        self._finish_claim(claim, repr(due_at), claim.attempts)

    def purge(self, now: float) -> int:
        expired = [s for s in self._all() if not s.live(now)]
        for s in expired:
            self.remove(s.callback, s.topic)
        return len(expired)


_FIELDS = {"callback", "topic", "secret", "expires_at"}


def _subscription_json(raw: bytes | str) -> Subscription | None:
    """A subscription from the JSON the hub wrote (JSON only: nothing is ever unpickled)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict) or not _FIELDS <= set(value) <= {*_FIELDS, "host"}:
        log.warning("websub store: skipped a malformed subscription (%.80r)", raw)
        return None
    return subscription_from(**value)


HUB_STORES: Family[SubscriptionStore] = Family(
    SqliteSubscriptionStore.for_deployment, RedisSubscriptionStore, PostgresSubscriptionStore
)

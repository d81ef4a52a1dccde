"""Subscriber counts that cannot freeze a worker or be faked (issue #19), in both stores."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from feeds.app import create_app
from feeds.http.served import served
from feeds.runtime import Runtime
from feeds.settings import load_settings
from feeds.stats import subscribers
from feeds.stats.agents import MAX_REPORTED, classify
from feeds.stats.recorder import Recorder
from feeds.stats.subscribers import (
    MAX_AGENTS_PER_ADDRESS,
    MAX_FEED_IDS,
    MAX_REPORT_SOURCES,
    MAX_SERVICES,
    PostgresCountStore,
    RedisCountStore,
    SqliteCountStore,
    StoreUnavailable,
)
from tests.support import Server, wait_for
from tests.test_shared_cache import RedisServer
from tests.test_stats import FEEDLY, feed_stats, poll

FEED = "/feeds/topics/ai"
FAKE_FEEDLY = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; {} subscribers; feed-id={})"
HUGE = 10**15


class BlackHole:
    """A loopback peer that accepts connections and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)
        for connection in self.held:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    peer = BlackHole()
    yield peer
    peer.close()


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def stats_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The server settings (FEEDS_…) of one store; every store passes the same tests."""
    env = {"FEEDS_DATA_DIR": str(tmp_path / "data")}
    if request.param == "sqlite":
        yield env
        return
    if request.param == "postgresql":
        yield {**env, "FEEDS_DATABASE_URL": request.getfixturevalue("postgres_url")}
        return
    server = RedisServer(tmp_path)
    try:
        yield {**env, "FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": server.url}
    finally:
        server.stop()


def recorder_for(env: dict[str, str], **more: str) -> Recorder:
    settings = {key.removeprefix("FEEDS_"): value for key, value in {**env, **more}.items()}
    return Runtime(load_settings(settings)).recorder


def only(stats: list, path: str = FEED) -> subscribers.FeedStats:
    found = [s for s in stats if s.path == path]
    assert len(found) == 1, stats
    return found[0]


def test_an_enormous_count_is_capped_not_cut() -> None:
    """The count was read from its last 12 digits: 10**15 read as 0, 10**12 + 5 as 5."""
    assert classify(FAKE_FEEDLY.format(HUGE, 1)).subscribers == MAX_REPORTED
    assert classify(FAKE_FEEDLY.format(10**12 + 5, 1)).subscribers == MAX_REPORTED
    assert classify(FAKE_FEEDLY.format("1,204", 1)).subscribers == 1204


def test_one_address_adds_one_capped_report_and_a_few_readers(stats_env: dict) -> None:
    recorder = recorder_for(stats_env)
    for i in range(300):
        recorder.observe(FEED, "198.51.100.7", FAKE_FEEDLY.format(HUGE + i, f"fake{i}"))
        recorder.observe(FEED, "198.51.100.7", f"Reader/{i}.0")
        recorder.observe(FEED, f"2001:db8::{i:x}", f"Reader/{i}.0")  # one /64
    recorder.flush()
    stats = only(recorder.report())
    assert stats.aggregators == {"Feedly": MAX_REPORTED}
    assert stats.direct == 2 * MAX_AGENTS_PER_ADDRESS
    assert stats.subscribers == MAX_REPORTED + 2 * MAX_AGENTS_PER_ADDRESS
    assert recorder.skipped["agents per address"] > 0


def stored_entries(recorder: Recorder) -> int:
    """Rows of every SQLite or PostgreSQL table, or fields, members and keys in Redis."""
    store = recorder.store
    if isinstance(store, PostgresCountStore):
        with store.database.connection() as db:
            tables = db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = ?"
                " AND tablename != 'alembic_version'",
                (store.database.schema,),
            ).fetchall()
            return sum(
                db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for (name,) in tables
            )
    if isinstance(store, SqliteCountStore):
        with sqlite3.connect(store.path) as db:
            tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master")]
            return sum(
                db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                for name in tables
                if not name.startswith("sqlite_") and "_by_" not in name
            )
    assert isinstance(store, RedisCountStore)
    total = 0
    for key in store.client.scan_iter(store.prefix + "*"):
        kind = store.client.type(key)
        total += {b"hash": store.client.hlen, b"set": store.client.scard}.get(kind, lambda _: 1)(
            key
        )
    return total


def many_clients(recorder: Recorder, first: int, count: int) -> None:
    """`count` addresses with a feed id and two readers each, as many with a service each."""
    for i in range(first, first + count):
        address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        recorder.observe(FEED, address, FAKE_FEEDLY.format(5, f"id{i}"))
        service = f"Service{i}/1.0 (+https://s{i}.example; 5 readers)"
        recorder.observe(FEED, f"11.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", service)
        recorder.observe(FEED, address, f"Reader/{i}")
        recorder.observe(FEED, address, "Miniflux/2.1.0")
        if i % 400 == 399:
            recorder.flush()
    recorder.flush()


def test_the_store_stays_bounded_whatever_arrives(
    stats_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscribers, "MAX_DIRECT", 500)
    recorder = recorder_for(stats_env)
    many_clients(recorder, 0, 3000)
    entries = stored_entries(recorder)
    stats = only(recorder.report())
    many_clients(recorder, 3000, 3000)
    assert stored_entries(recorder) == entries  # thousands more clients: not one row more
    if "FEEDS_CACHE_TYPE" in stats_env:  # Redis counts distinct readers by HyperLogLog
        assert abs(stats.direct - 500) <= 10  # its standard error is 0.81 %
    else:
        assert stats.direct == 500
    assert len(stats.aggregators) <= MAX_SERVICES
    assert stats.aggregators["Feedly"] == 5 * MAX_FEED_IDS
    assert sum(stats.aggregators.values()) <= MAX_REPORT_SOURCES * 5
    # per feed and key day (two of them): reports, addresses with agents, counters, keys
    assert entries < 2 * (MAX_REPORT_SOURCES + 2 * 500 + 30) + 100


def test_direct_readers_are_those_of_the_last_24_hours(stats_env: dict) -> None:
    """A reader counts in the hour it was last seen: once, and only within the window."""
    store = recorder_for(stats_env).store
    now = time.time()
    today, hour = int(now // subscribers.DAY), int(now // subscribers.HOUR)
    old, moved, recent = b"a" * 16, b"b" * 16, b"c" * 16
    pollers = [(FEED, today, hour - 30, b"1" * 8, old), (FEED, today, hour - 5, b"2" * 8, moved)]
    pollers += [(FEED, today, hour - 1, b"2" * 8, moved), (FEED, today, hour - 2, b"3" * 8, recent)]
    store.write([], pollers)
    store.write([], [(FEED, today, hour - 1, b"2" * 8, moved)])  # seen again: still one
    assert only(store.report(now)).direct == 2


def test_two_deployments_keep_their_own_counts(stats_env: dict) -> None:
    staging = recorder_for(stats_env, FEEDS_DEPLOYMENT="staging")
    production = recorder_for(stats_env, FEEDS_DEPLOYMENT="production")
    staging.observe(FEED, "198.51.100.7", FEEDLY.format(45))
    staging.observe(FEED, "198.51.100.8", "Miniflux/2.1.0")
    staging.flush()
    production.observe("/feeds/all", "198.51.100.9", "Miniflux/2.1.0")
    production.flush()
    assert [(s.path, s.subscribers) for s in staging.report()] == [(FEED, 46)]
    assert [(s.path, s.subscribers) for s in production.report()] == [("/feeds/all", 1)]
    again = recorder_for(stats_env, FEEDS_DEPLOYMENT="staging")  # another host of staging
    assert [(s.path, s.subscribers) for s in again.report()] == [(FEED, 46)]


def test_only_current_feeds_are_counted(tmp_path: Path) -> None:
    """Custom feeds' queries, unknown feeds and paths create no stats rows."""
    app = create_app({"DATA_DIR": str(tmp_path / "data")})
    client = app.test_client()
    paths = [f"/feeds/custom.atom?topic=ai&n={i}" for i in range(20)]
    paths += [f"/feeds/topics/ai{i}.atom" for i in range(20)] + ["/feeds/topics/AI.rss"]
    paths += ["/feeds/topics/ai.atom"]  # the feed itself
    paths += [f"/feeds/topics/ai.atom?cache={i}" for i in range(20)]  # its canonical URL: 301s
    paths += ["/feeds/topics/ai/", "/feeds/all.xml", "/x.atom", "/feeds/custom.atom?zz=1"]
    for path in paths:
        client.get(path, headers={"User-Agent": "Miniflux/2.1.0"}).close()
    recorder = served(app).runtime.recorder
    recorder.flush()
    assert [(s.path, s.direct) for s in recorder.report()] == [(FEED, 1)]


def test_a_silent_store_fails_fast_and_logs_no_binary(
    black_hole: BlackHole, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = recorder_for(
        {"FEEDS_DATA_DIR": str(tmp_path), "FEEDS_CACHE_TYPE": "redis"},
        FEEDS_CACHE_REDIS_URL=black_hole.url,
    )
    recorder.observe(FEED, "198.51.100.7", "Miniflux/2.1.0")
    store = recorder.store
    assert isinstance(store, RedisCountStore)
    options = store.client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.5  # one try's
    with caplog.at_level(logging.WARNING, logger="feeds.stats"):
        recorder.flush()  # asks the silent store once: a timeout, no retry
        with pytest.raises(StoreUnavailable):
            recorder.report()  # failed a moment ago: not asked again
    assert len(black_hole.held) == 1, "one try in all: no retry, no second ask"
    text = caplog.text
    assert "stats store unavailable (TimeoutError)" in text
    assert "\\x" not in text and "198.51.100.7" not in text and "127.0.0.1" not in text
    assert recorder.skipped["store unavailable"] == 1


def test_a_redis_error_quoting_binary_arguments_is_logged_by_class(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py's pipeline errors quote the failed command, binary hashes included."""
    redis_server = RedisServer(tmp_path)
    try:
        env = {"FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url}
        recorder = recorder_for({"FEEDS_DATA_DIR": str(tmp_path), **env})
        store = recorder.store
        assert isinstance(store, RedisCountStore)
        day = int(time.time() // subscribers.DAY)
        for key_day in (day, day + 1):  # a key of the wrong type: every write to it fails
            store.client.set(store.prefix + f"sources:{FEED}:{key_day}", "x")
        recorder.observe(FEED, "198.51.100.7", "Miniflux/2.1.0")
        with caplog.at_level(logging.WARNING, logger="feeds.stats"):
            recorder.flush()
        assert "stats store unavailable (ResponseError)" in caplog.text
        assert "\\x" not in caplog.text and "EVALSHA" not in caplog.text
    finally:
        redis_server.stop()


# Through the real server


def test_feed_and_stats_requests_against_redis_never_freeze_a_worker(
    server_factory, tmp_path: Path
) -> None:
    """16 clients, each a feed GET then /stats.json, for 5 s: every request answered."""
    redis_server = RedisServer(tmp_path)
    try:
        server = server_factory(
            FEEDS_DATA_DIR=str(tmp_path / "data"),
            FEEDS_CACHE_TYPE="redis",
            FEEDS_CACHE_REDIS_URL=redis_server.url,
        )
        # Rendered once first (into Redis, for both workers): 16 first renders at once from
        # one address would meet the render gate's share, which is not this test's subject.
        assert server.get(f"{FEED}.atom").status_code == 200
        answers: list[int] = []
        failures: list[str] = []
        deadline = time.monotonic() + 5

        def client(number: int) -> None:
            with requests.Session() as session:
                for round_ in range(10_000):
                    if time.monotonic() > deadline:
                        return
                    agent = {"User-Agent": f"Reader{number}/{round_}"}
                    for path in (f"{FEED}.atom", "/stats.json"):
                        try:
                            response = session.get(server.url + path, headers=agent, timeout=5)
                            answers.append(response.status_code)
                        except requests.RequestException as error:
                            failures.append(type(error).__name__)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not failures, f"{len(failures)} failed, {len(answers)} answered"
        assert len(answers) >= 64 and set(answers) == {200}
        assert "WORKER TIMEOUT" not in server.log()
        stats = wait_for(lambda: feed_stats(server, FEED), lambda s: s and s["direct"] > 0)
        assert stats["direct"] == MAX_AGENTS_PER_ADDRESS  # one address, many User-Agents
    finally:
        redis_server.stop()


def test_a_black_hole_store_gives_quick_503s(
    server_factory, black_hole: BlackHole, tmp_path: Path
) -> None:
    # Only the counts are kept in the silent "Redis" (the hub's delivery loop would ask it
    # too), and one worker: each connection the black hole holds is one ask of its store.
    server: Server = server_factory(
        FEEDS_DATA_DIR=str(tmp_path / "data"),
        FEEDS_STATS_STORE="redis",
        FEEDS_CACHE_REDIS_URL=black_hole.url,
        WEB_CONCURRENCY="1",
    )
    for path in ("/stats.json", "/stats", "/metrics", "/stats.json"):
        # The client's timeout only bounds the wait: a store call that hung would fail here.
        response = requests.get(server.url + path, timeout=5)
        assert response.status_code == 503, (path, response.status_code)
        assert response.headers["Retry-After"] == "5"
        assert "try again" in response.text
    # Asked once, by the first page or the flush loop's first history save (both when they
    # overlap), then abandoned: the other pages were answered without asking it again.
    asked = wait_for(lambda: len(black_hole.held), lambda held: held >= 1, timeout=10)
    assert asked <= 2, f"the silent store was asked {asked} times"
    lines = wait_for(
        lambda: [line for line in server.log().splitlines() if "feeds.stats" in line],
        lambda lines: any("stats store unavailable (TimeoutError)" in line for line in lines),
        timeout=10,
    )
    assert not [line for line in lines if "\\x" in line or "127.0.0.1" in line]


def test_fake_aggregators_and_agents_from_one_address_add_a_fixed_amount(
    server_factory, stats_env: dict
) -> None:
    server = server_factory(**stats_env)
    for i in range(40):
        poll(server, FEED, FAKE_FEEDLY.format(HUGE + i, f"fake{i}"))
        poll(server, FEED, f"Reader/{i}")
    stats = wait_for(
        lambda: feed_stats(server, FEED),
        lambda s: s is not None and s["direct"] == MAX_AGENTS_PER_ADDRESS and s["aggregators"],
        timeout=10,
    )
    assert stats["aggregators"] == {"Feedly": MAX_REPORTED}
    assert stats["subscribers"] == MAX_REPORTED + MAX_AGENTS_PER_ADDRESS

"""The runtime opens each store and client once per process, and each store lands where its
own setting says."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from feeds.app import create_app
from feeds.http.served import served
from feeds.sqlite import SqliteFile
from feeds.stores import PerProcess
from feeds.websub.store import Limits, Subscription
from tests.test_shared_cache import RedisServer, redis_server  # noqa: F401  (a fixture)

TOPIC = "http://localhost/feeds/all.rss"
UNSUBSCRIBE = {
    "hub.mode": "unsubscribe",
    "hub.callback": "http://127.0.0.1:9/cb",
    "hub.topic": TOPIC,
}
READER = {"User-Agent": "Miniflux/2.1.0"}


def app_with(tmp_path: Path, **settings: str) -> Flask:
    return create_app(
        {"DATA_DIR": str(tmp_path / "data"), "WEBSUB_ALLOW_PRIVATE_CALLBACKS": "1", **settings}
    )


def ask_the_stores(app: Flask, times: int) -> None:
    """Requests that each use the hub's store (an unknown unsubscription: 400 after
    reading it) and the counts' store (the metrics, which count both)."""
    client = app.test_client()
    for _ in range(times):
        assert client.post("/websub", data=UNSUBSCRIBE).status_code == 400
        assert client.get("/metrics").status_code == 200


@pytest.fixture
def opened_files(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Every SQLite store opened (its directory made, WAL set, schema run), by path."""
    opened: list[Path] = []
    original = SqliteFile.__init__

    def counting(self: SqliteFile, path: Path) -> None:
        opened.append(path)
        original(self, path)

    monkeypatch.setattr(SqliteFile, "__init__", counting)
    yield opened


def test_requests_open_no_sqlite_store(tmp_path: Path, opened_files: list[Path]) -> None:
    app = app_with(tmp_path)
    ask_the_stores(app, 1)
    first = len(opened_files)
    assert first == 2  # the hub's and the counts', each at its first use in this process
    ask_the_stores(app, 5)
    assert len(opened_files) == first


def test_requests_share_one_redis_connection(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811  (the fixture)
) -> None:
    app = app_with(tmp_path, CACHE_TYPE="redis", CACHE_REDIS_URL=redis_server.url)
    info = redis.Redis.from_url(redis_server.url)
    ask_the_stores(app, 1)
    before = info.info("stats")["total_connections_received"]
    ask_the_stores(app, 5)
    assert info.info("stats")["total_connections_received"] == before


def test_a_part_made_in_one_process_is_made_again_after_a_fork() -> None:
    """What the gunicorn master opened before forking is never used by a worker."""
    part = PerProcess(object)
    made = part.get()
    assert part.get() is made
    child = os.fork()
    if child == 0:
        os._exit(0 if part.get() is not made and part.get() is part.get() else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert part.get() is made


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"RENDER_CACHE": "filesystem", "HUB_STORE": "redis", "STATS_STORE": "sqlite"},
            ("filesystem", "redis", "sqlite"),
        ),
        ({"CACHE_TYPE": "redis", "HUB_STORE": "sqlite"}, ("redis", "sqlite", "redis")),
    ],
)
def test_each_store_lands_where_its_own_setting_says(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811  (the fixture)
    settings: dict[str, str],
    expected: tuple[str, str, str],
) -> None:
    cache_dir, data = tmp_path / "cache", tmp_path / "data"
    app = app_with(tmp_path, CACHE_REDIS_URL=redis_server.url, CACHE_DIR=str(cache_dir), **settings)
    response = app.test_client().get("/feeds/all.rss", headers=READER)
    response.close()  # the poll is noted once its answer is sent
    assert response.status_code == 200
    runtime = served(app).runtime
    runtime.recorder.flush()
    subscription = Subscription("http://127.0.0.1:9/cb", TOPIC, "", 4e9)
    assert runtime.hub.get().put(subscription, Limits(10, 10, 10)) is None
    # Keys are feeds:<deployment>:websub:…, feeds:<deployment>:stats:… and, for rendered
    # documents, feeds:<code hash>:<corpus version>:<digest>.
    third = {key.split(b":")[2] for key in redis.Redis.from_url(redis_server.url).scan_iter()}
    files = {path.name.split("-")[0] for path in data.glob("*.sqlite3")}
    cached_in_redis = any(len(part) == 16 for part in third)
    found = (
        "redis" if cached_in_redis else "filesystem" if any(cache_dir.glob("*")) else "none",
        *(
            ("redis" if name.encode() in third else "") + ("sqlite" if name in files else "")
            for name in ("websub", "stats")
        ),
    )
    assert found == expected

"""Shared caches: a real redis-server and a shared directory between real servers."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import Server, free_port

BASE = {"FEEDS_BASE_URL": "https://feeds.example.org", "WEB_CONCURRENCY": "1"}


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; .ci/run installs it")
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def cache_stats(server: Server) -> dict[str, int]:
    return server.get("/healthz").json()["cache"]


def test_a_feed_rendered_by_one_instance_is_served_from_redis_by_another(
    server_factory, redis_server: RedisServer
) -> None:
    settings = {**BASE, "FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url}
    first, second = server_factory(**settings), server_factory(**settings)
    body = first.get("/feeds/all.atom").content
    assert cache_stats(first)["renders"] == 1
    keys = redis.Redis.from_url(redis_server.url).keys("feeds:*")
    assert len(keys) == 1
    assert second.get("/feeds/all.atom").content == body
    stats = cache_stats(second)
    assert (stats["shared_hits"], stats["renders"]) == (1, 0)
    second.get("/feeds/all.atom")  # now from the worker's own memory
    assert cache_stats(second)["shared_hits"] == 1


def test_different_corpora_never_share_bytes(
    server_factory, redis_server: RedisServer, corpus: Path
) -> None:
    settings = {**BASE, "FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url}
    full = server_factory(**settings)
    (corpus / "000_4904662d45091d22.txt").unlink()
    smaller = server_factory(**settings, FEEDS_CORPUS_DIR=str(corpus))
    assert full.get("/feeds/all.rss").content.count(b"<item>") == 2
    assert smaller.get("/feeds/all.rss").content.count(b"<item>") == 1
    assert cache_stats(smaller)["renders"] == 1


def test_feeds_survive_redis_going_down(server_factory, redis_server: RedisServer) -> None:
    settings = {**BASE, "FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url}
    server = server_factory(**settings)
    cached = server.get("/feeds/all.rss")
    redis_server.stop()
    assert server.get("/feeds/all.rss").content == cached.content
    paths = [
        "/feeds/topics/ai.atom",
        "/feeds/providers/wbur.org.json",
        "/feeds/all.json",
        "/feeds/topics/computer-vision.rss",
        "/feeds/all.atom?limit=1",
    ]
    for path in paths:
        response = server.get(path)
        assert response.status_code == 200, path
        assert len(response.content) > 500
    assert cache_stats(server)["shared_errors"] >= 1
    assert "shared cache read failed" in server.log()


def test_filesystem_cache_is_shared_by_instances(server_factory, tmp_path: Path) -> None:
    settings = {**BASE, "FEEDS_CACHE_TYPE": "filesystem", "FEEDS_CACHE_DIR": str(tmp_path)}
    first, second = server_factory(**settings), server_factory(**settings)
    body = first.get("/feeds/topics/ai.json").content
    assert second.get("/feeds/topics/ai.json").content == body
    assert cache_stats(second)["shared_hits"] == 1

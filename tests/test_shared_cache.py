"""Shared caches: a real redis-server and a shared directory between instances.

Each instance is an app made by `create_app` (its own index reader, memory cache and
counts) answering through Flask's test client: what is shared goes through the real
redis-server or the real directory, and the frames' checks are HTTP semantics, so no
gunicorn is started. Running real servers against Redis is tested in test_stats,
test_websub and test_hub_deployments.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from werkzeug.test import TestResponse

from feeds.app import create_app
from feeds.cache.rendered import prepare
from feeds.cache.shared import FIELDS, HEADER, MAGIC, FrameCodec
from feeds.http.served import served
from tests.support import decoded, free_port
from tests.test_cache import SECRET, MakesAFile

BASE = {"FEEDS_BASE_URL": "https://feeds.example.org"}
PATHS = ("/feeds/all.atom", "/feeds/all.rss", "/feeds/all.json", "/feeds/topics/ai.atom")


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


class Instance:
    """One instance of the app, made from `FEEDS_…` settings as a server's environment
    gives them, answering through Flask's test client."""

    def __init__(self, **env: str) -> None:
        self.app = create_app({name.removeprefix("FEEDS_"): value for name, value in env.items()})
        self.client = self.app.test_client()

    def get(self, path: str, headers: dict[str, str] | None = None) -> TestResponse:
        response = self.client.get(path, headers=headers or {})
        response.close()
        return response


@pytest.fixture
def instance() -> Callable[..., Instance]:
    return Instance


def cache_stats(server: Instance) -> dict[str, int]:
    stats: dict[str, int] = server.get("/healthz").get_json()["cache"]
    return stats


def test_a_feed_rendered_by_one_instance_is_served_from_redis_by_another(
    instance, redis_server: RedisServer
) -> None:
    settings = {**BASE, "FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url}
    first, second = instance(**settings), instance(**settings)
    body = first.get("/feeds/all.atom").get_data()
    assert cache_stats(first)["renders"] == 1
    keys = redis.Redis.from_url(redis_server.url).keys("feeds:*")
    assert len(keys) == 1
    assert second.get("/feeds/all.atom").get_data() == body
    stats = cache_stats(second)
    assert (stats["shared_hits"], stats["renders"]) == (1, 0)
    second.get("/feeds/all.atom")  # now from the worker's own memory
    assert cache_stats(second)["shared_hits"] == 1


def test_different_corpora_never_share_bytes(
    instance, redis_server: RedisServer, corpus: Path
) -> None:
    settings = {**BASE, "FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url}
    full = instance(**settings)
    (corpus / "000_4904662d45091d22.txt").unlink()
    smaller = instance(**settings, FEEDS_CORPUS_DIR=str(corpus))
    assert full.get("/feeds/all.rss").get_data().count(b"<item>") == 2
    assert smaller.get("/feeds/all.rss").get_data().count(b"<item>") == 1
    assert cache_stats(smaller)["renders"] == 1


def test_feeds_survive_redis_going_down(
    instance, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {**BASE, "FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url}
    server = instance(**settings)
    cached = server.get("/feeds/all.rss")
    redis_server.stop()
    assert server.get("/feeds/all.rss").get_data() == cached.get_data()
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
        assert len(response.get_data()) > 500
    assert cache_stats(server)["shared_errors"] >= 1
    assert "shared cache read failed" in caplog.text


def test_filesystem_cache_is_shared_by_instances(instance, tmp_path: Path) -> None:
    settings = {**BASE, "FEEDS_CACHE_TYPE": "filesystem", "FEEDS_CACHE_DIR": str(tmp_path)}
    first, second = instance(**settings), instance(**settings)
    body = first.get("/feeds/topics/ai.json").get_data()
    assert second.get("/feeds/topics/ai.json").get_data() == body
    assert cache_stats(second)["shared_hits"] == 1


def redis_settings(redis_server: RedisServer, **more: str) -> dict[str, str]:
    return {**BASE, "FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url, **more}


def key_per_path(server: Instance, client: redis.Redis) -> list[bytes]:
    """Serve each of PATHS once and note the one key each adds to Redis."""
    keys: list[bytes] = []
    for path in PATHS:
        before = set(client.keys("feeds:*"))
        assert server.get(path).status_code == 200
        (key,) = set(client.keys("feeds:*")) - before
        keys.append(key)
    return keys


def bodies(server: Instance) -> dict[str, bytes]:
    return {path: decoded(server.get(path)) for path in PATHS}


def test_a_pickle_written_into_redis_is_never_run(
    instance, redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = redis_settings(redis_server)
    client = redis.Redis.from_url(redis_server.url)
    expected = bodies(instance(**settings))
    marker = tmp_path / "unpickled"
    for key in client.keys("feeds:*"):  # cachelib's pickle form: "!" and the pickle
        client.set(key, b"!" + pickle.dumps(MakesAFile(marker)), keepttl=True)
    reader = instance(**settings)
    assert bodies(reader) == expected
    assert not marker.exists()
    assert (cache_stats(reader)["shared_hits"], cache_stats(reader)["renders"]) == (0, len(PATHS))
    assert "failed its checks" in caplog.text


def flip_body_byte(frame: bytes) -> bytes:
    at = HEADER.size + 10
    return frame[:at] + bytes([frame[at] ^ 0x20]) + frame[at + 1 :]


def grow_body_length(frame: bytes) -> bytes:
    """One more body byte in the header, one fewer ETag byte: lengths still add up.

    (The compressed forms are empty in frames written at render time: none was asked for.)
    """
    lengths = list(HEADER.unpack_from(frame)[1:])
    lengths[0] += 1
    lengths[FIELDS.index("etag")] -= 1
    return HEADER.pack(MAGIC, *lengths) + frame[HEADER.size :]


def huge_body_length(frame: bytes) -> bytes:
    lengths = list(HEADER.unpack_from(frame)[1:])
    lengths[0] = 2**32 - 1
    return HEADER.pack(MAGIC, *lengths) + frame[HEADER.size :]


TAMPERINGS: tuple[Callable[[bytes], bytes], ...] = (
    flip_body_byte,
    grow_body_length,
    lambda frame: frame[: len(frame) // 2],  # truncated
    huge_body_length,
)


def test_a_tampered_frame_is_a_miss_and_the_right_bytes_are_served(
    instance, redis_server: RedisServer
) -> None:
    settings = redis_settings(redis_server)
    client = redis.Redis.from_url(redis_server.url)
    writer = instance(**settings)
    keys = key_per_path(writer, client)
    expected = bodies(writer)
    for key, tamper in zip(keys, TAMPERINGS, strict=True):
        client.set(key, tamper(client.get(key)), keepttl=True)
    reader = instance(**settings)
    assert bodies(reader) == expected
    assert cache_stats(reader)["renders"] == len(PATHS)
    assert (
        decoded(reader.get("/feeds/all.atom", headers={"Accept-Encoding": "br"}))
        == (expected["/feeds/all.atom"])
    )


def spoof_every_feed(client: redis.Redis) -> bytes:
    """What an attacker who knows the frame but not the secret writes: a right checksum."""
    spoof = b"<feed>spoofed</feed>"
    rendered = prepare(spoof, datetime(2030, 1, 1, tzinfo=UTC), "text/html", "immutable")
    for key in client.keys("feeds:*"):
        name = key.decode().removeprefix("feeds:")
        client.set(key, FrameCodec().encode(name, rendered), keepttl=True)
    return spoof


def test_with_a_secret_a_spoofed_frame_is_refused(instance, redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    signed = redis_settings(redis_server, FEEDS_CACHE_SECRET=SECRET)
    expected = bodies(instance(**signed))
    spoof = spoof_every_feed(client)
    assert bodies(instance(**signed)) == expected
    # The same frames pass where there is no secret: only the HMAC refused them.
    client.flushdb()
    unsigned = redis_settings(redis_server)
    bodies(instance(**unsigned))
    spoof_every_feed(client)
    assert set(bodies(instance(**unsigned)).values()) == {spoof}


def test_every_key_in_redis_expires(instance, redis_server: RedisServer, tmp_path: Path) -> None:
    settings = {
        **redis_settings(redis_server, FEEDS_CACHE_TTL="600", FEEDS_ARCHIVE_PAGE_SIZE="1"),
        "FEEDS_DATA_DIR": str(tmp_path / "data"),  # paged by one from the first build
        "FEEDS_BASE_URL": "",
        "FEEDS_ALLOWED_HOSTS": "a.example b.example",
    }
    server = instance(**settings)
    for host in ("a.example", "b.example:8080"):
        for path in (*PATHS, "/feeds/all/archive/1.atom", "/", "/feeds.opml", "/feeds.css"):
            answer = server.get(path, headers={"Host": host, "User-Agent": "Miniflux/2.1.0"})
            assert answer.status_code == 200, path
    served(server.app).observer.flush()  # the counts, as a worker's flush loop writes them
    client = redis.Redis.from_url(redis_server.url)
    keys = client.keys("*")
    assert [key for key in keys if b":stats:" in key], keys
    cached = [key for key in keys if b":stats:" not in key]
    assert len(cached) >= 2 * len(PATHS)
    assert all(0 < client.ttl(key) <= 600 for key in cached)
    assert all(client.ttl(key) > 0 for key in keys)  # subscriber counts keep days, not forever


def test_a_pickle_in_the_cache_directory_is_never_run(instance, tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    settings = {**BASE, "FEEDS_CACHE_TYPE": "filesystem", "FEEDS_CACHE_DIR": str(directory)}
    expected = bodies(instance(**settings, FEEDS_CACHE_TTL="600"))
    count_file = hashlib.sha256(b"__wz_cache_count").hexdigest()
    entries = [path for path in directory.iterdir() if path.name != count_file]
    assert len(entries) == len(PATHS)
    for path in entries:  # cachelib's file form: the expiry time, then the value
        expires = struct.unpack("I", path.read_bytes()[:4])[0]
        assert time.time() < expires <= time.time() + 600
    marker = tmp_path / "unpickled"
    for path in directory.iterdir():
        path.write_bytes(struct.pack("I", 0) + pickle.dumps(MakesAFile(marker)))
    reader = instance(**settings)
    assert bodies(reader) == expected
    assert not marker.exists()
    assert cache_stats(reader)["shared_hits"] == 0

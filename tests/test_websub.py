"""The built-in WebSub hub, end to end: a real gunicorn and real subscribers on loopback."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from feeds.websub.store import RedisStore, SqliteStore, Store
from tests.support import Server, document
from tests.test_reload import reload_and_wait
from tests.test_shared_cache import RedisServer

WAIT = 20.0


@dataclass
class Call:
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Subscriber:
    """A WebSub subscriber on 127.0.0.1 that records every request it gets."""

    def __init__(self, echo: str = "challenge", status: int = 204) -> None:
        self.echo, self.status = echo, status
        self.calls: list[Call] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                owner.calls.append(Call("GET", query, dict(self.headers), b""))
                answer = query.get("hub.challenge", "") if owner.echo == "challenge" else owner.echo
                self._reply(200, answer.encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.calls.append(Call("POST", {}, dict(self.headers), body))
                self._reply(owner.status, b"")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/callback?id=1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def posts(self) -> list[Call]:
        return [call for call in self.calls if call.method == "POST"]

    def challenges(self, mode: str) -> list[Call]:
        return [c for c in self.calls if c.method == "GET" and c.query.get("hub.mode") == mode]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def subscribers() -> Iterator[Callable[..., Subscriber]]:
    started: list[Subscriber] = []

    def start(**kwargs: object) -> Subscriber:
        started.append(Subscriber(**kwargs))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for subscriber in started:
        subscriber.stop()


def hub_settings(tmp_path: Path, corpus: Path, **extra: str) -> dict[str, str]:
    return {
        "FEEDS_CORPUS_DIR": str(corpus),
        "FEEDS_WEBSUB_DB": str(tmp_path / "websub.sqlite3"),
        "FEEDS_WEBSUB_ALLOW_PRIVATE_CALLBACKS": "1",
        "FEEDS_WEBSUB_RETRY_SECONDS": "1",
        "FEEDS_WEBSUB_MAX_ATTEMPTS": "3",
        "FEEDS_WEBSUB_MIN_LEASE_SECONDS": "1",
        **extra,
    }


def wait_for(what: str, predicate: Callable[[], object], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def hub_request(server: Server, callback: str, topic: str, **fields: str) -> requests.Response:
    data = {"hub.mode": "subscribe", "hub.callback": callback, "hub.topic": topic}
    data.update({f"hub.{name}": value for name, value in fields.items()})
    return requests.post(server.url + "/websub", data=data, timeout=10)


def subscribe(
    server: Server, store: Store, subscriber: Subscriber, topic: str, **fields: str
) -> None:
    """Subscribe, and wait until the hub verified and stored the subscription."""
    response = hub_request(server, subscriber.url, topic, **fields)
    assert response.status_code == 202, response.text
    wait_for("stored", lambda: store.get(subscriber.url, topic) is not None)


def add_document(corpus: Path, name: str, topic: str) -> None:
    (corpus / f"{name}.md").write_text(
        document(
            title=f'"{name}"',
            publishedDateTime="2024-05-01T00:00:00Z",
            webUrl=f'"https://robots.example/{name}"',
            topics=f"\n  - {topic}",
            provider="\n  name: Robots\n  domain: robots.example",
        )
    )


def test_a_subscriber_gets_changed_feeds_signed_and_nothing_after_unsubscribing(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus))
    store = SqliteStore(tmp_path / "websub.sqlite3")
    everything, unchanged = subscribers(), subscribers()
    topic = server.url + "/feeds/all.rss"
    quiet_topic = server.url + "/feeds/providers/wbur.org.atom"
    subscribe(server, store, everything, topic, secret="s3cret", lease_seconds="3600")
    subscribe(server, store, unchanged, quiet_topic)
    (challenge,) = everything.challenges("subscribe")
    assert challenge.query["hub.topic"] == topic
    assert challenge.query["hub.lease_seconds"] == "3600"
    assert challenge.query["id"] == "1"  # the callback's own query is kept

    add_document(corpus, "first", "Robotics")
    reload_and_wait(server)
    wait_for("the changed feed is pushed", everything.posts)
    (push,) = everything.posts()
    current = server.get("/feeds/all.rss")
    assert push.body == current.content
    assert push.headers["Content-Type"] == current.headers["Content-Type"]
    expected = hmac.new(b"s3cret", push.body, hashlib.sha256).hexdigest()
    assert push.headers["X-Hub-Signature"] == f"sha256={expected}"
    assert f'<{topic}>; rel="self"' in push.headers["Link"]
    assert f'<{server.url}/websub>; rel="hub"' in push.headers["Link"]
    time.sleep(1)  # the unchanged feed's subscriber had every chance to be called
    assert unchanged.posts() == []

    assert hub_request(server, everything.url, topic, mode="unsubscribe").status_code == 202
    wait_for("unsubscribed", lambda: store.get(everything.url, topic) is None)
    assert everything.challenges("unsubscribe")
    add_document(corpus, "second", "Robotics")
    reload_and_wait(server)
    time.sleep(1.5)
    assert len(everything.posts()) == 1
    assert unchanged.posts() == []


def test_an_expired_lease_is_never_called(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus))
    store = SqliteStore(tmp_path / "websub.sqlite3")
    short, control = subscribers(), subscribers()
    topic = server.url + "/feeds/all.json"
    subscribe(server, store, short, topic, lease_seconds="1")
    subscribe(server, store, control, topic)
    assert short.challenges("subscribe")[0].query["hub.lease_seconds"] == "1"
    time.sleep(1.2)  # the lease ends
    add_document(corpus, "later", "Robotics")
    reload_and_wait(server)
    wait_for("the live subscriber is pushed", control.posts)
    time.sleep(1)
    assert short.posts() == []


def test_a_failing_subscriber_is_retried_with_backoff_then_dropped(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus))
    store = SqliteStore(tmp_path / "websub.sqlite3")
    failing = subscribers(status=500)
    topic = server.url + "/feeds/topics/robotics.atom"
    add_document(corpus, "first", "Robotics")
    reload_and_wait(server)
    subscribe(server, store, failing, topic)
    add_document(corpus, "second", "Robotics")
    reload_and_wait(server)
    wait_for("three attempts", lambda: len(failing.posts()) == 3)
    first, second, third = (call.at for call in failing.posts())
    assert 0.9 < second - first < third - second  # 1 s, then 2 s
    wait_for("dropped", lambda: store.get(failing.url, topic) is None)
    wait_for("logged", lambda: "dropped subscription" in server.log())
    time.sleep(1)
    assert len(failing.posts()) == 3


def test_verification_and_bounds(server_factory, subscribers, corpus: Path, tmp_path: Path) -> None:
    settings = hub_settings(tmp_path, corpus, FEEDS_WEBSUB_MAX_SUBSCRIPTIONS="1")
    server = server_factory(**settings)
    store = SqliteStore(tmp_path / "websub.sqlite3")
    topic = server.url + "/feeds/all.atom"
    liar, honest, late = subscribers(echo="not the challenge"), subscribers(), subscribers()
    assert hub_request(server, liar.url, topic).status_code == 202
    wait_for("verification refused", lambda: "not verified" in server.log())
    assert liar.challenges("subscribe") and store.get(liar.url, topic) is None
    subscribe(server, store, honest, topic)
    full = hub_request(server, late.url, topic)
    assert full.status_code == 429 and "subscriptions" in full.text
    never = hub_request(server, late.url, topic, mode="unsubscribe")
    assert never.status_code == 400 and "no subscription" in never.text
    assert late.calls == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"hub.topic": "/feeds/topics/no-such-topic.rss"}, "no-such-topic"),
        ({"hub.topic": "/feeds/all.rss?limit=5"}, "without a query"),
        ({"hub.topic": "/feeds/all/archive/1.rss"}, "archive"),
        ({"hub.topic": "https://elsewhere.example/feeds/all.rss"}, "must be a feed of"),
        ({"hub.mode": "publish"}, "hub.mode"),
        ({"hub.callback": "ftp://example.com/x"}, "http or https"),
        ({"hub.callback": "http://127.0.0.1:9/x"}, "private"),
        ({"hub.callback": "http://[::ffff:10.0.0.1]/x"}, "private"),
        ({"hub.secret": "x" * 200}, "200 bytes"),
        ({"hub.lease_seconds": "soon"}, "lease_seconds"),
        ({"hub.lease_seconds": "\u00b2"}, "lease_seconds"),  # isdigit() but not int()
        ({"hub.lease_seconds": "\u0661\u0662\u0663"}, "lease_seconds"),
        ({"hub.topic": "http://[::1/feeds/all.rss"}, "not a URL"),
    ],
)
def test_bad_requests_are_4xx_with_a_reason(
    seeds_server: Server, fields: dict[str, str], reason: str
) -> None:
    data = {
        "hub.mode": "subscribe",
        "hub.callback": "http://127.0.0.1:9/never-called",
        "hub.topic": "/feeds/all.rss",
        **fields,
    }
    data["hub.topic"] = (
        data["hub.topic"] if "://" in data["hub.topic"] else seeds_server.url + data["hub.topic"]
    )
    response = requests.post(seeds_server.url + "/websub", data=data, timeout=10)
    assert response.status_code == 400, response.text
    assert reason in response.text and response.text.count("\n") == 1


def test_subscriptions_survive_a_restart(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    settings = hub_settings(tmp_path, corpus, FEEDS_BASE_URL="https://feeds.example.org")
    first = server_factory(**settings)
    store = SqliteStore(tmp_path / "websub.sqlite3")
    subscriber = subscribers()
    topic = "https://feeds.example.org/feeds/topics/ai.atom"
    subscribe(first, store, subscriber, topic)
    first.stop()
    second = server_factory(**settings)
    add_document(corpus, "after-restart", "AI")
    reload_and_wait(second)
    wait_for("pushed after the restart", subscriber.posts)
    assert subscriber.posts()[0].body == second.get("/feeds/topics/ai.atom").content


def test_hosts_sharing_redis_share_subscriptions_and_push_once(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; .ci/run installs it")
    redis_server = RedisServer(tmp_path)
    try:
        settings = hub_settings(
            tmp_path,
            corpus,
            FEEDS_BASE_URL="https://feeds.example.org",
            FEEDS_CACHE_TYPE="redis",
            FEEDS_CACHE_REDIS_URL=redis_server.url,
        )
        hosts = [server_factory(**settings), server_factory(**settings)]
        store = RedisStore(redis_server.url)
        subscriber = subscribers()
        topic = "https://feeds.example.org/feeds/all.rss"
        subscribe(hosts[0], store, subscriber, topic, secret="k")
        add_document(corpus, "shared", "Robotics")
        for host in hosts:
            reload_and_wait(host)
        wait_for("pushed", subscriber.posts)
        time.sleep(1.5)  # both hosts queued the change; it is delivered once
        (push,) = subscriber.posts()
        assert push.body == hosts[1].get("/feeds/all.rss").content
        assert push.headers["X-Hub-Signature"].startswith("sha256=")
    finally:
        redis_server.stop()

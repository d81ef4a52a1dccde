"""The built-in WebSub hub, end to end: a real gunicorn and real subscribers on loopback.

The second half holds the hub against hostile peers and broken stores: slow callbacks are
real sockets on loopback that drip, stall or never finish; the hub must cut every exchange
at its deadline, keep them from starving others, read no more of a request body than it
allows, answer 503 when its store is down, and survive whatever a party that can write the
store put there.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import select
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
from flask.testing import FlaskClient

from feeds.settings import deployment_key, load_settings
from feeds.stores import redis_client
from feeds.websub.store import (
    Limits,
    PostgresSubscriptionStore,
    RedisSubscriptionStore,
    SqliteSubscriptionStore,
    Subscription,
    SubscriptionStore,
)
from tests.postgres import migrated
from tests.support import CLIENT_ORIGIN, Server, document, reloaded, worker_pids
from tests.test_shared_cache import RedisServer

WAIT = 20.0
# What a custom feed searching for "robot arm" (in the Robotics topic) selects.
ROBOT_ARM = document(
    title='"A robot arm learns to fold laundry"',
    publishedDateTime="2024-06-01T00:00:00Z",
    webUrl='"https://robots.example/arm"',
    topics="\n  - Robotics",
)
ROOMY = Limits(100_000, 100_000, 100_000)  # for subscriptions a test writes itself


@dataclass
class Call:
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Subscriber:
    """A WebSub subscriber on 127.0.0.1 that records every request it gets."""

    def __init__(self, echo: str = "challenge", status: int = 204, host: str = "127.0.0.1") -> None:
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

        server_class = ThreadingHTTPServer if ":" not in host else IPv6Server
        self.httpd = server_class((host, 0), Handler)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.httpd.server_address[1]}/callback?id=1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def posts(self) -> list[Call]:
        return [call for call in self.calls if call.method == "POST"]

    def challenges(self, mode: str) -> list[Call]:
        return [c for c in self.calls if c.method == "GET" and c.query.get("hub.mode") == mode]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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


def redis_hub(url: str, env: dict[str, str]) -> RedisSubscriptionStore:
    """The hub store in Redis of a server started with `env`."""
    return RedisSubscriptionStore(
        redis_client(url, 2.0), deployment_key(load_settings(environ=env))
    )


def prefix_of(env: dict[str, str]) -> str:
    """The Redis prefix of the hub of a server started with `env`."""
    return deployment_key(load_settings(environ=env)) + RedisSubscriptionStore.namespace


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


def first_build_pushed(server: Server) -> None:
    """Wait until a new server's first build queued its pushes (to the subscribers there
    are): a subscription made before that is also pushed the document from before a change."""
    wait_for("the first build's pushes queued", lambda: "deliveries queued for" in server.log())


def subscribe(
    server: Server, store: SubscriptionStore, subscriber: Subscriber, topic: str, **fields: str
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
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    everything, unchanged = subscribers(), subscribers()
    topic = server.url + "/feeds/all.rss"
    quiet_topic = server.url + "/feeds/providers/wbur.org.atom"
    subscribe(server, store, everything, topic, secret="s3cret", lease_seconds="3600")
    subscribe(server, store, unchanged, quiet_topic)
    (challenge,) = everything.challenges("subscribe")
    assert challenge.query["hub.topic"] == topic
    assert challenge.query["hub.lease_seconds"] == "3600"
    assert challenge.query["id"] == "1"  # the callback's own query is kept

    with reloaded(server):
        add_document(corpus, "first", "Robotics")
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
    with reloaded(server):
        add_document(corpus, "second", "Robotics")
    time.sleep(1.5)
    assert len(everything.posts()) == 1
    assert unchanged.posts() == []


def test_an_expired_lease_is_never_called(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus))
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    short, control = subscribers(), subscribers()
    topic = server.url + "/feeds/all.json"
    subscribe(server, store, short, topic, lease_seconds="1")
    subscribe(server, store, control, topic)
    assert short.challenges("subscribe")[0].query["hub.lease_seconds"] == "1"
    time.sleep(1.2)  # the lease ends
    with reloaded(server):
        add_document(corpus, "later", "Robotics")
    wait_for("the live subscriber is pushed", control.posts)
    time.sleep(1)
    assert short.posts() == []


def test_a_failing_subscriber_is_retried_with_backoff_then_dropped(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus))
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    failing = subscribers(status=500)
    topic = server.url + "/feeds/topics/robotics.atom"
    with reloaded(server):
        add_document(corpus, "first", "Robotics")
    subscribe(server, store, failing, topic)
    with reloaded(server):
        add_document(corpus, "second", "Robotics")
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
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
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
    seeds_client: FlaskClient, fields: dict[str, str], reason: str
) -> None:
    data = {
        "hub.mode": "subscribe",
        "hub.callback": "http://127.0.0.1:9/never-called",
        "hub.topic": "/feeds/all.rss",
        **fields,
    }
    data["hub.topic"] = (
        data["hub.topic"] if "://" in data["hub.topic"] else CLIENT_ORIGIN + data["hub.topic"]
    )
    response = seeds_client.post("/websub", data=data)
    assert response.status_code == 400, response.text
    assert reason in response.text and response.text.count("\n") == 1


def test_subscriptions_survive_a_restart(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    settings = hub_settings(tmp_path, corpus, FEEDS_BASE_URL="https://feeds.example.org")
    first = server_factory(**settings)
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    subscriber = subscribers()
    topic = "https://feeds.example.org/feeds/topics/ai.atom"
    first_build_pushed(first)
    subscribe(first, store, subscriber, topic)
    first.stop()
    second = server_factory(**settings)
    with reloaded(second):
        add_document(corpus, "after-restart", "AI")
    wait_for("pushed after the restart", subscriber.posts)
    assert subscriber.posts()[0].body == second.get("/feeds/topics/ai.atom").content


@pytest.fixture(params=["redis", "postgresql"])
def shared_hub(
    request: pytest.FixtureRequest, tmp_path: Path, corpus: Path
) -> Iterator[tuple[dict[str, str], SubscriptionStore]]:
    """Settings of hosts that share the hub's store, and that store."""
    base = hub_settings(tmp_path, corpus, FEEDS_BASE_URL="https://feeds.example.org")
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        settings = {**base, "FEEDS_DATABASE_URL": url}
        with migrated(url, deployment_key(load_settings(environ=settings))) as database:
            yield settings, PostgresSubscriptionStore(database)
        return
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; .ci/run installs it")
    redis_server = RedisServer(tmp_path)
    try:
        settings = {
            **base,
            "FEEDS_CACHE_TYPE": "redis",
            "FEEDS_CACHE_REDIS_URL": redis_server.url,
        }
        yield settings, redis_hub(redis_server.url, settings)
    finally:
        redis_server.stop()


def test_hosts_sharing_a_store_share_subscriptions_and_push_once(
    server_factory, subscribers, corpus: Path, tmp_path: Path, shared_hub
) -> None:
    settings, store = shared_hub
    # Each host has its own disk, so its own index; they share the hub's store.
    hosts = [
        server_factory(**settings, FEEDS_DATA_DIR=str(tmp_path / f"host-{number}"))
        for number in (1, 2)
    ]
    for host in hosts:  # a late first build would push its older document after subscribing
        first_build_pushed(host)
    subscriber = subscribers()
    topic = "https://feeds.example.org/feeds/all.rss"
    subscribe(hosts[0], store, subscriber, topic, secret="k")
    add_document(corpus, "shared", "Robotics")
    for host in hosts:  # each host's indexer sees the new file by itself
        wait_for("indexed", lambda host=host: b"shared" in host.get("/feeds/all.rss").content)
    wait_for("pushed", subscriber.posts)
    time.sleep(1.5)  # both hosts queued the change
    # Each document is delivered once, whichever hosts queued it. Two hosts with their own
    # indexes date the change by their own clocks (docs/corpus.md), so when their commits
    # fall in two seconds they serve, and push, two documents: one each.
    bodies = [push.body for push in subscriber.posts()]
    served = {host.get("/feeds/all.rss").content for host in hosts}
    digests = [hashlib.sha256(body).hexdigest()[:12] for body in bodies]
    assert len(bodies) == len(set(bodies)), f"a document was pushed twice: {digests}"
    assert set(bodies) <= served and len(bodies) <= len(served) <= 2
    assert all(p.headers["X-Hub-Signature"].startswith("sha256=") for p in subscriber.posts())


DEADLINE = 2  # FEEDS_WEBSUB_TIMEOUT_SECONDS in these tests
HANG_GUARD = 30.0  # waits end here whatever the hub does; far above DEADLINE, far below
LATE = "the callback did not finish within the hub's deadline"  # the client's deadline error
PEER_LIFETIME = 60.0  # no slow peer connection outlives this, whatever the hub does


@dataclass
class Exchange:
    request_line: bytes
    opened: float = field(default_factory=time.monotonic)
    closed: float | None = None  # when the exchange ended (a moment, for ordering)
    hung_up: bool = False  # the hub closed it, not the peer's own lifetime


# What each slow peer answers; "drip" and "endless" also trickle after these bytes.
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
MODES = ("slow headers", "stall after headers", "drip body", "endless body")


class SlowPeer:
    """A callback on 127.0.0.1 that answers in one of MODES and records when the hub hangs up.

    slow headers: the status line and headers, one byte a second; stall after headers:
    complete headers, then silence; drip body: headers, then a body byte a second; endless
    body: a chunked body whose one-byte chunks never end, two a second.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.exchanges: list[Exchange] = []
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/slow"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            exchange = Exchange(read_request(conn))
            self.exchanges.append(exchange)
            script = self._script()
            end = time.monotonic() + PEER_LIFETIME
            while not self.stopping.is_set() and time.monotonic() < end:
                step, pause = next(script)
                try:
                    conn.sendall(step)
                    conn.settimeout(pause)
                    if conn.recv(1) == b"":  # the hub closed the connection
                        exchange.hung_up = True
                        break
                except TimeoutError:
                    continue
                except OSError:
                    exchange.hung_up = True
                    break
            exchange.closed = time.monotonic()

    def _script(self) -> Iterator[tuple[bytes, float]]:
        """(bytes to send, seconds to wait for a hang-up before the next step)."""
        if self.mode == "slow headers":
            for byte in HEAD:
                yield bytes([byte]), 1.0
        elif self.mode == "stall after headers":
            yield HEAD, PEER_LIFETIME
        elif self.mode == "drip body":
            yield HEAD, 1.0
        else:
            yield CHUNKED_HEAD, 0.5
        while True:
            yield (
                (b"1\r\nx\r\n" if self.mode == "endless body" else b"x"),
                (0.5 if self.mode == "endless body" else 1.0),
            )

    def closed(self, request_start: bytes) -> list[Exchange]:
        return [
            e
            for e in self.exchanges
            if e.request_line.startswith(request_start) and e.closed is not None
        ]

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


def read_request(conn: socket.socket) -> bytes:
    """Read one request, head and body, so that what follows is only the hub's hang-up."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(
            b"content-length:"
        )),
        0,
    )  # fmt: skip
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head.split(b"\r\n", 1)[0]


@pytest.fixture
def slow_peers() -> Iterator[Callable[[str], SlowPeer]]:
    started: list[SlowPeer] = []

    def start(mode: str) -> SlowPeer:
        started.append(SlowPeer(mode))
        return started[-1]

    yield start
    for peer in started:
        peer.stop()


def store_subscription(store: SqliteSubscriptionStore, callback: str, topic: str) -> None:
    """A subscription the hub verified earlier (written directly: the test is about pushes)."""
    assert store.put(Subscription(callback, topic, "", time.time() + 3600), ROOMY) is None


def test_every_exchange_with_a_slow_callback_ends_at_the_deadline(
    server_factory, slow_peers, corpus: Path, tmp_path: Path
) -> None:
    settings = hub_settings(tmp_path, corpus, FEEDS_WEBSUB_TIMEOUT_SECONDS=str(DEADLINE))
    server = server_factory(**settings)
    topic = server.url + "/feeds/all.rss"
    peers = {mode: slow_peers(mode) for mode in MODES}
    for peer in peers.values():
        assert hub_request(server, peer.url, topic).status_code == 202
    # Each exchange ends by the hub's hang-up, reported as the deadline's error: no peer
    # ever finishes (each drips, stalls or trickles for PEER_LIFETIME), and a per-socket
    # timeout never ends a drip. The waits only guard against a hang.
    for mode, peer in peers.items():
        wait_for(f"verification cut ({mode})", lambda p=peer: p.closed(b"GET"), HANG_GUARD)
        (exchange,) = peer.closed(b"GET")
        assert exchange.hung_up, mode
        wait_for(f"logged ({mode})", lambda p=peer: f"{p.url}: {LATE}" in server.log())

    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    for peer in peers.values():
        store_subscription(store, peer.url, topic)
    with reloaded(server):
        add_document(corpus, "news", "Robotics")
    for mode, peer in peers.items():
        wait_for(f"delivery cut ({mode})", lambda p=peer: p.closed(b"POST"), HANG_GUARD)
        assert peer.closed(b"POST")[0].hung_up, mode
        wait_for(
            f"logged ({mode})",
            lambda p=peer: f"{p.url} failed (TimeoutError: {LATE})" in server.log(),
        )


def test_slow_callbacks_neither_refuse_nor_delay_other_subscribers(
    server_factory, slow_peers, subscribers, corpus: Path, tmp_path: Path
) -> None:
    # The slow peers hold their exchanges until the hub cuts them at this deadline; the
    # orderings below hold however slow a loaded machine makes the 256 requests before it.
    deadline = str(int(PEER_LIFETIME) - 10)
    server = server_factory(**hub_settings(tmp_path, corpus, FEEDS_WEBSUB_TIMEOUT_SECONDS=deadline))
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    topic = server.url + "/feeds/all.atom"
    slow = slow_peers("drip body")
    answers = [
        hub_request(server, f"{slow.url}?id={n}", topic).status_code for n in range(256)
    ]  # more than every verification slot of both workers before per-host shares
    assert set(answers) == {202, 429}, answers  # the slow host got its share, no more
    normal = subscribers(host="::1")  # another host
    subscribe(server, store, normal, topic)
    # Ordering, not durations: the other host was verified before any slow verification
    # had been cut at its deadline, so it waited for none of them.
    (challenge,) = normal.challenges("subscribe")
    assert slow.exchanges and challenge.at < first_close(slow, b"GET")

    for n in range(128):
        store_subscription(store, f"{slow.url}?push={n}", topic)
    with reloaded(server):
        add_document(corpus, "news", "Robotics")
    wait_for("the normal subscriber is pushed", normal.posts)
    pushes = [e for e in slow.exchanges if e.request_line.startswith(b"POST")]
    assert pushes, "the slow host was pushed to as well"
    assert normal.posts()[0].at < first_close(slow, b"POST"), "pushed without waiting"


def first_close(peer: SlowPeer, request_start: bytes) -> float:
    """When the first of the peer's exchanges of this kind ended (infinity while none has)."""
    return min((e.closed for e in peer.closed(request_start) if e.closed), default=math.inf)


def worker_rss_kib(server: Server) -> int:
    total = 0
    for pid in worker_pids(server):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def test_an_endless_chunked_subscription_request_is_413_before_it_is_read(
    server_factory, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus, WEB_CONCURRENCY="1"))
    before = worker_rss_kib(server)
    chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
    limit, sent = 64 * 1024 * 1024, 0  # a 400 MB body would go on; 64 MB tells enough
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), 10) as sock:
        sock.sendall(
            b"POST /websub HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        end = time.monotonic() + 15
        while sent < limit and time.monotonic() < end:
            if select.select([sock], [], [], 0)[0]:
                break  # answered
            sock.sendall(chunk)
            sent += len(chunk)
        answer = sock.recv(4096)
        sock.settimeout(5)
        while answer.startswith(b"HTTP/1.1 413") and b"at most" not in answer:
            more = sock.recv(4096)  # the headers and the body may come in two packets
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), (sent, answer[:200])
    assert b"at most 8192 bytes" in answer
    assert sent < limit
    assert worker_rss_kib(server) - before < 16 * 1024


def assert_503(server: Server, callback: str, topic: str) -> None:
    response = hub_request(server, callback, topic)
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert "try again later" in response.text


def test_the_hub_answers_503_while_redis_is_down(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path)
    try:
        settings = hub_settings(
            tmp_path, corpus, FEEDS_CACHE_TYPE="redis", FEEDS_CACHE_REDIS_URL=redis_server.url
        )
        server = server_factory(**settings)
    finally:
        redis_server.stop()
    assert_503(server, subscribers().url, server.url + "/feeds/all.rss")


def test_the_hub_answers_503_while_its_sqlite_store_is_locked_or_unwritable(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus))
    topic, subscriber = server.url + "/feeds/all.rss", subscribers()
    SqliteSubscriptionStore(
        tmp_path / "websub.sqlite3"
    )  # the schema exists; now another writer holds it
    holder = sqlite3.connect(tmp_path / "websub.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert_503(server, subscriber.url, topic)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert hub_request(server, subscriber.url, topic).status_code == 202

    # Tests run as root, whom file modes do not stop: /proc takes no new files from anyone.
    readonly = server_factory(**hub_settings(tmp_path, corpus, FEEDS_WEBSUB_DB="/proc/ws.db"))
    assert_503(readonly, subscriber.url, readonly.url + "/feeds/all.rss")


def sid(callback: str, topic: str) -> str:
    """The id under which the Redis store keeps a subscription (see store._sid)."""
    return hashlib.sha256(f"{callback}\0{topic}".encode()).hexdigest()[:32]


def test_hostile_values_in_redis_are_skipped_not_fatal(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path)
    try:
        settings = hub_settings(
            tmp_path, corpus, FEEDS_CACHE_TYPE="redis", FEEDS_CACHE_REDIS_URL=redis_server.url
        )
        server = server_factory(**settings)
        topic, subscriber = server.url + "/feeds/all.rss", subscribers()
        raw = redis.Redis.from_url(redis_server.url)
        p = prefix_of(settings)
        raw.hset(
            p + "subs",
            mapping={
                sid(subscriber.url, topic): b"\x80\x04\x95pickle?",  # its own id: read as missing
                "a": b"{not json",
                "b": b"[1, 2]",
                "c": b'{"callback": 1, "topic": [], "secret": {}, "expires_at": "soon"}',
                "d": b'{"callback": "http://x/", "topic": "t", "secret": "", "expires_at": 1e999}',
                "e": b"[" * 100_000,
            },
        )
        raw.zadd(p + "due", {"f": 0, "g": 0, "h": 0, os.urandom(8): 0})
        raw.hset(p + "delivery:f", mapping={"callback": b"\xff\xfe", "attempts": "many"})
        raw.set(p + "delivery:g", "not a hash")
        raw.hset(p + "delivery:h", mapping={"callback": "http://x/", "topic": "t",
                                            "attempts": "0", "content_key": "k"})  # fmt: skip
        raw.set(p + "content:k", "not a hash")

        subscribe(server, _RedisView(raw, p, subscriber.url, topic), subscriber, topic)
        with reloaded(server):
            add_document(corpus, "news", "Robotics")
        wait_for("the good subscriber is pushed", subscriber.posts)
        log = server.log()
        assert "skipped a malformed subscription" in log
        assert "dropped a malformed delivery" in log
        assert "could not queue deliveries" not in log and "store failed" not in log
        wait_for("every delivery done or dropped", lambda: raw.zcard(p + "due") == 0)
    finally:
        redis_server.stop()


@dataclass
class _RedisView:
    """Enough of a store for `subscribe` to see when the subscription is stored."""

    raw: redis.Redis
    prefix: str
    callback: str
    topic: str

    def get(self, callback: str, topic: str) -> object:
        value = self.raw.hget(self.prefix + "subs", sid(callback, topic))
        return value if value and value.startswith(b"{") else None


def test_hostile_rows_in_the_sqlite_store_are_skipped(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    server = server_factory(**hub_settings(tmp_path, corpus))
    topic, subscriber = server.url + "/feeds/all.rss", subscribers()
    with sqlite3.connect(tmp_path / "websub.sqlite3") as db:
        db.execute(
            "INSERT INTO subscriptions (callback, topic, secret, expires_at) VALUES (?, ?, ?, ?)",
            ("http://127.0.0.1:9/x", topic, b"\x00secret as a blob", "never"),
        )
    subscribe(server, store, subscriber, topic)
    with reloaded(server):
        add_document(corpus, "news", "Robotics")
    wait_for("the good subscriber is pushed", subscriber.posts)
    assert "skipped a malformed subscription" in server.log()


def test_a_custom_feed_is_a_topic_pushed_exactly_when_its_document_changes(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus))
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    subscriber = subscribers()
    topic = server.url + "/feeds/custom.atom?topic=robotics&q=%22robot%20arm%22"
    refused = hub_request(server, subscriber.url, server.url + "/feeds/custom.atom?q=Robot")
    assert refused.status_code == 400 and "canonical" in refused.text
    with reloaded(server):
        add_document(corpus, "seed-robotics", "Robotics")  # the topic must exist to subscribe
    subscribe(server, store, subscriber, topic)

    with reloaded(server):
        add_document(corpus, "unrelated", "Robotics")  # in the topic, but not "robot arm"
    time.sleep(1)  # every chance to be (wrongly) pushed
    assert subscriber.posts() == []

    with reloaded(server):
        (corpus / "arm.md").write_text(ROBOT_ARM)
    wait_for("the custom feed is pushed", subscriber.posts)
    (push,) = subscriber.posts()
    assert push.body == server.get("/feeds/custom.atom?topic=robotics&q=%22robot%20arm%22").content
    assert f'<{topic}>; rel="self"' in push.headers["Link"]
    assert b"A robot arm learns to fold laundry" in push.body

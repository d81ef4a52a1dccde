"""Subscribers, metrics and access logs through the real server (two workers)."""

from __future__ import annotations

import json
import re
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from requests.adapters import HTTPAdapter

from feeds.app import create_app
from feeds.http.observe import json_line
from feeds.http.stats import allowed
from feeds.stats.agents import AGGREGATOR, BROWSER, CRAWLER, DIRECT, OWN, classify
from feeds.stats.recorder import REPORT_CACHE_SECONDS
from feeds.stats.subscribers import (
    DAY,
    CountStore,
    PostgresCountStore,
    RedisCountStore,
    SqliteCountStore,
)
from feeds.stores import redis_client
from tests.postgres import migrated
from tests.support import Server, wait_for
from tests.test_browser import CHROMIUM, rendered_dom
from tests.test_shared_cache import RedisServer

FEEDLY = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; {} subscribers; like FeedFetcher-Google)"
INOREADER = "Inoreader/1.0 (+http://www.inoreader.com/feed-fetcher; 12 subscribers; )"
READERS = ("NetNewsWire/6.1 (Macintosh; macOS 14.4)", "Miniflux/2.1.0", "curl/8.5.0")
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
TOKEN = "t" * 40
FORMATS = ("rss", "atom", "json")


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (FEEDLY.format(42), (AGGREGATOR, "Feedly", "", 42)),
        (INOREADER, (AGGREGATOR, "Inoreader", "", 12)),
        (
            "NewsBlur Feed Fetcher - 5 subscribers - https://www.newsblur.com/site/1234/x "
            "(Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15)",
            (AGGREGATOR, "NewsBlur", "1234", 5),
        ),
        ("Feedbin feed-id:1602368 - 4 subscribers", (AGGREGATOR, "Feedbin", "1602368", 4)),
        (
            "Mozilla/5.0 (compatible; theoldreader.com; 8 subscribers; feed-id=0719795c4d27)",
            (AGGREGATOR, "The Old Reader", "0719795c4d27", 8),
        ),
        ("SomeReader/2.1 (1,204 readers)", (AGGREGATOR, "SomeReader", "", 1204)),
        (READERS[0], (DIRECT, "", "", 0)),
        ("", (DIRECT, "", "", 0)),
        (BROWSER_UA, (BROWSER, "", "", 0)),
        (GOOGLEBOT, (CRAWLER, "", "", 0)),
        ("feeds-websub-hub", (OWN, "", "", 0)),
    ],
)
def test_user_agents_are_classified(user_agent: str, expected: tuple) -> None:
    agent = classify(user_agent)
    assert (agent.kind, agent.service, agent.feed_id, agent.subscribers) == expected


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    """Each server counts into its own store."""
    return str(tmp_path / "data")


class FromAddress(HTTPAdapter):
    """Connections from another loopback address: the server sees another client."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def client_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def poll(server: Server, path: str, user_agent: str, address: str = "127.0.0.1") -> None:
    """A fresh connection each time, so the two workers share the requests."""
    with client_at(address) as client:
        for extension in FORMATS:
            response = client.get(
                f"{server.url}{path}.{extension}",
                headers={"User-Agent": user_agent, "Connection": "close"},
                timeout=10,
            )
            assert response.status_code == 200


def feed_stats(server: Server, path: str) -> dict | None:
    found = [feed for feed in server.get("/stats.json").json()["feeds"] if feed["path"] == path]
    return found[0] if found else None


def send_the_issue_s_requests(server: Server) -> None:
    poll(server, "/feeds/topics/ai", FEEDLY.format(40))
    poll(server, "/feeds/topics/ai", FEEDLY.format(45))  # the latest count wins
    poll(server, "/feeds/topics/ai", INOREADER, "127.0.0.2")  # one report per address
    for reader in READERS:
        poll(server, "/feeds/topics/ai", reader)
        poll(server, "/feeds/topics/ai", reader)  # a reader polling again is one reader
    poll(server, "/feeds/topics/ai", BROWSER_UA)
    poll(server, "/feeds/topics/ai", GOOGLEBOT)
    poll(server, "/feeds/topics/ai", "feeds-websub-hub")


EXPECTED = {
    "path": "/feeds/topics/ai",
    "subscribers": 60,
    "aggregators": {"Feedly": 45, "Inoreader": 12},
    "direct": 3,
}


def assert_exact_counts(server: Server) -> None:
    stats = wait_for(
        lambda: feed_stats(server, "/feeds/topics/ai"),
        lambda found: found is not None and found["subscribers"] == 60,
        timeout=10,
    )
    assert {key: stats[key] for key in EXPECTED} == EXPECTED
    assert [point["subscribers"] for point in stats["history"]] == [60]


def test_subscribers_are_exact_across_workers(server_factory, data_dir: str) -> None:
    server = server_factory(FEEDS_DATA_DIR=data_dir)
    send_the_issue_s_requests(server)
    assert_exact_counts(server)
    # The other worker may answer from its report of up to a second ago: ask until it agrees.
    page = wait_for(
        lambda: server.get("/stats"),
        lambda page: page.status_code == 200 and "/feeds/topics/ai" in page.text,
        timeout=5,
    )
    assert "<svg" in page.text


def test_subscribers_are_exact_across_hosts_through_redis(
    server_factory, data_dir: str, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path)
    try:
        settings = {
            "FEEDS_DATA_DIR": data_dir,
            "FEEDS_CACHE_TYPE": "redis",
            "FEEDS_CACHE_REDIS_URL": redis_server.url,
        }
        first, second = server_factory(**settings), server_factory(**settings)
        poll(first, "/feeds/topics/ai", FEEDLY.format(40))
        poll(second, "/feeds/topics/ai", FEEDLY.format(45))
        poll(first, "/feeds/topics/ai", INOREADER, "127.0.0.2")
        for reader in READERS:
            poll(first, "/feeds/topics/ai", reader)
            poll(second, "/feeds/topics/ai", reader)  # the same reader on the other host
        poll(second, "/feeds/topics/ai", BROWSER_UA)
        assert_exact_counts(first)
        assert_exact_counts(second)
    finally:
        redis_server.stop()


def test_no_address_or_reader_is_stored(server_factory, data_dir: str) -> None:
    server = server_factory(FEEDS_DATA_DIR=data_dir)
    poll(server, "/feeds/topics/ai", READERS[0])
    wait_for(lambda: feed_stats(server, "/feeds/topics/ai"), lambda found: found is not None)
    server.stop()
    stored = b"".join(path.read_bytes() for path in Path(data_dir).glob("stats-*"))
    assert stored
    assert b"127.0.0.1" not in stored
    assert b"NetNewsWire" not in stored


def metric_samples(server: Server) -> dict[tuple[str, tuple], float]:
    response = server.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_every_request_across_workers(server_factory, data_dir: str) -> None:
    server = server_factory(FEEDS_DATA_DIR=data_dir)
    sent = {"/feeds/all.rss": 7, "/feeds/topics/ai.json": 3, "/feeds/topics/nope.atom": 2}
    for path, times in sent.items():
        for _ in range(times):
            requests.get(server.url + path, timeout=10)
    etag = server.get("/feeds/all.rss").headers["ETag"]
    assert server.get("/feeds/all.rss", headers={"If-None-Match": etag}).status_code == 304

    def requests_total(samples: dict, kind: str, fmt: str, status: str) -> float:
        labels = (("format", fmt), ("kind", kind), ("status", status))
        return samples.get(("feeds_requests_total", labels), 0)

    # Each worker hands its counts to Prometheus once a second (and before a scrape it
    # answers): exact within a second, whichever worker answered.
    samples = wait_for(
        lambda: metric_samples(server),
        lambda found: (
            requests_total(found, "topics", "atom", "404") == 2
            and requests_total(found, "all", "rss", "200") == 8
            and requests_total(found, "all", "rss", "304") == 1
            and requests_total(found, "topics", "json", "200") == 3
        ),
        timeout=5,
    )

    assert requests_total(samples, "all", "rss", "200") == 8
    assert requests_total(samples, "all", "rss", "304") == 1
    assert requests_total(samples, "topics", "json", "200") == 3
    assert requests_total(samples, "topics", "atom", "404") == 2
    tiers = {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "feeds_cache_answers_total"
    }
    assert sum(tiers.values()) == 7 + 3 + 1 + 1  # every feed document answered; no 404
    assert tiers["render"] >= 2  # at least the first of each feed, per worker
    assert samples[("feeds_render_seconds_count", ())] == tiers["render"]
    assert samples[("feeds_corpus_documents", ())] == 2
    assert samples[("feeds_index_lag_files", ())] == 0
    assert samples[("feeds_websub_subscriptions", ())] == 0
    assert samples[("feeds_response_bytes_total", (("kind", "all"),))] > 0


PRIVATE = ("/metrics", "/stats", "/stats.json")


def test_only_loopback_without_a_proxy_or_the_token_may_look(server_factory, data_dir: str) -> None:
    server = server_factory(FEEDS_DATA_DIR=data_dir, FEEDS_STATS_TOKEN=TOKEN)
    for path in PRIVATE:
        assert server.get(path).status_code == 200, path
        for header in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
            assert server.get(path, headers=header).status_code == 404, (path, header)
            with_token = {**header, "Authorization": f"Bearer {TOKEN}"}
            assert server.get(path, headers=with_token).status_code == 200, path
            wrong = {**header, "Authorization": f"Bearer {'x' * 40}"}
            assert server.get(path, headers=wrong).status_code == 404, path


@pytest.fixture
def app_client(tmp_path: Path) -> FlaskClient:
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "STATS_TOKEN": TOKEN})
    return app.test_client()


@pytest.mark.parametrize("path", PRIVATE)
def test_other_addresses_need_the_token(app_client: FlaskClient, path: str) -> None:
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert app_client.get(path, environ_base=remote).status_code == 404
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert app_client.get(path, environ_base=remote, headers=headers).status_code == 200
    assert app_client.get(path, environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_the_rule_without_a_token() -> None:
    assert allowed({"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost:8000"}, "")
    assert allowed({"REMOTE_ADDR": "::1", "HTTP_HOST": "[::1]:8000"}, "")
    # A proxy that forwards no address still passes the public name.
    assert not allowed({"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "feeds.example.org"}, "")
    assert not allowed({"REMOTE_ADDR": "127.0.0.1"}, "")
    assert not allowed({"REMOTE_ADDR": "10.0.0.1", "HTTP_AUTHORIZATION": "Bearer "}, "")
    assert not allowed({"REMOTE_ADDR": "10.0.0.1"}, "")
    assert not allowed({"REMOTE_ADDR": ""}, "")


def access_lines(server: Server) -> list[dict]:
    lines = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_access_log_is_one_json_object_per_line(server_factory, data_dir: str) -> None:
    server = server_factory(FEEDS_DATA_DIR=data_dir)
    for _ in range(3):
        requests.get(server.url + "/feeds/all.atom", headers={"User-Agent": BROWSER_UA}, timeout=5)
    logged = wait_for(
        lambda: [e for e in access_lines(server) if e["path"] == "/feeds/all.atom"],
        lambda entries: len(entries) == 3,
        timeout=10,
    )
    assert {entry["status"] for entry in logged} == {200}
    assert {entry["agent"] for entry in logged} == {BROWSER}
    assert "render" in {entry["cache"] for entry in logged}
    assert set(logged[0]) == {
        "time",
        "method",
        "path",
        "status",
        "bytes",
        "duration_ms",
        "cache",
        "agent",
    }
    assert all(entry["bytes"] > 0 and entry["duration_ms"] >= 0 for entry in logged)
    stamp = datetime.fromisoformat(logged[0]["time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", logged[0]["time"])
    assert abs(stamp.timestamp() - time.time()) < 60


def test_access_log_lines_stay_json_whatever_the_path(server_factory, data_dir: str) -> None:
    """The lines are written without json.dumps: quotes, backslashes, control characters
    and non-ASCII bytes in a client's path must still give one valid JSON object."""
    server = server_factory(FEEDS_DATA_DIR=data_dir)
    requests.get(server.url + "/a%22b%5Cc%C3%A9%0A%09?q=%22%5C", timeout=5)
    logged = wait_for(
        lambda: [e for e in access_lines(server) if e["path"].startswith("/a")],
        lambda entries: len(entries) == 1,
        timeout=10,
    )
    # WSGI gives the decoded path as Latin-1 characters, one per byte
    assert logged[0]["path"] == '/a"b\\c\u00c3\u00a9\n\t?q=%22%5C'
    assert (logged[0]["status"], logged[0]["method"], logged[0]["cache"]) == (404, "GET", None)


@pytest.mark.parametrize(
    ("method", "path", "query", "cache"),
    [
        ("GET", "/feeds/topics/ai.rss", "", "fast"),
        ("HEAD", "/feeds/custom.atom", "topic=ai&q=robot%20arm", ""),
        ("GET", '/a"b\\c\u00c3\u00a9\n\t\x7f\x9b\x00', 'q="\\', "render"),  # Latin-1, as WSGI
        ("G\u00c9T", "/\u2028\ud800", "", ""),
        ("GET", "/delete\x7f", "", ""),  # ASCII, but DEL
    ],
)
def test_an_access_log_line_is_json_dumps_output_in_printable_ascii(
    method: str, path: str, query: str, cache: str
) -> None:
    """The line format is what `json.dumps` writes (ASCII only), whatever a client sent."""
    time_ns = 1_795_000_000_123_456_789
    line = json_line((time_ns, method, path, query, 304, 1429, 0.0003124, cache, "browser"))
    expected = {
        "time": "2026-11-18T11:06:40.123+00:00",
        "method": method,
        "path": f"{path}?{query}" if query else path,
        "status": 304,
        "bytes": 1429,
        "duration_ms": 0.312,
        "cache": cache or None,
        "agent": "browser",
    }
    assert line == json.dumps(expected, separators=(",", ":")).encode("ascii") + b"\n"
    assert all(32 <= byte < 127 for byte in line[:-1])


def test_access_log_can_be_gunicorn_s_classic_one(server_factory, data_dir: str) -> None:
    server = server_factory(FEEDS_DATA_DIR=data_dir, FEEDS_ACCESS_LOG="classic")
    server.get("/feeds/all.atom")
    wait_for(server.log, lambda text: '"GET /feeds/all.atom HTTP/1.1" 200' in text, timeout=10)
    assert not access_lines(server)


def test_stats_page_draws_a_chart_in_chromium(server_factory, data_dir: str) -> None:
    if CHROMIUM is None:
        pytest.skip("needs Chromium")
    server = server_factory(FEEDS_DATA_DIR=data_dir)
    send_the_issue_s_requests(server)
    assert_exact_counts(server)
    # The other worker may still hold a report made before the counts were complete; every
    # report made from now on is complete, and none older outlives REPORT_CACHE_SECONDS.
    time.sleep(REPORT_CACHE_SECONDS)
    dom = rendered_dom(server.url + "/stats?sort=path")
    rows = dom.xpath("//table[@class='stats']/tbody/tr")
    assert [row.xpath("string(th)") for row in rows] == ["/feeds/topics/ai"]
    assert rows[0].xpath("string(td[1])").strip() == "60"
    lines = rows[0].xpath(".//*[local-name()='svg']/*[local-name()='polyline']/@points")
    assert len(lines) == 1 and len(lines[0].split()) == 90


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgresql"])
def test_a_late_flush_of_an_older_report_does_not_win(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Workers flush in any order: the report made last wins, not the one written last."""
    with ExitStack() as stack:
        store: CountStore
        if backend == "redis":
            redis_server = RedisServer(tmp_path)
            stack.callback(redis_server.stop)
            store = RedisCountStore(redis_client(redis_server.url, 0.5), "feeds:test:")
        elif backend == "postgresql":
            url = request.getfixturevalue("postgres_url")
            store = PostgresCountStore(stack.enter_context(migrated(url)))
        else:
            store = SqliteCountStore(tmp_path / "stats.sqlite3")
        now = time.time()
        today, source = int(now // DAY), b"s" * 8
        store.write([("/feeds/topics/ai", today, source, ("Feedly", "", 45, time.time_ns()))], [])
        older = ("Feedly", "", 40, time.time_ns() - 1_000_000_000)
        store.write([("/feeds/topics/ai", today, source, older)], [])
        assert store.report(now)[0].aggregators == {"Feedly": 45}

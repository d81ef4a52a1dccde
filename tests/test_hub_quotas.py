"""Quotas per callback host and per topic, through the real server and its store.

One host subscribing again and again gets a 429 once it holds its share, whatever names,
ports and paths its callbacks use, while a subscriber on another host is still accepted;
a renewal is never refused; and one topic holds at most its share.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeds.settings import deployment_key, load_settings
from feeds.websub.store import (
    PostgresSubscriptionStore,
    SqliteSubscriptionStore,
    SubscriptionStore,
)
from tests.postgres import migrated
from tests.support import Server
from tests.test_shared_cache import RedisServer
from tests.test_websub import hub_request, hub_settings, redis_hub, subscribe, wait_for


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def quota_hub(
    request: pytest.FixtureRequest, server_factory, corpus: Path, tmp_path: Path
) -> Iterator[tuple[Server, SubscriptionStore]]:
    limits = {
        "FEEDS_WEBSUB_MAX_SUBSCRIPTIONS": "10",
        "FEEDS_WEBSUB_MAX_PER_HOST": "2",
        "FEEDS_WEBSUB_MAX_PER_TOPIC": "2",
    }
    if request.param == "sqlite":
        env = hub_settings(tmp_path, corpus, **limits)
        yield server_factory(**env), SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
        return
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        env = hub_settings(tmp_path, corpus, **limits, FEEDS_DATABASE_URL=url)
        server = server_factory(**env)
        with migrated(url, deployment_key(load_settings(environ=env))) as database:
            yield server, PostgresSubscriptionStore(database)
        return
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; .ci/run installs it")
    redis_server = RedisServer(tmp_path)
    try:
        env = hub_settings(
            tmp_path,
            corpus,
            **limits,
            FEEDS_CACHE_TYPE="redis",
            FEEDS_CACHE_REDIS_URL=redis_server.url,
        )
        yield server_factory(**env), redis_hub(redis_server.url, env)
    finally:
        redis_server.stop()


def test_one_host_cannot_fill_the_hub_and_renewals_are_never_refused(
    quota_hub: tuple[Server, SubscriptionStore], subscribers
) -> None:
    server, store = quota_hub
    feed = server.url + "/feeds/all"
    flooder, same_host = subscribers(host="127.0.0.1"), subscribers(host="127.0.0.1")
    subscribe(server, store, flooder, feed + ".rss")
    subscribe(server, store, flooder, feed + ".atom")
    for callback in (flooder.url, flooder.url.replace("id=1", "id=2"), same_host.url):
        refused = hub_request(server, callback, feed + ".json")
        assert refused.status_code == 429, refused.text
        assert "callback's host holds 2 subscriptions" in refused.text
        assert int(refused.headers["Retry-After"]) > 0
    other_host = subscribers(host="127.0.0.2")
    subscribe(server, store, other_host, feed + ".json")

    before = store.get(flooder.url, feed + ".rss")
    assert before is not None
    renewed = hub_request(server, flooder.url, feed + ".rss", lease_seconds="2592000")
    assert renewed.status_code == 202, renewed.text
    wait_for(
        "renewed",
        lambda: (
            (now := store.get(flooder.url, feed + ".rss")) and now.expires_at > before.expires_at
        ),
    )

    third = subscribers(host="127.0.0.3")
    subscribe(server, store, third, feed + ".json")  # the topic's second
    fourth = subscribers(host="127.0.0.4")
    full = hub_request(server, fourth.url, feed + ".json")
    assert full.status_code == 429 and "this topic has 2 subscriptions" in full.text
    assert fourth.calls == [] and len(same_host.calls) == 0

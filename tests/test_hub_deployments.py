"""Two deployments on one real redis-server: neither sees, serves nor pushes the other's.

Staging (drafts included) and production (drafts left out) index the same corpus and
share a Redis, each with its own FEEDS_BASE_URL. A draft only staging serves must never
reach production's subscriber; a topic of another origin stored in a deployment's
namespace is never delivered; subscribing to another origin's topic is a 400.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from feeds.settings import load_settings
from feeds.websub.store import SqliteSubscriptionStore, Subscription
from tests.support import document
from tests.test_shared_cache import RedisServer
from tests.test_websub import (
    ROOMY,
    hub_request,
    hub_settings,
    prefix_of,
    redis_hub,
    subscribe,
    wait_for,
)

STAGING, PRODUCTION = "https://staging.example", "https://feeds.example.org"


def test_deployments_sharing_redis_never_push_each_others_content(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; .ci/run installs it")
    redis_server = RedisServer(tmp_path)
    try:
        shared = {"FEEDS_CACHE_TYPE": "redis", "FEEDS_CACHE_REDIS_URL": redis_server.url}
        staging_env = hub_settings(
            tmp_path,
            corpus,
            **shared,
            FEEDS_BASE_URL=STAGING,
            FEEDS_INCLUDE_UNPUBLISHED="1",
            FEEDS_DATA_DIR=str(tmp_path / "staging"),
        )
        production_env = hub_settings(
            tmp_path,
            corpus,
            **shared,
            FEEDS_BASE_URL=PRODUCTION,
            FEEDS_INCLUDE_UNPUBLISHED="0",
            FEEDS_DATA_DIR=str(tmp_path / "production"),
        )
        staging, production = server_factory(**staging_env), server_factory(**production_env)
        staging_store = redis_hub(redis_server.url, staging_env)
        production_store = redis_hub(redis_server.url, production_env)
        reader, tester, planted = subscribers(), subscribers(), subscribers()
        production_topic = f"{PRODUCTION}/feeds/all.rss"
        staging_topic = f"{STAGING}/feeds/all.rss"

        subscribe(production, production_store, reader, production_topic)
        subscribe(staging, staging_store, tester, staging_topic)
        refused = hub_request(staging, planted.url, production_topic)
        assert refused.status_code == 400 and f"must be a feed of {STAGING}" in refused.text
        # A topic of production in staging's own namespace (left by an older release, or
        # written by whoever can write the store): staging must never push it.
        planted_subscription = Subscription(planted.url, production_topic, "", 4e9)
        assert staging_store.put(planted_subscription, ROOMY) is None
        assert staging_store.get(reader.url, production_topic) is None  # namespaces apart
        keys = redis.Redis.from_url(redis_server.url).keys("feeds:*websub*")
        prefixes = (prefix_of(staging_env).encode(), prefix_of(production_env).encode())
        assert keys and all(key.startswith(prefixes) for key in keys), keys

        (corpus / "draft.md").write_text(
            document(
                title='"STAGING-ONLY draft article"',
                published="false",
                publishedDateTime="2024-07-01T00:00:00Z",
                webUrl='"https://example.com/news/staging-only"',
            )
        )
        wait_for("staging pushes its draft", tester.posts)
        assert b"STAGING-ONLY" in tester.posts()[0].body
        time.sleep(2)  # every chance for a wrong push to arrive
        assert reader.posts() == [] and planted.posts() == []
        assert b"STAGING-ONLY" not in production.get("/feeds/all.rss").content

        (corpus / "public.md").write_text(
            document(
                title='"A public article"',
                publishedDateTime="2024-07-02T00:00:00Z",
                webUrl='"https://example.com/news/public"',
            )
        )
        wait_for("production pushes its own change", reader.posts)
        time.sleep(1.5)
        for push in reader.posts():
            assert b"STAGING-ONLY" not in push.body and STAGING.encode() not in push.body
        assert reader.posts()[-1].body == production.get("/feeds/all.rss").content
        assert planted.posts() == []
        assert "not one of our feeds" in staging.log() or "not ours skipped" in staging.log()
    finally:
        redis_server.stop()


def test_a_named_deployment_starts_from_the_file_it_had_and_keeps_its_own(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    unnamed = load_settings({"CORPUS_DIR": str(tmp_path), "DATA_DIR": str(data)})
    earlier = SqliteSubscriptionStore.for_deployment(unnamed)
    kept = Subscription("http://127.0.0.1:9/cb", f"{PRODUCTION}/feeds/all.rss", "", 4e9)
    assert earlier.put(kept, ROOMY) is None
    named = replace(unnamed, base_url=PRODUCTION)
    staging = replace(unnamed, base_url=STAGING)
    assert (
        SqliteSubscriptionStore.path_for(named)
        != SqliteSubscriptionStore.path_for(unnamed)
        != SqliteSubscriptionStore.path_for(staging)
    )
    assert (
        SqliteSubscriptionStore.for_deployment(named).get(kept.callback, kept.topic) == kept
    )  # copied forward
    other = Subscription("http://127.0.0.1:9/cb", f"{STAGING}/feeds/all.rss", "", 4e9)
    assert SqliteSubscriptionStore.for_deployment(staging).put(other, ROOMY) is None
    assert SqliteSubscriptionStore.for_deployment(named).get(other.callback, other.topic) is None
    assert (
        SqliteSubscriptionStore.for_deployment(unnamed).get(kept.callback, kept.topic) == kept
    )  # left in place

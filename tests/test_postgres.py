"""PostgreSQL (FEEDS_DATABASE_URL) for the hub and the counts: the settings, the gevent
workers, and two real hosts sharing one database that stops and comes back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from feeds.settings import SettingsError, deployment_key, load_settings
from feeds.websub.store import Limits, PostgresSubscriptionStore, Subscription
from tests.postgres import TEST_DEPLOYMENT, PostgresCluster, migrated
from tests.support import PROJECT_ROOT, Server, wait_for
from tests.test_stats import BROWSER_UA, FEEDLY, INOREADER, READERS, assert_exact_counts, poll
from tests.test_websub import hub_request, hub_settings, subscribe
from tests.test_websub import wait_for as wait_until

URL = "postgresql://feeds@db.example/feeds"


def test_the_database_url_makes_postgresql_the_default_and_an_explicit_store_wins() -> None:
    kinds = load_settings({"DATABASE_URL": URL, "CACHE_TYPE": "redis"}).store_kinds
    assert (kinds.hub, kinds.stats, kinds.render_cache) == ("postgresql", "postgresql", "redis")
    kinds = load_settings({"DATABASE_URL": URL, "HUB_STORE": "redis"}).store_kinds
    assert (kinds.hub, kinds.stats) == ("redis", "postgresql")
    assert load_settings({}).store_kinds.hub == "sqlite"


@pytest.mark.parametrize("name", ["HUB_STORE", "STATS_STORE"])
def test_postgresql_without_a_url_is_refused_at_start(name: str) -> None:
    with pytest.raises(SettingsError, match=f"FEEDS_{name}=postgresql needs FEEDS_DATABASE_URL"):
        load_settings({name: "postgresql"})
    with pytest.raises(SettingsError, match="postgresql:// URL"):
        load_settings({"DATABASE_URL": "mysql://db.example/feeds"})


# A monkey-patched process, as a gunicorn gevent worker is: one greenlet waits on
# pg_sleep(1) while a ticker and another greenlet's queries go on; prints what ended first
# and the longest pause the ticker saw.
GEVENT_PROBE = """
from gevent import monkey

monkey.patch_all()

import json, sys, time
import gevent
from feeds.postgres.database import Database

database = Database(sys.argv[1], sys.argv[2], 5.0).open()
with database.connection() as warm, database.connection() as warm_too:
    warm.execute("SELECT 1")
    warm_too.execute("SELECT 1")
ended, gaps = [], []

def slow():
    with database.connection() as sql:
        sql.execute("SELECT pg_sleep(1)")
    ended.append("pg_sleep")

def quick():
    for _ in range(5):
        with database.connection() as sql:
            sql.execute("SELECT 1")
        gevent.sleep(0.01)
    ended.append("quick queries")

def ticker():
    last = time.monotonic()
    for _ in range(20):
        gevent.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    ended.append("ticker")

gevent.joinall([gevent.spawn(slow), gevent.spawn(quick), gevent.spawn(ticker)])
database.close()
patched = monkey.is_module_patched("socket")
print(json.dumps({"ended": ended, "longest_gap": max(gaps), "patched": patched}))
"""


def test_a_slow_query_stalls_no_other_greenlet_of_a_gevent_worker(postgres_url: str) -> None:
    """psycopg waits for the server through gevent's hub (psycopg >= 3.1.14 detects it)."""
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_PROBE, postgres_url, TEST_DEPLOYMENT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"longest pause of the ticker during pg_sleep(1): {result['longest_gap']:.4f} s")
    assert result["patched"]
    assert sorted(result["ended"][:2]) == ["quick queries", "ticker"]
    assert result["ended"][2] == "pg_sleep"  # the others went on while it waited


def test_two_hosts_share_counts_and_subscriptions_and_outlive_a_database_restart(
    server_factory, subscribers, corpus: Path, tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    url = postgres_cluster.create_database()
    settings = hub_settings(tmp_path, corpus, FEEDS_DATABASE_URL=url, WEB_CONCURRENCY="1")
    settings.pop("FEEDS_WEBSUB_DB")
    hosts: list[Server] = [
        server_factory(**settings, FEEDS_DATA_DIR=str(tmp_path / f"host-{n}")) for n in (1, 2)
    ]
    first, second = hosts
    poll(first, "/feeds/topics/ai", FEEDLY.format(40))
    poll(second, "/feeds/topics/ai", FEEDLY.format(45))  # the latest report, whichever host
    poll(first, "/feeds/topics/ai", INOREADER, "127.0.0.2")
    for reader in READERS:
        poll(first, "/feeds/topics/ai", reader)
        poll(second, "/feeds/topics/ai", reader)  # the same reader on the other host: one
    poll(second, "/feeds/topics/ai", BROWSER_UA)
    assert_exact_counts(first)
    assert_exact_counts(second)

    key = deployment_key(load_settings(environ=settings))  # the hosts' one deployment
    with migrated(url, key) as database:
        store = PostgresSubscriptionStore(database)
        subscriber, topic = subscribers(), first.url + "/feeds/all.rss"
        subscribe(first, store, subscriber, topic)
        other_topic = second.url + "/feeds/all.atom"
        subscribe(second, store, subscriber, other_topic)
        assert store.count() == 2  # one list: each host's subscription is the fleet's

    postgres_cluster.stop()
    try:
        for host in hosts:  # once its report of up to a second ago is out of date
            response = wait_for(lambda host=host: host.get("/stats.json"), lambda r: r.ok is False)
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) > 0
            refused = hub_request(host, subscriber.url, host.url + "/feeds/all.json")
            assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
            assert host.get("/feeds/all.rss").status_code == 200  # feeds need no database
    finally:
        postgres_cluster.start()
    for host in hosts:  # the same processes: reconnected by themselves
        wait_for(lambda host=host: host.get("/stats.json"), lambda r: r.status_code == 200)
        assert_exact_counts(host)  # nothing was lost
    accepted = hub_request(second, subscriber.url, second.url + "/feeds/all.json")
    assert accepted.status_code == 202
    with migrated(url, key) as database:
        store = PostgresSubscriptionStore(database)
        wait_until("stored", lambda: store.count() == 3)


def test_hosts_of_two_deployments_never_see_each_other_s_subscriptions(postgres_url: str) -> None:
    with (
        migrated(postgres_url, "feeds:00000000000000aa:") as staging,
        migrated(postgres_url, "feeds:00000000000000bb:") as production,
    ):
        kept = Subscription("https://reader.example/cb", "https://feeds.example/all.rss", "", 2e9)
        assert PostgresSubscriptionStore(staging).put(kept, Limits(1, 1, 1)) is None
        assert PostgresSubscriptionStore(production).get(kept.callback, kept.topic) is None
        assert PostgresSubscriptionStore(production).count() == 0
        assert staging.schema != production.schema

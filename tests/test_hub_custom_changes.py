"""Many subscribed custom feeds do not slow a change: the real server, a real subscriber.

2,000 custom feeds are subscribed besides one probe. A new article that only the probe's
filter holds must be served at once, pushed to the probe alone, and found by querying
only the filters it may belong to (the indexer logs how many it queried); withdrawing it
pushes the probe again, and a change no filter holds queries none. How soon the change is
served and pushed with thousands of subscribed filters is measured by
bench/websub_changes.py (written → served, written → pushed), not timed here.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests

from feeds.websub.store import SqliteSubscriptionStore, Subscription
from tests.support import document
from tests.test_websub import ROBOT_ARM, ROOMY, hub_settings, subscribe, wait_for

MANY = 2000
QUERIED = re.compile(r"(\d+) changed custom filters \((\d+) of (\d+) queried")


def queried_lines(log: str) -> list[tuple[int, int, int]]:
    return [tuple(int(n) for n in m.groups()) for m in QUERIED.finditer(log)]  # type: ignore[misc]


def test_a_change_queries_only_the_custom_filters_its_articles_may_belong_to(
    server_factory, subscribers, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(**hub_settings(tmp_path, corpus))
    store = SqliteSubscriptionStore(tmp_path / "websub.sqlite3")
    crowd, probe = subscribers(), subscribers()
    far = time.time() + 3600
    for n in range(MANY):
        topic = f"{server.url}/feeds/custom.atom?q=nomatch{n}"
        assert store.put(Subscription(f"{crowd.url}&n={n}", topic, "", far), ROOMY) is None
    probe_topic = server.url + "/feeds/custom.rss?q=%22robot%20arm%22"
    subscribe(server, store, probe, probe_topic)

    (corpus / "arm.md").write_text(ROBOT_ARM)
    wait_for(
        "served",
        lambda: (
            b"robot arm learns" in requests.get(server.url + "/feeds/all.rss", timeout=5).content
        ),
    )
    wait_for("the probe is pushed", probe.posts)
    assert b"A robot arm learns to fold laundry" in probe.posts()[0].body
    wait_for("the queue logged", lambda: queried_lines(server.log()))
    changed, queried, watched = queried_lines(server.log())[-1]
    assert (changed, watched) == (1, MANY + 1)
    assert queried == 1, "only the probe's filter may hold the new article"

    (corpus / "arm.md").unlink()  # the article leaves the probe's document
    wait_for("the withdrawal is pushed", lambda: len(probe.posts()) == 2)
    assert b"robot arm learns" not in probe.posts()[1].body
    assert queried_lines(server.log())[-1][:2] == (1, 1)

    logged = len(queried_lines(server.log()))
    (corpus / "other.md").write_text(
        document(title='"Nothing any filter holds"', webUrl='"https://robots.example/o"')
    )
    wait_for("indexed", lambda: len(queried_lines(server.log())) > logged)
    assert queried_lines(server.log())[-1][:2] == (0, 0)
    time.sleep(1)
    assert crowd.posts() == [] and len(probe.posts()) == 2

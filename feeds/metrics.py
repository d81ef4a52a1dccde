"""Prometheus metrics: counters every worker adds to, and gauges read at scrape time.

Under gunicorn, feeds/server/gunicorn_config.py sets PROMETHEUS_MULTIPROC_DIR before anything
imports prometheus_client, so each worker's counters live in files of that directory and a
scrape sums them over every worker (dead workers are marked in the `child_exit` hook).
What the index, the hub and the subscriber counts hold is read when scraped: it is the
same for every worker, so it is not summed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from feeds.index.reader import NotReady

log = logging.getLogger("feeds.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OWN = CollectorRegistry()

REQUESTS = Counter(
    "feeds_requests",
    "HTTP requests answered, by kind of resource, feed format and status.",
    ["kind", "format", "status"],
    registry=OWN,
)
RESPONSE_BYTES = Counter(
    "feeds_response_bytes", "Bytes of response bodies sent.", ["kind"], registry=OWN
)
CACHE = Counter(
    "feeds_cache_answers",
    "Rendered documents answered, by the cache tier that had them (render: none did).",
    ["tier"],
    registry=OWN,
)
RENDER_SECONDS = Histogram(
    "feeds_render_seconds",
    "Time to render one document (feed, page or archive), compression included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=OWN,
)
STATS_SKIPPED = Counter(
    "feeds_stats_skipped",
    "Subscriber notes not counted: over a limit (feeds.stats.subscribers) or store down.",
    ["reason"],
    registry=OWN,
)
WEBSUB_DELIVERIES = Counter(
    "feeds_websub_deliveries",
    "WebSub delivery attempts, by result.",
    ["result"],
    registry=OWN,
)


class Requests:
    """The per-request counters, added up in the worker's memory and handed to Prometheus
    by `flush` (once a second, and before each scrape this worker answers): a counter step
    on its memory-mapped files costs more than the rest of a cached answer's bookkeeping."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int, str], tuple[Any, Any, Any]] = {}
        self._pending: dict[tuple[str, str, int, str], list[int]] = {}

    def count(self, kind: str, fmt: str, status: int, size: int, tier: str) -> None:
        labels = (kind, fmt, status, tier)
        pending = self._pending.get(labels)
        if pending is None:
            self._pending[labels] = [1, size]
        else:
            pending[0] += 1
            pending[1] += size

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for labels, (answers, size) in pending.items():
            children = self._children.get(labels)
            if children is None:
                kind, fmt, status, tier = labels
                children = self._children[labels] = (
                    REQUESTS.labels(kind, fmt, str(status)),
                    RESPONSE_BYTES.labels(kind),
                    CACHE.labels(tier) if tier else None,
                )
            requests, sent, cache = children
            requests.inc(answers)
            sent.inc(size)
            if cache is not None:
                cache.inc(answers)


class ScrapeTime:
    """Gauges read when scraped: corpus, index lag, hub subscriptions, subscribers."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        values = self.read()
        for name, help_text in GAUGES.items():
            if name in values:
                yield GaugeMetricFamily(name, help_text, value=values[name])
        subscribers = GaugeMetricFamily(
            "feeds_subscribers", "Subscribers of each feed (aggregators + direct).", labels=["feed"]
        )
        for feed, count in values.get("subscribers", {}).items():
            subscribers.add_metric([feed], count)
        yield subscribers


GAUGES = {
    "feeds_corpus_documents": "Documents in the corpus directory, as last indexed.",
    "feeds_corpus_articles": "Articles served.",
    "feeds_corpus_skipped": "Documents skipped (see `feeds check`).",
    "feeds_index_lag_files": "Files found by the indexer's current pass not yet indexed.",
    "feeds_websub_subscriptions": "Subscriptions the built-in hub holds.",
}


def exposition(read: Callable[[], dict[str, Any]]) -> bytes:
    """The text format: every worker's counters, then the scrape-time gauges."""
    registry = OWN
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    gauges = CollectorRegistry()
    gauges.register(ScrapeTime(read))
    return generate_latest(registry) + generate_latest(gauges)


def index_values(site: Any) -> dict[str, int]:
    """The corpus as indexed, and how far the indexer's current pass still has to go."""
    indexed, files = site.reader.progress()
    lag = {"feeds_index_lag_files": max(0, files - indexed)}
    try:
        counts = site.catalog.counts()
    except NotReady:
        return lag
    return {
        "feeds_corpus_documents": counts["files"],
        "feeds_corpus_articles": counts["loaded"],
        "feeds_corpus_skipped": counts["skipped"],
        **lag,
    }

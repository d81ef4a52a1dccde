"""Rendered feeds: bytes, compressed bytes and validators, cached in two tiers.

The first tier is a bounded in-process LRU of ready objects: bytes rendered for one corpus
version never change, so a worker never needs to ask again. The second tier is a
cachelib backend (in-process, file system or Redis) shared by workers and hosts. The
shared tier is optional at run time: when it fails, the failure is logged, the tier
is left alone for a while, and feeds are rendered locally.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import brotli
import redis
from cachelib import BaseCache, FileSystemCache, NullCache, RedisCache

log = logging.getLogger("feeds.cache")

SHARED_TIMEOUT_SECONDS = 0  # entries are immutable; the backend's own threshold evicts them
RETRY_AFTER_FAILURE_SECONDS = 5.0
REDIS_SOCKET_TIMEOUT_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Rendered:
    """One feed document ready to send, in every encoding we offer."""

    body: bytes
    gzip_body: bytes
    br_body: bytes
    etag: str  # strong validator of `body`, without quotes
    last_modified: datetime
    content_type: str
    cache_control: str
    link_header: str = ""
    # Response headers per (encoding, content type), filled by responses.feed_answer.
    variants: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def size(self) -> int:
        """Bytes held, for the memory bound of the in-process caches."""
        return len(self.body) + len(self.gzip_body) + len(self.br_body)


def prepare(
    body: bytes,
    last_modified: datetime,
    content_type: str,
    cache_control: str,
    link_header: str = "",
) -> Rendered:
    """Compress once, at render time, never per request.

    Levels are chosen for the first request's latency: gzip 6 and brotli 5 take a few
    milliseconds for a 50-entry feed and get within a few percent of their maximum ratio.
    """
    return Rendered(
        body=body,
        gzip_body=gzip.compress(body, compresslevel=6, mtime=0),
        br_body=brotli.compress(body, quality=5),
        etag=hashlib.sha256(body).hexdigest()[:32],
        last_modified=last_modified,
        content_type=content_type,
        cache_control=cache_control,
        link_header=link_header,
    )


class LocalLRU:
    """A thread-safe mapping of ready objects, bounded in count and in bytes.

    The byte bound matters: clients choose `?limit=` and hosts, and each choice is its
    own entry, so a count alone would let them fill a worker's memory with big feeds.
    """

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += _size(value) - _size(old)
            self._items[key] = value
            while len(self._items) > 1 and (
                len(self._items) > self._capacity or self._bytes > self._max_bytes
            ):
                self._bytes -= _size(self._items.popitem(last=False)[1])


def _size(value: Any) -> int:
    return value.size if isinstance(value, Rendered) else 0


class FeedCache:
    """Get a rendered feed by key, rendering it at most once per process and key."""

    def __init__(self, shared: BaseCache, capacity: int, max_bytes: int) -> None:
        self.shared = shared
        self.local = LocalLRU(capacity, max_bytes)
        self._shared_down_until = 0.0
        self.stats = {"local_hits": 0, "shared_hits": 0, "renders": 0, "shared_errors": 0}

    def get_or_render(self, key: str, render: Callable[[], Rendered]) -> Rendered:
        """No lock is held across the shared cache's I/O: under gevent that would deadlock.

        Two requests missing the same key at once may both render; the bytes are equal.
        """
        found = self.local.get(key)
        if found is not None:
            self.stats["local_hits"] += 1
            return found
        found = self._shared_get(key)
        if found is not None:
            self.stats["shared_hits"] += 1
        else:
            found = render()
            self.stats["renders"] += 1
            self._shared_set(key, found)
        self.local.put(key, found)
        return found

    def _shared_get(self, key: str) -> Rendered | None:
        if time.monotonic() < self._shared_down_until:
            return None
        try:
            value = self.shared.get(key)
        except Exception as error:  # any backend failure degrades to local rendering
            self._shared_failed("read", error)
            return None
        return value if isinstance(value, Rendered) else None

    def _shared_set(self, key: str, value: Rendered) -> None:
        if time.monotonic() < self._shared_down_until:
            return
        try:
            self.shared.set(key, value, timeout=SHARED_TIMEOUT_SECONDS)
        except Exception as error:  # any backend failure degrades to local rendering
            self._shared_failed("write", error)

    def _shared_failed(self, action: str, error: Exception) -> None:
        self.stats["shared_errors"] += 1
        self._shared_down_until = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
        log.warning(
            "shared cache %s failed (%s: %s); rendering locally for %.0fs",
            action,
            error.__class__.__name__,
            error,
            RETRY_AFTER_FAILURE_SECONDS,
        )


def cache_key(corpus_version: str, *parts: str) -> str:
    """Keys start with the corpus version, so different corpora never share bytes."""
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]
    return f"{corpus_version[:16]}:{digest}"


def make_shared_backend(settings: dict[str, Any]) -> BaseCache:
    kind = settings["CACHE_TYPE"]
    threshold = settings["CACHE_THRESHOLD"]
    if kind == "filesystem":
        directory = settings["CACHE_DIR"] or tempfile.mkdtemp(prefix="feeds-cache-")
        return FileSystemCache(directory, threshold=threshold, default_timeout=0)
    if kind == "redis":
        client = redis.Redis.from_url(
            settings["CACHE_REDIS_URL"],
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        )
        return RedisCache(client, key_prefix="feeds:", default_timeout=0)
    # In one process the bounded LRU in front is the cache; a SimpleCache behind it would
    # only hold a second, pickled copy of the same bytes.
    return NullCache()

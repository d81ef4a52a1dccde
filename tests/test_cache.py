"""The in-process caches stay within their bounds whatever keys clients make them hold."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from feeds.cache import LocalLRU, Rendered, prepare


def rendered(size: int) -> Rendered:
    body = os.urandom(size)  # incompressible, so the compressed copies are as big
    return prepare(body, datetime(2024, 1, 1, tzinfo=UTC), "application/rss+xml", "public")


def test_the_byte_bound_evicts_the_least_recently_used() -> None:
    item = rendered(10_000)
    cache = LocalLRU(capacity=1000, max_bytes=5 * item.size)
    for index in range(50):
        cache.put(f"limit={index}", rendered(10_000))
        held = [key for key in (f"limit={n}" for n in range(50)) if cache.get(key) is not None]
        assert sum(cache.get(key).size for key in held) <= 5 * item.size
    assert cache.get("limit=49") is not None
    assert cache.get("limit=0") is None


def test_the_count_bound_and_a_single_oversized_entry() -> None:
    cache = LocalLRU(capacity=3, max_bytes=10**9)
    for index in range(10):
        cache.put(str(index), rendered(100))
    assert [k for k in map(str, range(10)) if cache.get(k) is not None] == ["7", "8", "9"]
    tiny = LocalLRU(capacity=3, max_bytes=10)
    tiny.put("big", rendered(1000))  # the newest entry is kept even when it alone is over
    assert tiny.get("big") is not None
    tiny.put("next", rendered(1000))
    assert tiny.get("big") is None and tiny.get("next") is not None


def test_replacing_a_key_does_not_count_it_twice() -> None:
    item = rendered(1000)
    cache = LocalLRU(capacity=10, max_bytes=2 * item.size + 10)
    cache.put("a", item)
    cache.put("a", item)
    cache.put("b", rendered(1000))
    assert cache.get("a") is not None and cache.get("b") is not None

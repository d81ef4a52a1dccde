"""The two tiers together: get a rendered document by key, rendering it at most once per
process and key.

The first tier is a bounded in-process LRU of ready objects: bytes rendered for one corpus
version never change, so a worker never needs to ask again. The second tier (`shared`) is
optional at run time: when it fails, the failure is logged, the tier is left alone for a
while, and feeds are rendered locally.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

from feeds.cache.lru import LocalLRU
from feeds.cache.rendered import Rendered
from feeds.cache.shared import SharedStore
from feeds.renders import WAIT_SECONDS, Busy, RenderGate

log = logging.getLogger("feeds.cache")

# Which tier answered the current request's document ("fast", "local", "shared" or
# "render"); each greenlet has its own, and the access log and metrics read it.
TIER: ContextVar[str] = ContextVar("feeds_cache_tier", default="")

RETRY_AFTER_FAILURE_SECONDS = 5.0


class FeedCache:
    """Get a rendered feed by key, rendering it at most once per process and key.

    Renders go through `gate` (`feeds.renders`): bounded per worker and per client, and
    refused with `Busy` beyond; what is cached is answered without asking the gate.
    """

    def __init__(
        self, shared: SharedStore | None, capacity: int, max_bytes: int, gate: RenderGate
    ) -> None:
        self.shared = shared
        self.local: LocalLRU[Rendered] = LocalLRU(capacity, max_bytes)
        self.gate = gate
        self._shared_down_until = 0.0
        self.stats = {
            "local_hits": 0,
            "shared_hits": 0,
            "renders": 0,
            "shared_errors": 0,
            "busy": 0,
        }
        self.on_render: Callable[[float], object] = lambda seconds: None  # the metrics' hook
        # Keys being rendered in this process now; each Event is made by the request that
        # renders (in a worker, after gevent patched threading), never in the master.
        self._rendering: dict[str, threading.Event] = {}

    def get_or_render(
        self, key: str, render: Callable[[], Rendered], shared: bool = True
    ) -> Rendered:
        """No lock is held across the shared cache's I/O: under gevent that would deadlock.

        Requests missing a key that this process is rendering now wait for that render
        (no CPU, no render slot) instead of rendering it again: after a release or a change,
        every poller of a feed asks at once. `shared=False` keeps the answer in this process
        only (answers cheap to make again whose keys clients choose without bound).
        """
        found = self._local_get(key)
        if found is not None:
            return found
        pending = self._rendering.get(key)
        if pending is not None and pending.wait(WAIT_SECONDS):
            found = self._local_get(key)
            if found is not None:
                return found  # else its render was refused or failed: try ours
        found = self._shared_get(key) if shared else None
        if found is not None:
            self.stats["shared_hits"] += 1
            TIER.set("shared")
            self.local.put(key, found)
            return found
        done = threading.Event()
        mine = self._rendering.setdefault(key, done) is done  # else one that waited too long
        try:
            found = self._render(render)
            if shared:
                self._shared_set(key, found)
            self.local.put(key, found)
        finally:
            if mine:
                del self._rendering[key]
                done.set()
        return found

    def _local_get(self, key: str) -> Rendered | None:
        found = self.local.get(key)
        if found is not None:
            self.stats["local_hits"] += 1
            TIER.set("local")
        return found

    def _render(self, render: Callable[[], Rendered]) -> Rendered:
        try:
            with self.gate.admit():
                started = time.perf_counter()
                found = render()
                self.on_render(time.perf_counter() - started)
        except Busy:
            self.stats["busy"] += 1
            raise
        self.stats["renders"] += 1
        TIER.set("render")
        return found

    def _usable_shared(self) -> SharedStore | None:
        """The shared store, unless there is none or it failed a moment ago."""
        if time.monotonic() < self._shared_down_until:
            return None
        return self.shared

    def _shared_get(self, key: str) -> Rendered | None:
        shared = self._usable_shared()
        if shared is None:
            return None
        try:
            return shared.get(key)
        except Exception as error:  # any backend failure degrades to local rendering
            self._shared_failed("read", error)
            return None

    def _shared_set(self, key: str, value: Rendered) -> None:
        shared = self._usable_shared()
        if shared is None:
            return
        try:
            shared.set(key, value)
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

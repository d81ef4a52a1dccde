"""One worker's subscriber notes, its flushes and its cached report.

Under gunicorn the Recorder is built in the master before gevent patches `threading`,
so it holds no lock: a lock made there is a real OS lock in the workers, and a greenlet
waiting on one held across store I/O froze the whole worker. Under gevent a batch swap
is atomic (no switch without I/O), flushes are independent (the stores keep the newest
report, and adding a poller twice is adding it once), and the report is read from a
copy at most `REPORT_CACHE_SECONDS` old, so pages cost the same whatever the store holds.
A store that fails is not asked again by the pages for `RETRY_AFTER_SECONDS`: they answer
503 at once (`StoreUnavailable`) while the flush loop keeps trying.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from feeds.sqlite import UntrustedDatabase
from feeds.stats.agents import AGGREGATOR, DIRECT, classify
from feeds.stats.subscribers import (
    DAY,
    HOUR,
    Batch,
    CountStore,
    FeedStats,
    StoreUnavailable,
    hashed,
)
from feeds.stores import STORE_ERRORS

log = logging.getLogger("feeds.stats.recorder")

REPORT_CACHE_SECONDS = 1.0
RETRY_AFTER_SECONDS = 5
HISTORY_SECONDS = 60.0  # today's history point is saved this often (and shown live)
SKIP_LOG_SECONDS = 60.0


class Recorder:
    """One process's notes since the last flush, the flushes, and the pages' report."""

    def __init__(self, store: Callable[[], CountStore]) -> None:
        self._store = store  # this process's, opened on first use (`feeds.runtime`)
        self._batch = Batch()
        self._keys: dict[int, bytes] = {}
        self._failed_at: float | None = None  # monotonic time of the last failure
        self._cached: tuple[float, list[FeedStats]] | None = None
        self._history_at = 0.0
        self._skips_logged_at = 0.0
        self._unlogged: Counter[str] = Counter()
        self._untaken: Counter[str] = Counter()
        self.errors = 0  # failed store calls
        self.skipped: Counter[str] = Counter()  # notes over a limit or dropped, by reason

    def observe(self, feed: str, address: str, user_agent: str) -> str:
        """Note one answered poll of `feed`; returns the client's class (for the logs)."""
        agent = classify(user_agent)
        if agent.kind not in (AGGREGATOR, DIRECT):
            return agent.kind
        if self._batch.full():
            self._skip({"batch full": 1})
        elif agent.kind == AGGREGATOR:
            reported = (agent.service, agent.feed_id, agent.subscribers, time.time_ns())
            self._batch.reports[feed, address] = reported
        else:
            self._batch.polls.add((feed, int(time.time() // HOUR), address, user_agent))
        return agent.kind

    @property
    def store(self) -> CountStore:
        return self._store()

    def flush(self) -> None:
        """Write what was noted; a store that fails loses this batch, logged once a spell."""
        batch, self._batch = self._batch, Batch()
        now = time.time()
        if batch:
            try:
                reports, pollers = hashed(self._day_key, batch, now)
                skipped = self.store.write(reports, pollers)
            except STORE_ERRORS as error:
                self._failed(error)
                self._skip({"store unavailable": len(batch.reports) + len(batch.polls)})
                return
            self._failed_at = None
            self._skip(skipped)
        if now - self._history_at >= HISTORY_SECONDS:
            self._save_history(now)

    def report(self) -> list[FeedStats]:
        """Every feed's counts, at most `REPORT_CACHE_SECONDS` old; StoreUnavailable."""
        started = time.monotonic()
        if self._failed_at is not None and started - self._failed_at < RETRY_AFTER_SECONDS:
            raise StoreUnavailable
        if self._cached is not None and started - self._cached[0] < REPORT_CACHE_SECONDS:
            return self._cached[1]
        try:
            stats = self.store.report(time.time())
        except STORE_ERRORS as error:
            self._failed(error)
            raise StoreUnavailable from None
        self._failed_at = None
        self._cached = (started, stats)
        return stats

    def take_skips(self) -> Counter[str]:
        """The skips since the last call (for the Prometheus counter)."""
        taken, self._untaken = self._untaken, Counter()
        return taken

    def _save_history(self, now: float) -> None:
        self._history_at = now
        try:
            counts = {stats.path: stats.subscribers for stats in self.report() if stats.subscribers}
            if counts:
                self.store.save_history(counts, int(now // DAY))
        except StoreUnavailable:
            pass  # logged when it failed; tried again at the next flush
        except STORE_ERRORS as error:
            self._failed(error)

    def _day_key(self, day: int) -> bytes:
        """Asked of the store once a day per process; forgotten when its day is over."""
        if day not in self._keys:
            self._keys = {d: k for d, k in self._keys.items() if d >= day - 1}
            self._keys[day] = self.store.day_key(day)
        return self._keys[day]

    def _failed(self, error: Exception) -> None:
        """Counted; logged once a spell, by class only: the text of a Redis error quotes the
        command's arguments (binary hashes)."""
        self.errors += 1
        if self._failed_at is None:
            # Our own words name a refused file; other errors by class only.
            why = str(error) if isinstance(error, UntrustedDatabase) else type(error).__name__
            log.warning("stats store unavailable (%s); notes dropped until it answers", why)
        self._failed_at = time.monotonic()

    def _skip(self, skipped: Counter[str] | dict[str, int]) -> None:
        if not skipped:
            return
        self.skipped.update(skipped)
        self._untaken.update(skipped)
        self._unlogged.update(skipped)
        now = time.monotonic()
        if now - self._skips_logged_at >= SKIP_LOG_SECONDS:
            self._skips_logged_at = now
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self._unlogged.items()))
            log.warning("stats notes skipped over limits: %s", reasons)
            self._unlogged.clear()

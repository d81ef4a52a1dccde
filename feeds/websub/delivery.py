"""Pushing changed feeds to subscribers: `notify` enqueues, each worker's loop delivers.

`notify` runs in the indexer after each change it commits, so it only writes to the
store. Every worker runs `run`, which claims
due deliveries and POSTs them; failures are retried with exponential backoff, and a
subscriber that keeps failing is dropped. At most PER_HOST deliveries per worker go to
one callback host at once; the others wait their turn in the store, so slow hosts hold
few slots and never delay pushes to the others.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from functools import lru_cache

from feeds.index.search import Filter
from feeds.metrics import WEBSUB_DELIVERIES
from feeds.settings import Settings
from feeds.site import Site
from feeds.stores import STORE_ERRORS
from feeds.websub import client
from feeds.websub.moves import Moves, changed_filters
from feeds.websub.store import Claim, Content, SubscriptionStore
from feeds.websub.topics import (
    UnknownTopic,
    custom_filter,
    stored_base,
    topic_address,
    topic_feed,
)

log = logging.getLogger("feeds.websub")

POLL_SECONDS = 0.5
PURGE_EVERY_SECONDS = 60.0
MAX_IN_FLIGHT = 256  # deliveries under way at once, per worker
PER_HOST = 4  # deliveries under way at once to one callback host, per worker
DEFER_SECONDS = 5.0  # a delivery whose host is busy is tried again this much later
CLAIM_MARGIN_SECONDS = 45.0  # a claim outlives the exchange's deadline by this much
STOP_WAIT_SECONDS = 3.0


class Loop:
    """One worker's delivery loop, and the deliveries it has under way."""

    def __init__(self, settings: Settings, hub: Callable[[], SubscriptionStore]) -> None:
        self.settings = settings
        self.hub = hub
        self.stopping = threading.Event()
        self.in_flight: set[threading.Thread] = set()
        self.hosts = client.HostSlots(PER_HOST, MAX_IN_FLIGHT)
        self.thread = threading.Thread(target=run, args=(self,), name="websub-delivery")
        self.thread.daemon = True

    def stop(self) -> None:
        """End the loop and give deliveries under way a moment: a worker that exits
        with greenlets still waiting hangs in interpreter shutdown."""
        self.stopping.set()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for thread in [self.thread, *self.in_flight]:
            thread.join(max(0.0, deadline - time.monotonic()))


def notify(
    site: Site,
    store: SubscriptionStore,
    db: sqlite3.Connection,
    fixed: Collection[tuple[str, str]],
    moves: Moves,
) -> int:
    """Enqueue the current document of every subscribed topic whose document changed.

    Runs in the indexer after a change is committed (so served): `fixed` holds the (kind,
    slug) of each fixed feed the change sealed, `moves` the articles it added and
    withdrew, which are matched against the subscribed custom filters in memory; only the
    filters they may touch are queried, and only those whose document changed rendered.
    """
    if site.settings.websub_hub_url or not (
        fixed or moves.arrived or moves.left or moves.everything
    ):
        return 0
    now = time.time()
    addressed: list[tuple[str, str, tuple[str, str]]] = []  # topic, base, (kind, slug)
    foreign = 0
    for topic in store.topics(now):
        base = stored_base(site.settings, topic)
        address = topic_address(topic, base)
        if address is None:
            foreign += 1  # not a feed URL of this deployment's origin: never pushed
        else:
            addressed.append((topic, base, address))
    filters = {
        slug: selected
        for _, _, (kind, slug) in addressed
        if kind == "custom" and (selected := _custom_filter(slug)) is not None
    }
    custom, queried = changed_filters(db, filters, moves, site.settings.default_items)
    site.reader.latest()  # what is pushed is what the change just committed
    queued = 0
    for topic, base, (kind, slug) in addressed:
        changed = slug in custom if kind == "custom" else (kind, slug) in fixed
        if not changed:
            continue
        try:
            fresh = topic_feed(site, topic, base)
        except UnknownTopic:
            continue  # gone from the corpus; its subscribers hear nothing
        content = Content(fresh.body, fresh.content_type, fresh.link_header)
        queued += store.enqueue(topic, content, now)
    if foreign:
        WEBSUB_DELIVERIES.labels("foreign").inc(foreign)
    log.info(
        "websub: %d deliveries queued for %d changed feeds and %d changed custom filters"
        " (%d of %d queried; %d stored topics not ours skipped)",
        queued,
        len(fixed),
        len(custom),
        queried,
        len(filters),
        foreign,
    )
    return queued


@lru_cache(maxsize=65_536)
def _custom_filter(query: str) -> Filter | None:
    """A subscribed custom topic's filter, parsed once per process; None when the rules
    changed since it was stored (it is never pushed)."""
    try:
        return custom_filter(query)
    except UnknownTopic:
        return None


def start(settings: Settings, hub: Callable[[], SubscriptionStore]) -> Loop | None:
    """Start this worker's delivery loop (a greenlet under gevent's patched threading) on
    the runtime's hub store; None with an external hub."""
    if settings.websub_hub_url:
        return None
    if settings.store_kinds.hub == "redis" and not (
        settings.base_url or str(settings.deployment).strip()
    ):
        log.warning(
            "websub: subscriptions are kept in the shared Redis under a name derived from the"
            " corpus path; another deployment with that path would share them: set"
            " FEEDS_BASE_URL or FEEDS_DEPLOYMENT"
        )
    loop = Loop(settings, hub)
    loop.thread.start()
    return loop


def run(loop: Loop) -> None:
    """Claim and deliver until stopped; a store that fails is retried, logged once."""
    slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    next_purge = 0.0
    failing = False
    hold = loop.settings.websub_timeout_seconds + CLAIM_MARGIN_SECONDS
    while not loop.stopping.is_set():
        try:
            store = loop.hub()
            now = time.time()
            if now >= next_purge:
                store.purge(now)
                next_purge = now + PURGE_EVERY_SECONDS
            while not loop.stopping.is_set() and slots.acquire(timeout=POLL_SECONDS):
                claim = store.claim(time.time(), hold)
                if claim is None:
                    slots.release()
                    break
                worker = threading.Thread(
                    target=_deliver_then_release, args=(loop, store, claim, slots), daemon=True
                )
                loop.in_flight.add(worker)
                worker.start()
            failing = False
        except Exception:  # the store is down: wait, and say so once
            if not failing:
                log.exception("websub store failed; retrying")
            failing = True
        loop.stopping.wait(POLL_SECONDS)


def _deliver_then_release(
    loop: Loop, store: SubscriptionStore, claim: Claim, slots: threading.BoundedSemaphore
) -> None:
    try:
        deliver(store, claim, loop.settings, loop.hosts)
    except STORE_ERRORS as error:  # the claim's hold runs out and it is tried again
        log.warning("delivery to %s: the store failed: %s", claim.callback, error)
    except Exception:
        log.exception("delivery to %s failed", claim.callback)
    finally:
        slots.release()
        loop.in_flight.discard(threading.current_thread())


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def backoff(base: float, failures: int) -> float:
    """Seconds before the next attempt after `failures` failed ones: base, 2 base, 4 base..."""
    return base * 2 ** (failures - 1)


def deliver(
    store: SubscriptionStore, claim: Claim, settings: Settings, hosts: client.HostSlots
) -> bool:
    """One attempt; 2xx is done, anything else is retried later or, at last, dropped.
    When the callback's host already has its share of deliveries under way, the attempt
    waits DEFER_SECONDS in the store, uncounted."""
    if topic_address(claim.topic, stored_base(settings, claim.topic)) is None:
        store.done(claim)  # queued by someone else in our store: never sent
        WEBSUB_DELIVERIES.labels("foreign").inc()
        log.warning("websub: dropped a delivery of a topic that is not one of our feeds")
        return False
    subscription = store.get(claim.callback, claim.topic)
    now = time.time()
    if subscription is None or not subscription.live(now) or claim.content is None:
        store.done(claim)  # expired or removed meanwhile: never call it
        WEBSUB_DELIVERIES.labels("expired").inc()
        return False
    content = claim.content
    headers = {"Content-Type": content.content_type, "Link": content.link_header}
    if subscription.secret:
        headers["X-Hub-Signature"] = signature(subscription.secret, content.body)
    try:
        callback = client.resolve(claim.callback, settings.websub_allow_private_callbacks)
    except client.CallbackRefused as refused:
        return failed(store, claim, settings, f"CallbackRefused: {refused}")
    host = client.host_key(callback)
    if not hosts.acquire(host):
        store.defer(claim, time.time() + DEFER_SECONDS)
        WEBSUB_DELIVERIES.labels("deferred").inc()
        return False
    try:
        reply = client.call(
            callback,
            "POST",
            callback.path,
            content.body,
            headers,
            total_seconds=settings.websub_timeout_seconds,
        )
    except client.CALL_ERRORS as error:
        return failed(store, claim, settings, f"{error.__class__.__name__}: {error}")
    finally:
        hosts.release(host)
    if not 200 <= reply.status < 300:
        return failed(store, claim, settings, f"status {reply.status}")
    store.done(claim)
    WEBSUB_DELIVERIES.labels("delivered").inc()
    log.info("delivered %s to %s", claim.topic, claim.callback)
    return True


def failed(store: SubscriptionStore, claim: Claim, settings: Settings, outcome: str) -> bool:
    """Retry a failed attempt after a backoff, or drop the subscription after too many."""
    failures = claim.attempts + 1
    dropped = failures >= settings.websub_max_attempts
    WEBSUB_DELIVERIES.labels("dropped" if dropped else "failed").inc()
    if dropped:
        store.remove(claim.callback, claim.topic)
        log.warning(
            "dropped subscription of %s to %s after %d failed deliveries (last: %s)",
            claim.callback,
            claim.topic,
            failures,
            outcome,
        )
        return False
    delay = backoff(settings.websub_retry_seconds, failures)
    store.retry(claim, time.time() + delay)
    log.info("delivery to %s failed (%s); retry in %.0fs", claim.callback, outcome, delay)
    return False

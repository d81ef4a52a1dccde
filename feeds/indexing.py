"""`feeds index --follow`: the one process that writes a corpus's index while a server runs.

It takes the index's writer lock (waiting while another process holds it), reconciles
the directory with the index, pushes the feeds that changed to WebSub subscribers, and
reconciles again on SIGHUP, until SIGTERM or its parent, the gunicorn master, is gone.
Feeds that changed while nobody was indexing (the server was stopped) are found by the
first reconciliation, so their subscribers hear of them too.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from feeds.index import search
from feeds.index.indexer import Busy, Changes, Progress, Target, open_index, reconcile, writer_lock
from feeds.index.search import Filter
from feeds.site import load_site
from feeds.websub.delivery import custom_topics, notify

log = logging.getLogger("feeds.index")

POLL_SECONDS = 0.2
LOCK_RETRY_SECONDS = 1.0


class _Signals:
    """SIGHUP asks for a reconciliation, SIGTERM and SIGINT for an exit."""

    def __init__(self) -> None:
        self.reconcile = True
        self.stop = False
        signal.signal(signal.SIGHUP, self._hup)
        signal.signal(signal.SIGTERM, self._term)
        signal.signal(signal.SIGINT, self._term)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # see feeds.supervisor

    def _hup(self, _signum: int, _frame: Any) -> None:
        self.reconcile = True

    def _term(self, _signum: int, _frame: Any) -> None:
        self.stop = True


def follow(settings: dict[str, Any], progress: Progress | None = None) -> None:
    """Keep the index current until told to stop."""
    target = Target.from_settings(settings)
    signals = _Signals()
    parent = os.getppid()
    waiting = False
    while not signals.stop and os.getppid() == parent:
        try:
            with writer_lock(target, wait=False):
                if waiting:
                    log.info("took over writing %s", target.path)
                _write(settings, target, signals, parent, progress)
                return
        except Busy:
            if not waiting:
                log.warning(
                    "%s is written by another process; serving it, ready to take over",
                    target.path,
                )
                waiting = True
            time.sleep(LOCK_RETRY_SECONDS)


def _write(
    settings: dict[str, Any],
    target: Target,
    signals: _Signals,
    parent: int,
    progress: Progress | None,
) -> None:
    db = open_index(target)
    site = load_site(settings)
    try:
        while not signals.stop and os.getppid() == parent:
            if signals.reconcile:
                signals.reconcile = False
                update_and_push(db, target, site, progress)
            time.sleep(POLL_SECONDS)
    finally:
        db.close()


def update_and_push(
    db: sqlite3.Connection, target: Target, site: Any, progress: Progress | None
) -> Changes | None:
    """One reconciliation, then pushes for every feed whose digest it changed."""
    watched = _watched_custom(site)
    limit = site.settings["DEFAULT_ITEMS"]
    before = feed_digests(db, watched, limit)
    try:
        changes = reconcile(db, target, progress)
    except (OSError, sqlite3.Error) as error:
        log.error("indexing %s failed (%s); still serving the last index", target.root, error)
        return None
    after = feed_digests(db, watched, limit)
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    try:
        notify(site, changed)
    except Exception:  # pushes must never stop indexing
        log.exception("websub: could not queue deliveries")
    return changes


def _watched_custom(site: Any) -> dict[str, Filter]:
    try:
        return custom_topics(site)
    except Exception:  # the hub's store is down: fixed feeds are still pushed
        log.exception("websub: could not list custom topics")
        return {}


def feed_digests(
    db: sqlite3.Connection, custom: Mapping[str, Filter], limit: int
) -> dict[tuple[str, str], str]:
    """The digest of every feed, and of each custom feed's document of `limit` articles."""
    found = {
        (kind, slug): digest
        for kind, slug, digest in db.execute("SELECT kind, slug, digest FROM feeds")
    }
    for query, digest in search.digests(db, custom, limit).items():
        found["custom", query] = digest
    return found

"""`feeds index --follow`: the one process that writes a corpus's index while a server runs.

It takes the index's writer lock (waiting while another process holds it), reconciles
the directory with the index, then follows it: each settled change event is applied at
once, scheduled articles are applied when their time comes, the whole directory is
reconciled again every `FEEDS_RESCAN_SECONDS` and on SIGHUP, until SIGTERM or its parent,
the gunicorn master, is gone. Without change events (`FEEDS_WATCH=false`, or the watcher
failed), its folders are polled every `FEEDS_RESCAN_SECONDS` instead (`feeds.index.poll`),
and the whole directory is walked (for edits in place) as often as `WALK_BUDGET` allows.
When the index must be built anew (a new parser or schema version, other load settings,
`feeds index --rebuild`), the build runs beside the served index, which keeps taking every
change until the build has caught up and takes its history; then every worker reads the
new one. Every committed change names the feeds it changed, and those are pushed to
WebSub subscribers. Feeds that changed while nobody was indexing
(the server was stopped) are found by the first reconciliation, so their subscribers
hear of them too.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from feeds.index.indexer import (
    Busy,
    Changes,
    Progress,
    Target,
    apply,
    check_writable,
    due_paths,
    file_of,
    is_live,
    open_index,
    open_served,
    reconcile,
    served_file,
    write_failure,
    writer_lock,
)
from feeds.index.poll import Poller
from feeds.index.watch import Watcher
from feeds.runtime import Runtime
from feeds.settings import Settings
from feeds.websub.delivery import notify
from feeds.websub.moves import Moves, carried_moves, note_moves, take_moves

log = logging.getLogger("feeds.index")

POLL_SECONDS = 0.2
LOCK_RETRY_SECONDS = 1.0
FIRST_RETRY_SECONDS = 1.0  # after a failed write (disk full, read-only); doubles up to
MAX_RETRY_SECONDS = 30.0
WALK_BUDGET = 0.03  # share of a core the full walks may take without change events


class _Signals:
    """SIGHUP asks for a reconciliation, SIGTERM and SIGINT for an exit."""

    def __init__(self) -> None:
        self.reconcile = True
        self.stop = False
        signal.signal(signal.SIGHUP, self._hup)
        signal.signal(signal.SIGTERM, self._term)
        signal.signal(signal.SIGINT, self._term)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # see feeds.server.supervisor

    def _hup(self, _signum: int, _frame: Any) -> None:
        self.reconcile = True

    def _term(self, _signum: int, _frame: Any) -> None:
        self.stop = True


def follow(settings: Settings, progress: Progress | None = None) -> None:
    """Keep the index current until told to stop."""
    target = Target.from_settings(settings)
    signals = _Signals()
    parent = os.getppid()
    waiting = False
    failures = _Failures()
    while not signals.stop and os.getppid() == parent:
        try:
            check_writable(target)
            with writer_lock(target, wait=False):
                if waiting:
                    log.info("took over writing %s", target.path)
                _write(settings, target, signals, parent, progress, failures=failures)
                return
        except Busy:
            if not waiting:
                log.warning(
                    "%s is written by another process; serving it, ready to take over",
                    target.path,
                )
                waiting = True
            time.sleep(LOCK_RETRY_SECONDS)
        except (OSError, sqlite3.Error) as error:  # the data directory, not the code
            problem = write_failure(target.path, error)
            _sleep(signals, parent, failures.failed(f"{problem}; {_serving(target)}"))


def _serving(target: Target) -> str:
    """What readers get while the index cannot be written."""
    if target.path.is_file():
        return "serving the index as it is, without updates"
    return "no index to serve: feeds answer 503"


def _sleep(signals: _Signals, parent: int, seconds: float) -> None:
    """Sleep, but wake for SIGTERM or a gone parent within a tick."""
    deadline = time.monotonic() + seconds
    while not signals.stop and os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)


class _Failures:
    """A write that keeps failing (disk full, read-only data directory): logged once per
    reason, not at every attempt, and tried again after a pause that doubles, bounded."""

    def __init__(self) -> None:
        self.reason = ""
        self.pause = FIRST_RETRY_SECONDS

    def failed(self, reason: str) -> float:
        """Log a new reason; the pause before the next attempt (longer if the reason stays)."""
        if reason != self.reason:
            log.error("%s; retrying", reason)
            self.reason = reason
            self.pause = FIRST_RETRY_SECONDS
        else:
            self.pause = min(self.pause * 2, MAX_RETRY_SECONDS)
        return self.pause

    def succeeded(self) -> None:
        if self.reason:
            log.info("indexing works again")
        self.reason = ""
        self.pause = FIRST_RETRY_SECONDS


def _write(
    settings: Settings,
    target: Target,
    signals: _Signals,
    parent: int,
    progress: Progress | None,
    *,
    failures: _Failures,
) -> None:
    index = _Index(target)
    runtime = Runtime(settings)
    follower = _Follower(target, settings)
    try:

        def apply_seen(wait: float) -> None:
            """Apply the changes seen so far (waiting up to `wait` seconds for some)."""
            paths = follower.wait(wait)
            db = index.current
            due = due_paths(db, time.time_ns() // 1000)
            if (paths or due) and not update_and_push(
                db, runtime, partial(apply, db, target, paths, due), failures
            ):
                follower.rescan_in(failures.pause)  # the paths are spent: a rescan finds them

        # A walk of a million files takes many seconds: changes seen meanwhile (a write
        # right before a SIGHUP, or while a restarted server reconciles) are applied during
        # it, not after it; while a build runs beside the served index, to the served one.
        meanwhile = partial(apply_seen, 0)
        while not signals.stop and os.getppid() == parent:
            apply_seen(POLL_SECONDS)
            if _rebuild_asked(target):
                index.rebuild(target)
            if index.building is not None:
                signals.reconcile = False  # a build walks the whole directory
                follower.walking()
                if _build(index, runtime, target, progress, meanwhile, failures=failures):
                    follower.reconciled(built=True)
                else:
                    follower.rescan_in(failures.pause)
            elif signals.reconcile or follower.rescan_due():
                signals.reconcile = False
                follower.walking()
                walk = partial(reconcile, index.current, target, progress, meanwhile=meanwhile)
                if update_and_push(index.current, runtime, walk, failures):
                    follower.reconciled()
                else:
                    follower.rescan_in(failures.pause)
    finally:
        follower.close()
        index.close()


class _Index:
    """The served index, which every change goes to, and the build that will replace it."""

    def __init__(self, target: Target) -> None:
        db = open_index(target)
        self.building: sqlite3.Connection | None = None if is_live(db) else db
        first = served_file(target) == file_of(db)  # a first build: nothing else to serve
        self.served = db if is_live(db) else None if first else open_served(target)
        if self.served is not None:
            note_moves(self.served)  # what each change adds and withdraws, for custom feeds

    @property
    def current(self) -> sqlite3.Connection:
        """Where changes go: the served index, or the first build while there is none."""
        found = self.served or self.building
        assert found is not None
        return found

    def rebuild(self, target: Target) -> None:
        if self.building is None:
            log.info("rebuilding the index of %s beside the served one", target.root)
            self.building = open_index(target, rebuild=True)

    def switched(self) -> sqlite3.Connection:
        """The build is served now: changes go to it."""
        if self.served is not None:
            self.served.close()
        self.served, self.building = self.building, None
        assert self.served is not None
        note_moves(self.served)
        return self.served

    def close(self) -> None:
        for db in (self.served, self.building):
            if db is not None:
                db.close()


def _rebuild_asked(target: Target) -> bool:
    """`feeds index --rebuild` left its request (taken once)."""
    try:
        target.rebuild_request.unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("cannot take the rebuild request %s (%s)", target.rebuild_request, error)
        return False
    return True


def _build(
    index: _Index,
    runtime: Runtime,
    target: Target,
    progress: Progress | None,
    meanwhile: Callable[[], None],
    *,
    failures: _Failures,
) -> bool:
    """Finish the build (resumed where it stopped) and serve it; push what it changed."""
    assert index.building is not None
    try:
        changes = reconcile(index.building, target, progress, meanwhile=meanwhile)
    except (OSError, sqlite3.Error) as error:
        failures.failed(_failure(index.building, error))
        return False
    failures.succeeded()
    db = index.switched()
    _push(runtime, db, changes, partial(carried_moves, db))
    return True


class _Follower:
    """Change events when the file system gives them, rescans on a timer in any case."""

    def __init__(self, target: Target, settings: Settings) -> None:
        self.root = target.root
        self.enabled = settings.watch
        self.rescan_seconds = settings.rescan_seconds
        self.watcher: Watcher | None = None
        self.watching = False  # the watcher is set up: every change since is an event
        self.walk_watched = False  # it was when the last walk of the directory began
        self.walk_started = 0.0
        self.walk_cpu = 0.0  # this process's CPU time when the last walk began
        self.next_rescan = float("inf")
        self.poller: Poller | None = None
        self.next_poll = 0.0
        self._watch()
        if not self.enabled:
            self._poll()

    def _watch(self) -> None:
        """Set watches up beside the first walk, which does not wait for them (seconds at
        a million files); a walk that began before they were up is followed by one more,
        for what changed meanwhile."""
        if self.enabled and self.root.is_dir():
            self.watcher = Watcher(self.root)
            self.watching = False

    def _poll(self) -> None:
        """Without change events, poll the folders every `rescan_seconds` (0: never)."""
        if self.rescan_seconds:
            self.poller = Poller(self.root)

    def rescan_due(self) -> bool:
        return time.monotonic() >= self.next_rescan

    def walking(self) -> None:
        """A walk of the whole directory begins."""
        self.walk_watched = self.watching
        self.walk_started = time.monotonic()
        self.walk_cpu = time.process_time()
        if self.poller is not None:
            self.poller.learn()  # before the walk lists them: what changes later is polled

    def reconciled(self, built: bool = False) -> None:
        """Schedule the next walk: at once when this one began before the watches were up
        (for what changed meanwhile); else `rescan_seconds` after this one began, so the
        walk reaches each file once per interval (a new file is served within it, plus the
        walk's commit), and a walk longer than that rests as long as it took, so rescans
        take at most half of this process's time. Folders polled between walks find new,
        removed and renamed files: the walks (for edits in place) then take `WALK_BUDGET`
        of a core at most, counted in CPU time (a walk of 100,000 files: 0.9 s). A build
        parsed every file: its CPU time says nothing of the next walk's, which sets the pace."""
        if self.watcher is not None and self.watching and not self.walk_watched:
            self.next_rescan = 0.0
        elif not self.rescan_seconds:
            self.next_rescan = float("inf")
        else:
            started, ended = self.walk_started, time.monotonic()
            rest = max(self.rescan_seconds, 2 * (ended - started))
            if self.poller is not None and not built:
                rest = max(rest, (time.process_time() - self.walk_cpu) / WALK_BUDGET)
            self.next_rescan = started + rest

    def rescan_in(self, seconds: float) -> None:
        """A write failed: reconcile again after a pause, not at every tick."""
        self.next_rescan = time.monotonic() + seconds

    def wait(self, seconds: float = POLL_SECONDS) -> set[str]:
        """Settled changed paths (waits up to `seconds`); a replaced root asks for a rescan."""
        if self.watcher is None:
            if not seconds:
                return set()
            time.sleep(seconds)
            if self.enabled and self.root.is_dir() and self.next_rescan == float("inf"):
                self._watch()  # the root came back: watch it and reconcile at once
                self.next_rescan = 0.0
            return self._polled()
        paths = self.watcher.settled(seconds)
        if self.watcher.failure is not None:
            log.warning(
                "cannot watch %s (%s); changes are found by rescans (FEEDS_RESCAN_SECONDS)",
                self.root,
                self.watcher.failure,
            )
            self.watcher.close()
            self.watcher = None
            self.enabled = False
            self._poll()
            self.next_rescan = 0.0  # what changed since the last event: a walk finds it
            return paths
        if not self.watching and self.watcher.started():
            self.watching = True
            self.next_rescan = 0.0  # the last walk began before: one more, or after it
        if not self.watcher.intact():
            log.warning("%s was moved, replaced or removed; rescanning when it is back", self.root)
            self.watcher.close()
            self.watcher = None
            self.next_rescan = float("inf")
            return set()
        return paths

    def _polled(self) -> set[str]:
        """Every `rescan_seconds`, the folders that changed; a root gone or replaced asks
        for a walk at once."""
        if self.poller is None or time.monotonic() < self.next_poll:
            return set()
        self.next_poll = time.monotonic() + self.rescan_seconds
        paths = self.poller.poll()
        if paths is None:
            self.next_rescan = 0.0
            return set()
        return paths

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()


def update_and_push(
    db: sqlite3.Connection, runtime: Runtime, change: Callable[[], Changes], failures: _Failures
) -> Changes | None:
    """Apply one change to the index and commit it, so it is served; only then push every
    feed it changed: the fixed feeds its commits sealed, and each subscribed custom feed
    whose document the articles it moved changed. None when the change failed (it is
    logged; `failures` says when to try again)."""
    try:
        changes = change()
    except (OSError, sqlite3.Error) as error:
        failures.failed(_failure(db, error))
        return None
    failures.succeeded()
    _push(runtime, db, changes, partial(take_moves, db))
    return changes


def _push(
    runtime: Runtime, db: sqlite3.Connection, changes: Changes, moves: Callable[[], Moves]
) -> None:
    """Queue the pushes of a committed change; they must never stop indexing."""
    try:
        notify(runtime.site, runtime.hub.get(), db, changes.feeds, moves())
    except Exception:
        log.exception("websub: could not queue deliveries")


def _failure(db: sqlite3.Connection, error: BaseException) -> str:
    """One line: what failed, which file, and what readers get meanwhile."""
    problem = write_failure(file_of(db), error)
    if is_live(db):
        return f"indexing failed: {problem}; still serving the last complete index"
    return f"indexing failed: {problem}; no complete index yet, feeds answer 503"

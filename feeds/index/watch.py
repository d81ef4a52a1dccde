"""Following the corpus directory: which paths changed, once they have settled.

`watchfiles` (inotify on Linux) reports file and folder events; a batch is handed on once
no event has come for `SETTLE_MS` (or after `DEBOUNCE_MS` of continuous events), so a file
written in several pieces is read once it is whole, and a burst of edits is read once.
A temporary file renamed into place arrives as its final name (hidden and unlisted names
are never documents). A folder moved away or back is one path: the indexer looks below
it. When the corpus directory itself is replaced or vanishes, events stop coming for it,
so the watcher says so and is started again once the directory is back (the caller then
reconciles).

Events are gathered by a thread of their own, so the indexer can take what has settled
without waiting, between the steps of a long walk of the directory too. That thread also
sets the notifier up (seconds for a million files), so nothing waits for that either: the
caller learns from `started` when events begin to count.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import watchfiles

TICK_MS = 200  # longest a wait for events blocks: signals and schedules are checked as often
SETTLE_MS = 80  # quiet time that ends one batch of events: then its paths are read
DEBOUNCE_MS = 1000  # longest one batch gathers while events keep coming


class Watcher:
    """The settled paths (relative to the root) that changed since they were last handed on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base = os.path.abspath(root)
        self._identity = _identity(root)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._ready = threading.Event()  # paths are pending, or the notifier failed
        self._started = threading.Event()
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._gather, name="watch", daemon=True)
        self._thread.start()

    def _gather(self) -> None:
        """The thread: each settled batch's paths join the pending set."""
        try:
            for batch in watchfiles.watch(
                self._base,
                watch_filter=None,
                debounce=DEBOUNCE_MS,
                step=SETTLE_MS,
                rust_timeout=TICK_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
                stop_event=self._stop,
            ):
                self._started.set()
                paths = {self._relative(path) for _change, path in batch}
                paths.discard("")
                if paths:
                    with self._lock:
                        self._pending.update(paths)
                    self._ready.set()
        except (OSError, RuntimeError) as error:  # no such root, no inotify
            self.failure = error
        self._started.set()
        self._ready.set()

    def _relative(self, path: str) -> str:
        """The path below the root; "" for the root itself or anything outside it."""
        relative = os.path.relpath(path, self._base)
        if relative == "." or relative.startswith(".."):
            return ""
        return Path(relative).as_posix()

    def started(self) -> bool:
        """Whether the notifier is set up: every change from now on is an event."""
        return self._started.is_set() and self.failure is None

    def settled(self, wait: float = TICK_MS / 1000) -> set[str]:
        """The paths settled since the last call, waiting up to `wait` seconds for some."""
        self._ready.wait(wait)
        with self._lock:
            paths, self._pending = self._pending, set()
            self._ready.clear()
        return paths

    def intact(self) -> bool:
        """Whether the root is still the directory being watched, with events coming."""
        return self.failure is None and _identity(self.root) == self._identity

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * TICK_MS / 1000)


def _identity(root: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(root)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)

"""Following the corpus directory: which paths changed, once they have settled.

`watchfiles` (inotify on Linux) reports file and folder events; a batch is handed on once
no event has come for `SETTLE_MS` (or after `DEBOUNCE_MS` of continuous events), so a file
written in several pieces is read once it is whole, and a burst of edits is read once.
A temporary file renamed into place arrives as its final name (hidden and unlisted names
are never documents). A folder moved away or back is one path: the indexer looks below
it. When the corpus directory itself is replaced or vanishes, events stop coming for it,
so the watcher says so and is started again once the directory is back (the caller then
reconciles).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import watchfiles

log = logging.getLogger("feeds.index")

TICK_MS = 200  # longest a wait for events blocks: signals and schedules are checked as often
SETTLE_MS = 80  # quiet time that ends one batch of events: then its paths are read
DEBOUNCE_MS = 1000  # longest one batch gathers while events keep coming


class Watcher:
    """The settled paths (relative to the root) that changed since they were last handed on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base = os.path.abspath(root)
        self._identity = _identity(root)
        self._events: Iterator[set[tuple[watchfiles.Change, str]]] = watchfiles.watch(
            self._base,
            watch_filter=None,
            debounce=DEBOUNCE_MS,
            step=SETTLE_MS,
            rust_timeout=TICK_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        )

    def settled(self) -> set[str]:
        """Wait up to a tick for events; the paths of the batch that has settled, if any."""
        paths = set()
        for _change, path in next(self._events, set()):
            relative = os.path.relpath(path, self._base)
            if relative != "." and not relative.startswith(".."):
                paths.add(Path(relative).as_posix())
        return paths

    def intact(self) -> bool:
        """Whether the root is still the directory being watched."""
        return _identity(self.root) == self._identity

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()


def start(root: Path) -> Watcher | None:
    """A watcher of `root`, or None (logged) where the file system gives no events."""
    try:
        watcher = Watcher(root)
        watcher.settled()  # starts the notifier: a missing root or no inotify raise here
    except (OSError, RuntimeError) as error:
        log.warning(
            "cannot watch %s (%s); changes are found by rescans (FEEDS_RESCAN_SECONDS)",
            root,
            error,
        )
        return None
    return watcher


def _identity(root: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(root)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)

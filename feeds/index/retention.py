"""What the data directory keeps of one corpus's indexes: the served one, at most one being
built, and the newest damaged copy. Nothing else of that corpus stays.

Every settings change or release names a new index file (`schema.index_path`), and every
damaged file is set aside (`schema.set_aside`): without pruning the directory only grows,
by the size of a whole index each time (about 2 GB at a million documents).

- Once this corpus's index is complete (workers read it: they switch at its first
  commit of `state = ready`), every other index of the same corpus directory goes.
- While it is being built, the others that are not complete go (a build cut short by
  another settings change is never served); the complete one stays until this one is.
- An index whose writer lock another process holds is another server's (one on other
  settings, still running): it stays, and goes at a later pass once that server is gone.
- Of the damaged copies of this corpus, only the newest stays (evidence to inspect).
- Files of other corpus directories, and every file that is not an index (subscriber
  counts, WebSub subscriptions), are never touched: the corpus is read from the file name.

Indexes named before the corpus key was part of the name (`index-<24 hex>.sqlite`) are
read (defensively) for the corpus their `meta` rows name.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path

from feeds.index.schema import COMPANIONS
from feeds.sqlite import harden

log = logging.getLogger("feeds.index")

_INDEX = re.compile(r"index-(?P<corpus>[0-9a-f]{16})-[0-9a-f]{16}\.sqlite")
_LEGACY = re.compile(r"index-[0-9a-f]{24}\.sqlite")
_DAMAGED = re.compile(r"index-(?P<corpus>[0-9a-f]{16})-[0-9a-f]{16}\.sqlite\.damaged-(?P<ns>\d+)")
_RUNNABLE = ("trigger", "view")
_said_kept: set[str] = set()  # indexes another process writes, logged once per process


@contextmanager
def exclusive(lock_path: Path, wait: bool) -> Iterator[bool]:
    """Hold the exclusive lock on `lock_path` (created if needed); without `wait`, yields
    False at once when another process holds it."""
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def prune(index: Path, corpus: Path, served: bool) -> list[Path]:
    """Remove what the data directory need not keep for the corpus of `index` (see the
    module's note); `served`: `index` is complete. The removed index and damaged files.

    Never raises: a file that cannot be removed now is logged and tried at the next pass."""
    removed: list[Path] = []
    try:
        names = sorted(os.listdir(index.parent))
    except OSError as error:
        log.warning("cannot list data directory %s (%s); nothing pruned", index.parent, error)
        return removed
    key = _INDEX.fullmatch(index.name)
    if key is None:
        return removed
    mine = key["corpus"]
    realpath = os.path.realpath(corpus)
    for name in names:
        found = _INDEX.fullmatch(name)
        if name == index.name or not (
            (found and found["corpus"] == mine)
            or (_LEGACY.fullmatch(name) and _meta(index.parent / name).get("corpus") == realpath)
        ):
            continue
        if _remove_index(index.parent / name, served):
            removed.append(index.parent / name)
    removed.extend(_prune_damaged(index.parent, names, mine))
    return removed


def _remove_index(path: Path, served: bool) -> bool:
    """Remove an index of this corpus unless another process writes it, or it is complete
    while ours is not."""
    lock = path.with_name(path.name + ".lock")
    try:
        with exclusive(lock, wait=False) as held:
            if not held:
                if path.name not in _said_kept:
                    log.info("kept index %s: another process writes it", path.name)
                    _said_kept.add(path.name)
                return False
            if not served and _meta(path).get("state") == "ready":
                return False  # served until ours is complete
            size = _size(path)
            for suffix in (*COMPANIONS, "", ".lock"):  # WAL first: see schema.set_aside
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    except OSError as error:
        log.warning("could not remove index %s (%s); trying again later", path.name, error)
        return False
    why = "superseded by the one served" if served else "an unfinished build"
    log.info("removed index %s (%.1f MB): %s", path.name, size / 1e6, why)
    return True


def _prune_damaged(directory: Path, names: list[str], corpus: str) -> list[Path]:
    """Remove every damaged copy of this corpus but the newest (with their WAL files)."""
    copies: dict[str, int] = {}
    for name in names:
        found = _DAMAGED.fullmatch(name)
        if found and found["corpus"] == corpus:
            copies[name] = int(found["ns"])
    removed = []
    for name in sorted(copies, key=copies.__getitem__)[:-1]:
        path = directory / name
        try:
            for suffix in (*COMPANIONS, ""):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        except OSError as error:
            log.warning("could not remove damaged copy %s (%s)", name, error)
            continue
        log.info("removed damaged copy %s: a newer one is kept", name)
        removed.append(path)
    return removed


def _meta(path: Path) -> dict[str, str]:
    """The `meta` rows of another index (its corpus and state), read defensively: nothing
    of a file whose schema holds a trigger or view, or whose `meta` is not a table, is
    read; {} when it cannot be read at all."""
    try:
        uri = f"file:{path}?mode=rw"  # never creates a file that was removed meanwhile
        connection = sqlite3.connect(uri, uri=True, timeout=0.1, isolation_level=None)
        with closing(harden(connection)) as db:
            kinds = dict(db.execute("SELECT name, type FROM sqlite_master"))
            if kinds.get("meta") != "table" or any(k in _RUNNABLE for k in kinds.values()):
                return {}
            rows = db.execute("SELECT key, value FROM meta WHERE key IN ('corpus', 'state')")
            return {str(key): str(value) for key, value in rows}
    except sqlite3.Error:
        return {}


def _size(path: Path) -> int:
    total = 0
    for suffix in ("", *COMPANIONS):
        with suppress(OSError):
            total += os.stat(f"{path}{suffix}").st_size
    return total

"""What the data directory keeps of one corpus's indexes: the served one (the link's
target), at most one being built beside it, and the newest damaged copy. Nothing else of
that corpus stays.

A settings change or a new parser or schema version builds a new index file beside the
served one, and every damaged file is set aside (`schema.set_aside`): without pruning the
directory only grows, by the size of a whole index each time (about 2 GB at a million
documents).

- Every index file of this corpus that is neither served nor the one being written goes:
  a superseded one as soon as the link moved past it (workers that still read it keep
  their open connection), a build cut short by another settings change at once.
- An index whose own writer lock another process holds is a server's of an earlier
  release (which locked each file): it stays, and goes at a later pass once it is gone.
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

from feeds.index.schema import BUILT, COMPANIONS
from feeds.sqlite import harden

log = logging.getLogger("feeds.index")

_LEGACY = re.compile(r"index-[0-9a-f]{24}\.sqlite")
_DAMAGED = re.compile(
    r"index-(?P<corpus>[0-9a-f]{16})-[0-9a-f]{16}(?:-[0-9]+)?\.sqlite\.damaged-(?P<ns>\d+)"
)
_LINK = re.compile(r"index-(?P<corpus>[0-9a-f]{16})\.sqlite")
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


def prune(link: Path, corpus: Path, keep: set[Path]) -> list[Path]:
    """Remove what the data directory need not keep for the corpus of `link` (see the
    module's note): every index of it but those in `keep`. The removed files.

    Never raises: a file that cannot be removed now is logged and tried at the next pass."""
    removed: list[Path] = []
    directory = link.parent
    try:
        names = sorted(os.listdir(directory))
    except OSError as error:
        log.warning("cannot list data directory %s (%s); nothing pruned", directory, error)
        return removed
    key = _LINK.fullmatch(link.name)
    if key is None:
        return removed
    mine = key["corpus"]
    kept = {path.name for path in keep}
    realpath = os.path.realpath(corpus)
    for name in names:
        found = BUILT.fullmatch(name)
        if name in kept or not (
            (found and found["corpus"] == mine)
            or (_LEGACY.fullmatch(name) and meta(directory / name).get("corpus") == realpath)
        ):
            continue
        if _remove_index(directory / name):
            removed.append(directory / name)
    removed.extend(_prune_damaged(directory, names, mine))
    return removed


def _remove_index(path: Path) -> bool:
    """Remove an index of this corpus unless a server of an earlier release writes it."""
    lock = path.with_name(path.name + ".lock")
    try:
        with exclusive(lock, wait=False) as held:
            if not held:
                if path.name not in _said_kept:
                    log.info("kept index %s: another process writes it", path.name)
                    _said_kept.add(path.name)
                return False
            state = meta(path).get("state")
            size = _size(path)
            for suffix in (*COMPANIONS, "", ".lock"):  # WAL first: see schema.set_aside
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    except OSError as error:
        log.warning("could not remove index %s (%s); trying again later", path.name, error)
        return False
    why = "superseded by the one served" if state == "ready" else "an unfinished build"
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


def meta(path: Path) -> dict[str, str]:
    """The `meta` rows of another index (its corpus, state and schema), read defensively: nothing
    of a file whose schema holds a trigger or view, or whose `meta` is not a table, is
    read; {} when it cannot be read at all."""
    try:
        uri = f"file:{path}?mode=rw"  # never creates a file that was removed meanwhile
        connection = sqlite3.connect(uri, uri=True, timeout=0.1, isolation_level=None)
        with closing(harden(connection)) as db:
            kinds = dict(db.execute("SELECT name, type FROM sqlite_master"))
            if kinds.get("meta") != "table" or any(k in _RUNNABLE for k in kinds.values()):
                return {}
            rows = db.execute(
                "SELECT key, value FROM meta"
                " WHERE key IN ('corpus', 'state', 'schema', 'indexed', 'files')"
            )
            return {str(key): str(value) for key, value in rows}
    except sqlite3.Error:
        return {}


def _size(path: Path) -> int:
    total = 0
    for suffix in ("", *COMPANIONS):
        with suppress(OSError):
            total += os.stat(f"{path}{suffix}").st_size
    return total

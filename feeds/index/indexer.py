"""The only writer: reconcile the corpus directory with its index, now or as a process.

Reconciling walks the directory, compares each file's size and modification time with
its row, and parses only new and changed files (in parallel processes), writing their
outcomes in batches; files no longer there leave the index. A stamp taken within
`DOUBT_NS` of the moment the file was read may hide a later write in the same clock
tick, so such a file is hashed again and re-parsed if its bytes changed.

One process per index writes: an exclusive lock on a file beside the database is held
for as long as a writer works. The first build is marked `building` until it is whole,
so readers never serve half an index.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import multiprocessing
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from feeds.corpus import Found, LoadOptions, Parsed, Skip, read_document, scan
from feeds.index import writer
from feeds.index.schema import (
    identity,
    index_path,
    open_writer,
    transaction,
)
from feeds.index.writer import Stamp
from feeds.settings import data_directory

log = logging.getLogger("feeds.index")

BATCH = 500  # outcomes written per transaction: progress is visible, commits are cheap
PARALLEL_CHUNK = 200  # documents per task handed to a parsing process
DOUBT_NS = 2_000_000_000

Progress = Callable[[int, int], None]  # (files done, files to do)


@dataclass(frozen=True, slots=True)
class Target:
    """One corpus directory with its load options, and where its index lives."""

    root: Path
    options: LoadOptions
    path: Path

    @classmethod
    def from_settings(cls, settings: dict[str, Any], root: Path | None = None) -> Target:
        options = LoadOptions.from_settings(settings)
        corpus = Path(root or settings["CORPUS_DIR"])
        return cls(corpus, options, index_path(data_directory(settings), corpus, options.key()))

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")


@dataclass
class Changes:
    """What one reconciliation did."""

    files: int = 0
    parsed: int = 0
    removed: int = 0
    seconds: float = 0.0


class EmptyCorpus(OSError):
    """The directory lost every document at once: refused, the last index stays."""


class Busy(RuntimeError):
    """Another process writes this index."""


@contextmanager
def writer_lock(target: Target, wait: bool) -> Iterator[None]:
    """Hold the index's writer lock; without `wait`, raise Busy when another writer has it."""
    target.path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(f"{target.path} is being written by another process") from None
        yield
    finally:
        os.close(descriptor)


def open_index(target: Target) -> sqlite3.Connection:
    return open_writer(target.path, identity(target.root, target.options.key()))


def reconcile(db: sqlite3.Connection, target: Target, progress: Progress | None = None) -> Changes:
    """Bring the index in line with the directory; only new and changed files are parsed."""
    started = time.perf_counter()
    root = target.root
    if not root.is_dir():
        raise NotADirectoryError(f"corpus directory {root} does not exist or is not a directory")
    indexed = {
        path: (size, mtime_ns, read_ns, digest)
        for path, size, mtime_ns, read_ns, digest in db.execute(
            "SELECT path, size, mtime_ns, read_ns, digest FROM documents"
        )
    }
    changes = Changes()
    to_parse: list[Stamp] = []
    for found in scan(root):
        changes.files += 1
        stamp = _stamp(found)
        known = indexed.pop(stamp.path, None)
        if known is None or _changed(root, stamp, known):
            to_parse.append(stamp)
    if not changes.files and indexed:
        raise EmptyCorpus(
            f"corpus directory {root} holds no documents now (an unmounted volume?);"
            f" keeping the {len(indexed)} indexed"
        )
    _set_meta(db, files=str(changes.files))

    def reparse(path: str) -> Parsed | Skip:
        return read_document(root, path, target.options)

    done = changes.files - len(to_parse)
    for batch in _batches(_parse(root, to_parse, target.options), BATCH):
        with transaction(db):
            for stamp, outcome in batch:
                writer.put(db, stamp, outcome, reparse)
                _log_outcome(outcome)
            done += len(batch)
            changes.parsed += len(batch)
            _set_meta(db, indexed=str(done))
        if progress is not None:
            progress(done, changes.files)
    for batch in _batches(iter(indexed), BATCH):
        with transaction(db):
            for path in batch:
                writer.remove(db, path, reparse)
        changes.removed += len(batch)
    with transaction(db):
        _set_meta(db, state="ready", indexed=str(changes.files), files=str(changes.files))
    changes.seconds = time.perf_counter() - started
    log.info(
        "indexed %s: %d files, %d parsed, %d removed in %.2fs",
        root,
        changes.files,
        changes.parsed,
        changes.removed,
        changes.seconds,
    )
    return changes


def update(target: Target, progress: Progress | None = None) -> Changes | None:
    """Reconcile now unless another process is the writer (it keeps the index current)."""
    try:
        with writer_lock(target, wait=False):
            db = open_index(target)
            try:
                return reconcile(db, target, progress)
            finally:
                db.close()
    except Busy:
        log.info("%s is kept current by another process", target.path)
        return None


def _stamp(found: Found | Skip) -> Stamp:
    """A listed document, or an unlisted folder as a stamp of size -1 (recorded as a skip)."""
    if isinstance(found, Skip):
        return Stamp(found.path, -1, 0)
    return Stamp(found.path, found.size, found.mtime_ns)


def _changed(root: Path, stamp: Stamp, known: tuple[int, int, int, str]) -> bool:
    size, mtime_ns, read_ns, digest = known
    if (stamp.size, stamp.mtime_ns) != (size, mtime_ns):
        return True
    if stamp.size < 0 or mtime_ns < read_ns - DOUBT_NS:
        return False
    return _hash(root / stamp.path) != digest  # same stamp, but written as we read it


def _hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _parse(
    root: Path, stamps: list[Stamp], options: LoadOptions
) -> Iterator[tuple[Stamp, Parsed | Skip]]:
    """Each stamp with its file's outcome, parsed by `options.workers` processes."""
    if options.workers < 2 or len(stamps) < 2 * PARALLEL_CHUNK:
        yield from _read_chunk(root, stamps, options)
        return
    chunks = [stamps[i : i + PARALLEL_CHUNK] for i in range(0, len(stamps), PARALLEL_CHUNK)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(options.workers, mp_context=context) as pool:
        for outcomes in pool.map(
            _read_chunk, *zip(*((root, chunk, options) for chunk in chunks), strict=True)
        ):
            yield from outcomes


def _read_chunk(
    root: Path, stamps: list[Stamp], options: LoadOptions
) -> list[tuple[Stamp, Parsed | Skip]]:
    results = []
    for stamp in stamps:
        read_ns = time.time_ns()
        if stamp.size < 0:
            outcome: Parsed | Skip = Skip(
                stamp.path, "unreadable folder: its files are not indexed"
            )
        else:
            outcome = read_document(root, stamp.path, options)
        results.append((Stamp(stamp.path, stamp.size, stamp.mtime_ns, read_ns), outcome))
    return results


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(items, size)):
        yield batch


def _set_meta(db: sqlite3.Connection, **values: str) -> None:
    db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))


def _log_outcome(outcome: Parsed | Skip) -> None:
    if isinstance(outcome, Skip):
        level = logging.INFO if outcome.kind == "filtered" else logging.WARNING
        log.log(level, "%s %s: %s", outcome.kind, outcome.path, outcome.reason)
    else:
        for note in outcome.repairs:
            log.info("repaired %s: %s", outcome.path, note)

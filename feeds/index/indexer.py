"""The only writer: reconcile the corpus directory with its index, or apply what changed.

Reconciling walks the directory, compares each file's size and modification time with
its row, and parses only new and changed files (in parallel processes, through
`feeds.corpus.read_documents` as `feeds check` does), writing their outcomes in batches;
files no longer there leave the index. `apply` does the same for a few named files and
folders (what a watcher saw change). A stamp taken within
`DOUBT_NS` of the moment the file was read may hide a later write in the same clock
tick, so such a file is hashed again and re-parsed if its bytes changed.

One process per index writes: an exclusive lock on a file beside the database is held
for as long as a writer works. The first build is marked `building` until it is whole,
so readers never serve half an index.

Commits are paced: a transaction commits only in a later second than the newest feed
clock (`writer.seal`), at most one a second under a steady stream of changes, so each
feed's `Last-Modified` moves a whole second per change and is never later than the
response's `Date` (RFC 9110 forbids that).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from feeds.corpus import (
    SUFFIXES,
    Found,
    LoadOptions,
    Parsed,
    Skip,
    read_document,
    read_documents,
    scan,
)
from feeds.index import history, retention, writer
from feeds.index.records import microseconds
from feeds.index.schema import (
    BUILT,
    COMPANIONS,
    DamagedIndex,
    ForeignIndex,
    NewerIndex,
    RefusedIndex,
    build_path,
    identity,
    newer_release,
    open_existing,
    open_writer,
    served_link,
    set_aside,
)
from feeds.index.writer import Scheduled, Stamp
from feeds.settings import Settings, corpus_key, data_directory
from feeds.sqlite import UntrustedDatabase, transaction

log = logging.getLogger("feeds.index")

BATCH = 500  # outcomes written per transaction: progress is visible, commits are cheap
DOUBT_NS = 2_000_000_000
# An indexed row whose stamp was taken within DOUBT_NS of its file's read (a skip's
# excepted), with `_DOUBT` as its parameters: its file is hashed again (see `_changed`).
_IN_DOUBT = "size >= 0 AND mtime_ns >= read_ns - ?"
_DOUBT = (DOUBT_NS,)
MEANWHILE_SECONDS = 0.25  # how often a long reconciliation lets seen changes through

Progress = Callable[[int, int], None]  # (files done, files to do)


@dataclass(frozen=True, slots=True)
class Target:
    """One corpus directory with its load options, and where its index lives."""

    root: Path
    options: LoadOptions
    data_dir: Path
    schedule: bool = True  # hold documents dated in the future until their time
    page_size: int = 50  # entries per RFC 5005 archive page sealed from now on

    @classmethod
    def from_settings(cls, settings: Settings, root: Path | None = None) -> Target:
        corpus = Path(root or settings.corpus_dir)
        page_size = min(settings.archive_page_size, settings.default_items)
        options = LoadOptions.from_settings(settings)
        return cls(corpus, options, data_directory(settings), settings.schedule, page_size)

    @property
    def key(self) -> str:
        """What changes the derived rows, beside the corpus and the parser: names the index.
        The page size does not: it applies to pages sealed from now on."""
        return f"{self.options.key()}|schedule={self.schedule}"

    @property
    def path(self) -> Path:
        """The link workers open: it names the served index file."""
        return served_link(self.data_dir, self.root)

    @property
    def lock_path(self) -> Path:
        """One writer per corpus and data directory, whatever file it writes."""
        return self.path.with_name(self.path.name + ".lock")

    @property
    def rebuild_request(self) -> Path:
        """Left by `feeds index --rebuild` for the running writer to find."""
        return self.path.with_name(self.path.name + ".rebuild")

    def built(self, number: int) -> Path:
        return build_path(self.data_dir, self.root, self.key, number)


@dataclass
class Changes:
    """What one reconciliation did."""

    files: int = 0
    parsed: int = 0
    removed: int = 0
    seconds: float = 0.0
    feeds: set[tuple[str, str]] = field(default_factory=set)  # (kind, slug) changed


class EmptyCorpus(OSError):
    """The directory lost every document at once: refused, the last index stays."""


class Busy(RuntimeError):
    """Another process writes this index."""


class ReadOnlyData(PermissionError):
    """This process cannot write the index file: found before SQLite fails (and before
    the index is set aside as damaged, which a read-only error would look like)."""


_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def check_writable(target: Target) -> None:
    """Raise ReadOnlyData, naming the setting to change, unless the index can be written."""
    problem = write_problem(target.path)
    if problem is not None:
        raise ReadOnlyData(problem)


def write_problem(path: Path) -> str | None:
    """Why this process could not write the index at `path` (None when it could)."""
    directory = next(folder for folder in (path.parent, *path.parents) if folder.exists())
    if not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"data directory {directory} is not writable by this process, so the index"
            f" {path.name} cannot be written there; set FEEDS_DATA_DIR to a writable directory"
        )
    for file in (path, path.with_name(path.name + ".lock")):
        if file.exists() and not os.access(file, os.W_OK):
            return f"index file {file} is read-only; make it writable or set FEEDS_DATA_DIR"
    return None


def write_failure(path: Path, error: BaseException) -> str:
    """One line that says why writing the index at `path` failed, in an operator's words."""
    name = getattr(error, "sqlite_errorname", "")
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
        return f"cannot write {path}: disk full or file size limit reached ({error})"
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return f"cannot write {path}: disk full or file size limit reached ({error.strerror})"
    if name in {"SQLITE_READONLY", "SQLITE_CANTOPEN"} or isinstance(error, PermissionError):
        return write_problem(path) or f"cannot write {path}: {error}"
    return f"cannot write {path}: {error}" if name else str(error)


@contextmanager
def writer_lock(target: Target, wait: bool) -> Iterator[None]:
    """Hold the index's writer lock; without `wait`, raise Busy when another writer has it."""
    target.path.parent.mkdir(parents=True, exist_ok=True)
    with retention.exclusive(target.lock_path, wait) as held:
        if not held:
            raise Busy(f"{target.path} is being written by another process")
        yield


def served_file(target: Target) -> Path | None:
    """The index file workers read now (the link's target), None when there is none."""
    try:
        name = os.readlink(target.path)
    except OSError:
        return None
    path = target.path.with_name(os.path.basename(name))
    return path if path.is_file() else None


def open_index(target: Target, rebuild: bool = False) -> sqlite3.Connection:
    """The writer's connection (the lock held) to the file to write now: the served index,
    or a build that will replace it (resumed if one was cut short; a new one for a new
    identity or when `rebuild` asks). What the data directory need not keep goes."""
    target.data_dir.mkdir(parents=True, exist_ok=True)
    _take_restored(target)
    served = served_file(target) or _adopt_unlinked(target)
    if served is not None:
        _refuse_foreign(target, served)
    path = _file_to_write(target, served, rebuild)
    expected = identity(target.root, target.key)
    if path == served:
        try:
            db = open_existing(path, expected)
        except (sqlite3.DatabaseError, DamagedIndex) as error:
            if isinstance(error, RefusedIndex):
                raise
            db = _beside_damaged(target, path, error)
    else:
        db = open_writer(path, expected)
    writing = file_of(db)
    if (is_live(db) or served_file(target) is None) and writing != served:
        # Complete, but a crash came before the switch; or a first build, whose progress
        # workers report (503 "indexing", n of m) until it is complete.
        _switch(target, writing)
    retention.prune(target.path, target.root, keep=_kept(target, writing))
    return db


def _beside_damaged(target: Target, served: Path, error: BaseException) -> sqlite3.Connection:
    """A build beside a damaged served index, which serves what it can meanwhile and gives
    what can be read of its history; one it must not even read is set aside at once."""
    reason = getattr(error, "reason", error)
    if isinstance(error, UntrustedDatabase):
        aside = set_aside(served)
        log.error("served index %s is refused (%s); moved to %s", served.name, reason, aside.name)
    else:
        log.error(
            "served index %s is damaged (%s); building another beside it, which takes what"
            " can be read of its history; serving it meanwhile",
            served.name,
            reason,
        )
    path = _file_to_write(target, served_file(target), rebuild=True)
    db = open_writer(path, identity(target.root, target.key))
    if served_file(target) is not None:
        _set_meta(db, damaged=served.name)  # set aside once its history is taken
    return db


def _refuse_foreign(target: Target, served: Path) -> None:
    corpus = retention.meta(served).get("corpus")
    if corpus is not None and corpus != os.path.realpath(target.root):
        raise ForeignIndex(
            f"served index {served} holds the history of another corpus ({corpus}), not of"
            f" {os.path.realpath(target.root)}: left as it is; move it away to build anew"
        )


def open_served(target: Target) -> sqlite3.Connection | None:
    """A connection to the served index while a new one is built beside it, so changes
    keep reaching readers meanwhile; None when there is none or it is unusable."""
    served = served_file(target)
    if served is None:
        return None
    try:
        db = open_existing(served)
    except (sqlite3.DatabaseError, DamagedIndex, OSError) as error:
        log.error("served index %s cannot be written (%s); serving it as it is", served, error)
        return None
    return db


def _file_to_write(target: Target, served: Path | None, rebuild: bool) -> Path:
    own = target.built(0).name.rsplit("-", 1)[0]  # index-<corpus>-<identity>
    numbers = {}
    for name in os.listdir(target.data_dir):
        found = BUILT.fullmatch(name)
        if found and found["build"] and name.startswith(own + "-"):
            numbers[int(found["build"])] = target.data_dir / name
    current = int(BUILT.fullmatch(served.name)["build"] or 0) if served else 0  # type: ignore[index]
    if served is not None and newer_release(retention.meta(served)):
        raise NewerIndex(
            f"served index {served} was written by a newer release: left as it is;"
            " run that release, or move the file away to build anew"
        )
    later = [number for number in numbers if served is None or number > current]
    if later:
        return numbers[max(later)]  # a build under way (or complete, not switched to yet)
    if served is not None and served.name.startswith(own + "-") and not rebuild:
        return served
    return target.built(max(numbers, default=0) + 1)


def building_progress(target: Target) -> tuple[int, int]:
    """(indexed, files) of the build under way beside the served index; (0, 0) if none."""
    served = served_file(target)
    for name in sorted(os.listdir(target.data_dir), reverse=True):
        path = target.data_dir / name
        if BUILT.fullmatch(name) and name.startswith(target.path.stem) and path != served:
            found = retention.meta(path)
            if found.get("state") == "building":
                return int(found.get("indexed", 0)), int(found.get("files", 0))
    return 0, 0


def _take_restored(target: Target) -> None:
    """A complete index copied to the link's own name (a backup restored) is served as it
    is, and its history carried into a build of this release."""
    link = target.path
    if link.is_symlink() or not link.is_file() or retention.meta(link).get("state") != "ready":
        return
    restored = target.data_dir / f"index-{corpus_key(target.root)}-{'0' * 16}-1.sqlite"
    for suffix in (*COMPANIONS, ""):  # WAL first: see schema.set_aside
        if Path(f"{link}{suffix}").exists():
            os.replace(f"{link}{suffix}", f"{restored}{suffix}")
    log.info("%s is a restored index: serving it as %s, and carrying its history", link, restored)


def _adopt_unlinked(target: Target) -> Path | None:
    """Before the link existed, workers opened the file of their own code: the newest
    complete index of this corpus is the served one, its history to carry."""
    mine = corpus_key(target.root)
    complete = []
    for name in os.listdir(target.data_dir):
        found = BUILT.fullmatch(name)
        path = target.data_dir / name
        if found and found["corpus"] == mine and retention.meta(path).get("state") == "ready":
            complete.append((path.stat().st_mtime_ns, path))
    if not complete:
        return None
    served = max(complete)[1]
    _switch(target, served)
    log.info("serving %s while its successor is built", served.name)
    return served


def _switch(target: Target, path: Path) -> None:
    """Point the link at `path`: every worker reads it from its next request on."""
    staged = target.path.with_name(f".{target.path.name}.{os.getpid()}")
    staged.unlink(missing_ok=True)
    os.symlink(path.name, staged)
    os.replace(staged, target.path)


def _kept(target: Target, writing: Path) -> set[Path]:
    return {path for path in (served_file(target), writing) if path is not None}


def reconcile(
    db: sqlite3.Connection,
    target: Target,
    progress: Progress | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Changes:
    """Bring the index in line with the directory; only new and changed files are parsed.

    `meanwhile` is called about every `MEANWHILE_SECONDS` of the walk and between batches
    (outside any transaction): the follow loop applies the changes it saw in the meantime
    (to the served index, while this one is a build beside it). A build ends here: it
    takes the served index's history, or pages itself by date when there is none, and
    becomes the served one.
    """
    started = time.perf_counter()
    changes = _walk(db, target, progress, meanwhile)
    if not is_live(db):
        _finish_build(db, target, changes)
    # Workers read the new index from the switch on: the others can go now (and those
    # another server was writing at the last pass, once it is gone).
    retention.prune(target.path, target.root, keep=_kept(target, file_of(db)))
    changes.seconds = time.perf_counter() - started
    log.info(
        "indexed %s: %d files, %d parsed, %d removed in %.2fs",
        target.root,
        changes.files,
        changes.parsed,
        changes.removed,
        changes.seconds,
    )
    return changes


def _walk(
    db: sqlite3.Connection,
    target: Target,
    progress: Progress | None,
    meanwhile: Callable[[], None] | None,
) -> Changes:
    pause = _Pause(meanwhile)
    root = target.root
    if not root.is_dir():
        raise NotADirectoryError(f"corpus directory {root} does not exist or is not a directory")
    indexed = {row[0]: row for row in db.execute("SELECT path, size, mtime_ns FROM documents")}
    doubted = dict(db.execute(f"SELECT path, digest FROM documents WHERE {_IN_DOUBT}", _DOUBT))
    began = time.time_ns()
    settled: list[tuple[int, str]] = []  # in doubt, hashed unchanged long after their write
    changes = Changes()
    to_parse: list[Found] = []
    live = is_live(db)
    ready = _clock_ready(db)
    for found in scan(root):
        changes.files += 1
        listed = _listed(found)
        if _changed(root, listed, indexed.pop(listed.path, None), doubted):
            to_parse.append(listed)
        elif listed.path in doubted and listed.mtime_ns < began - DOUBT_NS:
            settled.append((began, listed.path))
        if pause.due():
            if live and to_parse and ready():
                # A served index takes what the walk has found so far: a change is served
                # long before a walk of a million files ends.
                _write(db, target, list(_parse(target, to_parse)), (), changes)
                to_parse = []
            pause.run()
    if not changes.files and indexed:
        raise EmptyCorpus(
            f"corpus directory {root} holds no documents now (an unmounted volume?);"
            f" keeping the {len(indexed)} indexed"
        )
    _note_progress(db, files=str(changes.files))
    done = changes.files - len(to_parse)
    for batch in _batches(_parse(target, to_parse), BATCH, ready):
        done += len(batch)
        _write(db, target, batch, (), changes, indexed=done)
        pause.maybe()
        if progress is not None:
            progress(done, changes.files)
    for batch in _batches(iter(indexed), BATCH, ready):
        _write(db, target, [], batch, changes)
    if settled:
        # Read again after their last write could share a clock tick with the read: out
        # of doubt, or each would be hashed at every rescan for ever (a file indexed from
        # its change event is read within milliseconds of its write). One commit, once.
        with transaction(db):
            db.executemany("UPDATE documents SET read_ns = ? WHERE path = ?", settled)
    if live and _oversized(db, target.page_size):
        _wait_for_clock(db)
        with transaction(db):
            changes.feeds.update(writer.reseal(db, target.page_size, int(time.time())))
    _note_progress(db, indexed=str(changes.files), files=str(changes.files))
    return changes


def _oversized(db: sqlite3.Connection, page_size: int) -> bool:
    """Whether a current document holds more than a page (the page size was lowered)."""
    return (
        db.execute("SELECT 1 FROM feeds WHERE open > ? LIMIT 1", (page_size,)).fetchone()
        is not None
    )


def _finish_build(db: sqlite3.Connection, target: Target, changes: Changes) -> None:
    """A whole build becomes the served index: with the served one's history when there
    is one (after a second walk takes what changed during the first), else paged by date."""
    own = file_of(db)
    source = served_file(target)
    now = int(time.time())
    if source is not None and source.resolve() != own.resolve():
        caught_up = _walk(db, target, None, None)
        # Scheduled articles whose time came during the build: the served index published
        # them, and their files did not change, so the walk did not read them again.
        due = due_paths(db, time.time_ns() // 1000)
        caught_up.parsed += apply(db, target, (), due).parsed if due else 0
        changes.parsed += caught_up.parsed
        changes.removed += caught_up.removed
        db.execute("PRAGMA main.wal_checkpoint(TRUNCATE)")  # the build's WAL, before carrying
        damaged = db.execute("SELECT value FROM meta WHERE key = 'damaged'").fetchone()
        try:
            with _journaled_in_place(db):
                changes.feeds.update(history.carry(db, source, target.page_size, now))
            log.info("carried the history of %s into %s", source.name, own.name)
            if damaged is not None:
                _serve(db, target, own)
                set_aside(source)  # the newest damaged copy is kept, to inspect
        except sqlite3.DatabaseError as error:
            if not _unreadable(error):
                raise  # the build's own disk, not the history: resumed at the next try
            aside = set_aside(source)
            log.error(
                "the history in %s cannot be read (%s); kept as %s, and %s is paged by date",
                source.name,
                error,
                aside.name,
                own.name,
            )
            source = None
    if source is None or source.resolve() == own.resolve():
        with transaction(db):
            changes.feeds.update(writer.finish_first_build(db, target.page_size, now))
    _serve(db, target, own)


@contextmanager
def _journaled_in_place(db: sqlite3.Connection) -> Iterator[None]:
    """Carry (one transaction over the whole history) into a build nobody reads yet
    through a rollback journal, back in WAL mode before it is served. A WAL holds a
    second copy of every page written until its checkpoint (1 GB at 1,000,000 documents,
    beside the served index and the build); a rollback journal keeps only the pages the
    transaction overwrites, and carrying mostly appends. FULL sync meanwhile: under
    NORMAL a power cut can corrupt a file with a rollback journal, never one with a WAL."""
    try:
        switched = db.execute("PRAGMA main.journal_mode = TRUNCATE").fetchall() == [("truncate",)]
    except sqlite3.OperationalError as error:  # a progress probe holds it: carry in WAL
        log.info("carrying through the WAL of %s: %s", file_of(db).name, error)
        switched = False
    db.execute("PRAGMA synchronous = FULL")
    try:
        yield
    finally:
        db.execute("PRAGMA synchronous = NORMAL")
        if switched and db.execute("PRAGMA main.journal_mode = WAL").fetchall() != [("wal",)]:
            raise sqlite3.OperationalError(f"{file_of(db).name} is not back in WAL mode")


def _serve(db: sqlite3.Connection, target: Target, own: Path) -> None:
    """Switch to a finished build with an empty WAL. Its last transaction (a whole corpus's
    pages and clocks: 1 GB at 1,000,000 documents) is checkpointed and truncated before it
    is marked ready: a first build is linked already, and each worker holds a read
    transaction on a ready index from its first look until the next commit, which kept
    that WAL at its size for good."""
    busy, _, _ = db.execute("PRAGMA main.wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        log.warning("%s: its WAL could not be truncated before it is served", own.name)
    if not is_live(db):
        with transaction(db):
            _set_meta(db, state="ready")
    _switch(target, own)


def _unreadable(error: sqlite3.DatabaseError) -> bool:
    """Whether carrying failed on what the served index holds (damaged, refused), not on
    writing the build (a full disk, an I/O error): only then is its history given up."""
    name = getattr(error, "sqlite_errorname", "")
    refused = isinstance(error, UntrustedDatabase | history.UnreadableHistory)
    return refused or name in {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def file_of(db: sqlite3.Connection) -> Path:
    """The file the connection writes (its `main` database)."""
    return Path(next(row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"))


class _Pause:
    """A turn every `MEANWHILE_SECONDS` of a long reconciliation: for what the walk found
    so far, and for `meanwhile`."""

    def __init__(self, meanwhile: Callable[[], None] | None) -> None:
        self.meanwhile = meanwhile
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= MEANWHILE_SECONDS

    def run(self) -> None:
        if self.meanwhile is not None:
            self.meanwhile()
        self.last = time.monotonic()

    def maybe(self) -> None:
        if self.due():
            self.run()


def apply(
    db: sqlite3.Connection, target: Target, paths: Collection[str], due: Collection[str] = ()
) -> Changes:
    """Bring the named files and folders (relative paths) in line with the directory.

    A folder stands for everything below it, so a folder moved away or back is one path;
    the root ("", which only a poller names) for its own files, its folders named apart.
    Files in `due` are read again even if unchanged: scheduled articles whose time came.
    """
    started = time.perf_counter()
    root = target.root
    if not root.is_dir():
        raise NotADirectoryError(f"corpus directory {root} does not exist or is not a directory")
    due_set = set(due)
    stamps, gone = _expand(db, root, {*paths, *due_set})
    if gone and not stamps and not _holds_more_than(db, len(gone)):
        raise EmptyCorpus(f"corpus directory {root} lost its last documents; keeping them")
    changes = Changes(files=len(stamps))
    known, doubted = _known(db, [stamp.path for stamp in stamps])
    to_parse = [
        stamp
        for stamp in stamps
        if stamp.path in due_set or _changed(root, stamp, known.get(stamp.path), doubted)
    ]
    _write(db, target, list(_parse(target, to_parse)), sorted(gone), changes)
    changes.seconds = time.perf_counter() - started
    if changes.parsed or changes.removed:
        log.info(
            "applied %d changed and %d removed files in %.3fs; %d feeds changed",
            changes.parsed,
            changes.removed,
            changes.seconds,
            len(changes.feeds),
        )
    return changes


def due_paths(db: sqlite3.Connection, now_us: int) -> set[str]:
    """Scheduled documents whose time has come."""
    rows = db.execute("SELECT path FROM documents WHERE due <= ?", (now_us,))
    return {path for (path,) in rows}


def _write(
    db: sqlite3.Connection,
    target: Target,
    outcomes: list[tuple[Stamp, Parsed | Skip]],
    gone: list[str] | tuple[str, ...],
    changes: Changes,
    *,
    indexed: int | None = None,
) -> None:
    """One paced transaction: outcomes recorded, vanished files removed, feed clocks moved.

    While the first build runs nobody reads the feeds: nothing is paced and articles join
    no feed (`writer.finish_first_build` derives them all at the end); afterwards every
    change moves its feeds' clocks by a second at least.
    """
    live = is_live(db)
    if live:
        _wait_for_clock(db)

    def reparse(path: str) -> Parsed | Skip:
        return _read(target, path)

    with transaction(db):
        if live:
            for stamp, outcome in outcomes:
                writer.put(db, stamp, outcome, reparse)
        else:
            writer.load(db, outcomes, reparse)
        for _, outcome in outcomes:
            _log_outcome(outcome)
        for path in gone:
            writer.remove(db, path, reparse, live)
        if indexed is not None:
            _set_meta(db, indexed=str(indexed))
        if live:
            changes.feeds.update(writer.seal(db, int(time.time()), target.page_size))
    changes.parsed += len(outcomes)
    changes.removed += len(gone)


def is_live(db: sqlite3.Connection) -> bool:
    """Whether the index is complete: readers serve it, and commits are paced."""
    row = db.execute("SELECT value FROM meta WHERE key = 'state'").fetchone()
    return row is not None and row[0] == "ready"


def _clock_ready(db: sqlite3.Connection) -> Callable[[], bool]:
    """Whether a commit now moves the feed clocks without running them ahead of the wall clock."""
    if not is_live(db):
        return lambda: True
    return lambda: writer.latest_change(db) + 1 <= time.time()


def _wait_for_clock(db: sqlite3.Connection) -> None:
    """Commit in a later second than the newest feed clock: Last-Modified is never ahead."""
    wait = writer.latest_change(db) + 1 - time.time()
    if wait > 0:
        time.sleep(min(wait, 1.0))  # bounded: a clock set back must not stop indexing


def _expand(db: sqlite3.Connection, root: Path, paths: set[str]) -> tuple[list[Found], set[str]]:
    """The stamps of the documents at or below `paths`, and the indexed ones gone from there."""
    stamps: dict[str, Found] = {}
    gone: set[str] = set()
    for relative in sorted(paths):
        if not relative:
            own = {found.path: found for found in map(_listed, scan(root, deep=False))}
            stamps.update(own)
            gone.update(_indexed_at_top(db) - own.keys())
            continue
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        full = root / relative
        below = _indexed_below(db, relative)
        if full.is_dir() and not full.is_symlink():
            for found in scan(full):
                listed = _listed(found)
                label = f"{relative}/{listed.path}"
                stamps[label] = Found(label, listed.size, listed.mtime_ns)
            gone.update(below - stamps.keys())
            continue
        gone.update(below)  # not a folder (now): nothing is below it, whatever its name
        if relative.lower().endswith(SUFFIXES):
            try:
                info = full.stat()
            except FileNotFoundError:
                try:
                    info = full.lstat()  # a dangling link is a document that says why
                except FileNotFoundError:
                    gone.add(relative)
                    continue
            except OSError:
                continue  # unreadable now: the next change or rescan decides
            stamps[relative] = Found(relative, info.st_size, info.st_mtime_ns)
    indexed, _ = _known(db, list(gone))
    return list(stamps.values()), {path for path in gone if path in indexed}


def _holds_more_than(db: sqlite3.Connection, count: int) -> bool:
    """Whether the index has more than `count` documents: it counts no further (a count of
    them all took 0.13 s at 1,000,000, on every removal)."""
    query = "SELECT count(*) FROM (SELECT 1 FROM documents LIMIT ?)"
    return bool(db.execute(query, (count + 1,)).fetchone()[0] > count)


def _indexed_at_top(db: sqlite3.Connection) -> set[str]:
    """The documents in the root folder itself (a scan of every row: only when it changed)."""
    rows = db.execute("SELECT path FROM documents WHERE instr(path, '/') = 0")
    return {path for (path,) in rows}


def _indexed_below(db: sqlite3.Connection, folder: str) -> set[str]:
    rows = db.execute(
        "SELECT path FROM documents WHERE path >= ? AND path < ?", (f"{folder}/", f"{folder}0")
    )
    return {path for (path,) in rows}


def _known(
    db: sqlite3.Connection, paths: list[str]
) -> tuple[dict[str, tuple[str, int, int]], dict[str, str]]:
    """The indexed stamps of `paths`, and the digests of those in doubt (see `_changed`)."""
    known: dict[str, tuple[str, int, int]] = {}
    doubted: dict[str, str] = {}
    for path in paths:
        row = db.execute(
            f"SELECT size, mtime_ns, {_IN_DOUBT}, digest FROM documents WHERE path = ?",
            (*_DOUBT, path),
        ).fetchone()
        if row is not None:
            known[path] = (path, row[0], row[1])
            if row[2]:
                doubted[path] = row[3]
    return known, doubted


def update(
    target: Target, progress: Progress | None = None, rebuild: bool = False
) -> Changes | None:
    """Reconcile now unless another process is the writer (it keeps the index current);
    `rebuild`: build the index anew beside the served one, which serves meanwhile."""
    check_writable(target)
    try:
        with writer_lock(target, wait=False):
            db = open_index(target, rebuild)
            try:
                return reconcile(db, target, progress)
            finally:
                db.close()
    except Busy:
        log.info("%s is kept current by another process", target.path)
        return None


def _listed(found: Found | Skip) -> Found:
    """A listed document, or an unlisted folder as a stamp of size -1 (recorded as a skip)."""
    if isinstance(found, Skip):
        return Found(found.path, -1, 0)
    return found


def _changed(
    root: Path, listed: Found, known: tuple[str, int, int] | None, doubted: Mapping[str, str]
) -> bool:
    """Whether to parse a listed file: new, stamped anew, or, its stamp in doubt (`doubted`
    holds the indexed digest), rewritten within the clock tick it was read in."""
    if known != listed:
        return True
    digest = doubted.get(listed.path)
    return digest is not None and _hash(root / listed.path) != digest


def _hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _parse(target: Target, stamps: list[Found]) -> Iterator[tuple[Stamp, Parsed | Skip]]:
    """Each stamp, with the time its file was read, and the file's outcome."""
    labels = [stamp.path for stamp in stamps]  # an unlisted folder's label reads as its skip
    reads = read_documents(labels, partial(_read, target), target.options.workers)
    for stamp, (read_ns, outcome) in zip(stamps, reads, strict=True):
        yield Stamp(stamp.path, stamp.size, stamp.mtime_ns, read_ns), outcome


def _read(target: Target, path: str) -> Parsed | Skip:
    """The file's outcome; an article dated in the future waits for its time when scheduling."""
    outcome = read_document(target.root, path, target.options)
    if not target.schedule or not isinstance(outcome, Parsed):
        return outcome
    due = microseconds(outcome.article.published)
    if due <= time.time_ns() // 1000:
        return outcome
    when = outcome.article.published.isoformat()
    return Scheduled(path, f"scheduled: appears at {when}", "scheduled", due)


def _key(options: LoadOptions, schedule: bool, page_size: int) -> str:
    return f"{options.key()}|schedule={schedule}|page={page_size}"


def _batches(items: Iterator[Any], size: int, ready: Callable[[], bool]) -> Iterator[list[Any]]:
    """Lists of at least `size` items, each handed on only when `ready` (the rest at the end)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size and ready():
            yield batch
            batch = []
    if batch:
        yield batch


def _note_progress(db: sqlite3.Connection, **values: str) -> None:
    """Record how far a walk came, committing only what moved: every commit makes each
    worker open a new view (and drop its cached answers)."""
    found = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('indexed', 'files')"))
    if any(found.get(key) != value for key, value in values.items()):
        with transaction(db):
            _set_meta(db, **values)


def _set_meta(db: sqlite3.Connection, **values: str) -> None:
    db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))


def _log_outcome(outcome: Parsed | Skip) -> None:
    if isinstance(outcome, Skip):
        level = logging.INFO if outcome.kind in {"filtered", "scheduled"} else logging.WARNING
        log.log(level, "%s %s: %s", outcome.kind, outcome.path, outcome.reason)
    else:
        for note in outcome.repairs:
            log.info("repaired %s: %s", outcome.path, note)

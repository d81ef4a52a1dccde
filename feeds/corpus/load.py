"""One file to an outcome, many files in parallel (the index and `feeds check` alike), and a
whole directory to articles and a report (`feeds check`)."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from feeds.corpus.fields import Filtered, to_parsed
from feeds.corpus.files import read_regular_file, scan, unreadable_folder
from feeds.corpus.frontmatter import parse_front_matter
from feeds.corpus.normalize import Unusable
from feeds.corpus.outcome import CorpusError, LoadOptions, LoadReport, Parsed, Skip
from feeds.model import Article

log = logging.getLogger("feeds.corpus")

PROGRESS_EVERY = 500
PARALLEL_CHUNK = 200  # documents per task: large enough to amortise pickling, small to balance
CHUNKS_AHEAD = 4  # tasks per worker parsed ahead of the consumer: enough to keep it busy
ORPHAN_CHECK_SECONDS = 0.5

Reader = Callable[[str], Parsed | Skip]  # one label to its outcome


def read_document(root: Path, label: str, options: LoadOptions) -> Parsed | Skip:
    """One file to an article or a reason; never raises or blocks for anything the file is.

    A label ending in `/` is a folder `scan` could not list: its skip says why."""
    if label.endswith("/"):
        return unreadable_folder(root, label)
    try:
        raw = read_regular_file(root, label, options.max_file_bytes)
        metadata = parse_front_matter(raw)
        return to_parsed(label, metadata, raw, options)
    except Filtered as excluded:
        return Skip(label, str(excluded), "filtered")
    except Unusable as error:
        return Skip(label, str(error))


@dataclass(frozen=True, slots=True)
class LoadedCorpus:
    articles: Sequence[Article]
    report: LoadReport
    digest: str  # hash of the served documents' bytes, independent of file names and order


def load_corpus(
    root: Path, options: LoadOptions, progress: Callable[[int], None] | None = None
) -> LoadedCorpus:
    """Every document below root, validated, deduplicated, with a report of what was left out.

    This reads every file (`feeds check`); serving reads the index instead.
    """
    started = time.perf_counter()
    if not root.is_dir():
        raise CorpusError(f"corpus directory {root} does not exist or is not a directory")
    corpus = _parse_corpus(root, options, progress)
    report = corpus.report
    report.seconds = time.perf_counter() - started
    log.info(
        "loaded %d of %d documents from %s in %.2fs (%d skipped, %d filtered)",
        report.loaded,
        report.files,
        root,
        report.seconds,
        len(report.skipped),
        len(report.filtered),
    )
    return corpus


def _parse_corpus(
    root: Path, options: LoadOptions, progress: Callable[[int], None] | None = None
) -> LoadedCorpus:
    """Parse every document; `progress` hears the count of documents read, now and then."""
    report = LoadReport()
    copies: dict[str, list[Parsed]] = {}  # by article id: the files that hold it
    for outcome in _outcomes(root, options):
        report.files += 1
        if progress is not None and report.files % PROGRESS_EVERY == 0:
            progress(report.files)
        if isinstance(outcome, Skip):
            _record_skip(report, outcome)
            continue
        report.repairs.extend((outcome.path, note) for note in outcome.repairs)
        for note in outcome.repairs:
            log.info("repaired %s: %s", outcome.path, note)
        copies.setdefault(outcome.article.id, []).append(outcome)
    kept = []
    for found in copies.values():
        winner, *losers = sorted(found, key=_preference)
        kept.append(winner)
        for loser in losers:  # named after all are read: the copy the index serves
            _record_skip(report, Skip(loser.path, f"duplicate: same article as {winner.path}"))
    report.loaded = len(kept)
    digest = hashlib.sha256("".join(sorted(p.digest for p in kept)).encode()).hexdigest()
    return LoadedCorpus(tuple(p.article for p in kept), report, digest)


def _outcomes(root: Path, options: LoadOptions) -> Iterator[Parsed | Skip]:
    """Every document's outcome in file order, read as the index reads them."""
    labels = [found.path for found in scan(root)]  # an unlisted folder's label reads as its skip
    read = partial(read_document, root, options=options)
    for _, outcome in read_documents(labels, read, options.workers):
        yield outcome


def read_documents(
    labels: Sequence[str], read: Reader, workers: int
) -> Iterator[tuple[int, Parsed | Skip]]:
    """`read` of each label, in order, with the time (ns) its reading began.

    Shared by the index and `feeds check`, so both see the same outcomes. `workers` forked
    processes take PARALLEL_CHUNK labels at a time (`read` must pickle: a module-level
    function or a `partial` of one); few labels are read here, where forking costs more.
    """
    if workers < 2 or len(labels) < 2 * PARALLEL_CHUNK:
        yield from _read_chunk(read, labels)
        return
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_parse_for, initargs=(os.getpid(),)
    )
    with pool:
        # At most CHUNKS_AHEAD chunks per worker wait to be taken: a consumer slower than
        # the parsers (the index's writer) would otherwise hold every outcome of the corpus
        # in memory, and keep that memory once it is done.
        ahead: deque[Future[list[tuple[int, Parsed | Skip]]]] = deque()
        for start in range(0, len(labels), PARALLEL_CHUNK):
            ahead.append(pool.submit(_read_chunk, read, labels[start : start + PARALLEL_CHUNK]))
            if len(ahead) >= CHUNKS_AHEAD * workers:
                yield from ahead.popleft().result()
        while ahead:
            yield from ahead.popleft().result()


def _parse_for(parent: int) -> None:
    """Start of a parsing process. It is forked from the indexer, whose SIGTERM only sets a
    flag: a parser keeps the default instead. An indexer killed after its stop timeout left
    its parsers blocked for ever on the pipe back to it; they now leave within a second."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()


def _exit_without(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _read_chunk(read: Reader, labels: Sequence[str]) -> list[tuple[int, Parsed | Skip]]:
    return [(time.time_ns(), read(label)) for label in labels]


def _preference(parsed: Parsed) -> tuple[float, str]:
    """Which copy of a duplicated article to serve: the higher quality, then by content."""
    return (-parsed.quality, parsed.digest)


def _record_skip(report: LoadReport, skip: Skip) -> None:
    if skip.kind == "filtered":
        report.filtered.append(skip)
        log.info("filtered %s: %s", skip.path, skip.reason)
    else:
        report.skipped.append(skip)
        log.warning("skipped %s: %s", skip.path, skip.reason)

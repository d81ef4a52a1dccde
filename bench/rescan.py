"""CPU of one rescan of an unchanged corpus: what `FEEDS_WATCH=false` costs per interval.

Opens the corpus's index as its writer (building it first if there is none), reconciles
once to warm the page cache, then times `reconcile` round after round in CPU seconds
(user and system: on a shared machine, wall time mostly measures the neighbours) and
checks that it committed nothing: a reader's `PRAGMA data_version` must not move, or
every gunicorn worker would drop its cached answers at every rescan.

    .venv/bin/python -m bench.rescan --corpus DIR --data-dir DIR [--rounds 5]
    .venv/bin/python -m bench.rescan --corpus DIR --data-dir DIR --profile
    .venv/bin/python -m bench.rescan --corpus DIR --data-dir DIR --against main

`--profile` prints where one rescan's CPU goes (cProfile on a CPU clock); `--against
REV` alternates fresh processes of REV's `feeds` and the working tree's on the same index
(each the median of 3 rescans: the machine's load comes and goes).
No server may be writing that index meanwhile (the writer lock is taken, or this fails).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sqlite3
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.revisions import alternating
from feeds.index.indexer import Target, file_of, open_index, reconcile, writer_lock
from feeds.settings import load_settings


def rescans(corpus: Path, data_dir: Path, rounds: int, profile: bool) -> list[float]:
    """CPU seconds of each timed rescan; raises if one parsed or committed anything."""
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(data_dir)})
    target = Target.from_settings(settings)
    with writer_lock(target, wait=False):
        db = open_index(target)
        try:
            reconcile(db, target)  # builds a missing index; warms the page cache
            reader = sqlite3.connect(file_of(db))
            version = reader.execute("PRAGMA data_version").fetchone()[0]
            seconds = []
            for _ in range(rounds):
                started = time.process_time()
                changes = reconcile(db, target)
                seconds.append(time.process_time() - started)
                if changes.parsed or changes.removed:
                    raise RuntimeError(f"the corpus changed during the benchmark: {changes}")
            if reader.execute("PRAGMA data_version").fetchone()[0] != version:
                raise RuntimeError("an unchanged rescan committed to the index")
            if profile:
                profiler = cProfile.Profile(time.process_time)
                profiler.runcall(reconcile, db, target)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            reader.close()
        finally:
            db.close()
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rescan", description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--against", metavar="REV", help="compare with the indexer of REV")
    args = parser.parse_args(argv)
    if args.against:
        command = [sys.executable, "-m", "bench.rescan", "--corpus", str(args.corpus)]
        command += ["--data-dir", str(args.data_dir), "--rounds", "3"]  # prints its median
        sides = alternating(args.against, command, args.rounds)
    else:
        sides = {"working tree": rescans(args.corpus, args.data_dir, args.rounds, args.profile)}
    for name, seconds in sides.items():
        rounds = " ".join(f"{value:.3f}" for value in seconds)
        print(f"{name}: CPU s per rescan {rounds}; median {statistics.median(seconds):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

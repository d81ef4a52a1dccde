"""The query behind a custom feed's first render, alone: no server, no rendering.

Opens an existing index as a worker does, samples the same filters as
`bench.custom_feeds` (topic + provider, two words, both + min_quality, each taken from
one article so it matches), and times `View.custom` once per filter, per case.
`--against REV` alternates fresh processes of REV's `feeds` and the working tree's on the
same index (the page cache is shared: both sides meet it equally warm).

    .venv/bin/python -m bench.custom_queries --corpus DIR --data-dir DIR [--filters 30]
    .venv/bin/python -m bench.custom_queries --corpus DIR --data-dir DIR --against main
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.custom_feeds import CASES, sample_queries
from bench.revisions import alternating
from feeds.index.indexer import Target
from feeds.index.reader import IndexReader
from feeds.publish.custom import parse_filter
from feeds.settings import load_settings


def timings(corpus: Path, data_dir: Path, case: str, filters: int) -> list[float]:
    """Milliseconds of each sampled filter's query, in the order sampled."""
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(data_dir)})
    view = IndexReader(Target.from_settings(settings).path).view()
    times = []
    for query in sample_queries(corpus, data_dir, filters)[case]:
        selected = parse_filter(query.encode())
        started = time.perf_counter()
        view.custom(selected, settings.default_items)
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms, max {ordered[-1]:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.custom_queries", description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--filters", type=int, default=30)
    parser.add_argument("--case", choices=CASES, help="one case, printing its median last")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --against")
    parser.add_argument("--against", metavar="REV", help="compare with the queries of REV")
    args = parser.parse_args(argv)
    if args.case:
        print(statistics.median(timings(args.corpus, args.data_dir, args.case, args.filters)))
        return 0
    for case in CASES:
        if args.against:
            command = [sys.executable, "-m", "bench.custom_queries", "--case", case]
            command += ["--corpus", str(args.corpus), "--data-dir", str(args.data_dir)]
            command += ["--filters", str(args.filters)]
            for name, medians in alternating(args.against, command, args.rounds).items():
                rounds = " ".join(f"{value:.1f}" for value in medians)
                print(f"{case}, {name}: median ms per round {rounds}")
        else:
            print(f"{case}: {summary(timings(args.corpus, args.data_dir, case, args.filters))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

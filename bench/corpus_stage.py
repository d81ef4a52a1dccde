"""The corpus stage against its floor: `read_document` beside reading and parsing alone.

Generates a corpus with `tests.generate` (or takes one with `--corpus`), reads
every file once to warm the page cache, then, pinned to one core and round after round,
times (in CPU seconds) two passes over the same files in alternating order:

- baseline: read each file, cut the front matter at its `---` lines and parse it with
  yaml-rs (the options the pipeline uses): the least any corpus stage must do;
- pipeline: `read_document` for each file (read, split, check, parse, withhold the
  secret, clean every field, build the Article).

It prints the median of each and their ratio (issue #23 asks for at most 2). Run with:

    python -m bench.corpus_stage --documents 100000 [--rounds 3] [--corpus DIR]

`--against REV` measures a change instead: the pipeline of git revision REV (its `feeds`
exported to a temporary folder) and of the working tree, each pass in a fresh process
pinned to the same core, alternating, so both sides meet the same machine load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml_rs

from bench.revisions import alternating
from feeds.corpus import Found, LoadOptions, read_document, scan
from feeds.corpus.frontmatter import YAML_OPTIONS
from tests.generate import write_corpus

Pass = Callable[[Path, list[str]], int]


def baseline(root: Path, labels: list[str]) -> int:
    """Read every file and parse its front matter with yaml-rs; the count parsed."""
    parsed = 0
    for label in labels:
        with open(root / label, "rb") as file:
            text = file.read().decode("utf-8")
        front = text[4 : text.index("\n---\n", 3) + 1]
        parsed += isinstance(yaml_rs.loads(front, **YAML_OPTIONS), dict)
    return parsed


def pipeline(root: Path, labels: list[str]) -> int:
    """`read_document` for every file; the count that became articles."""
    options = LoadOptions()
    return sum(not hasattr(read_document(root, label, options), "reason") for label in labels)


def timed(run: Pass, root: Path, labels: list[str]) -> tuple[float, int]:
    """CPU seconds (user and system) of one pass: on a shared machine, wall time mostly
    measures the neighbours, while the CPU time of a one-core pass is the work itself."""
    started = time.process_time()
    count = run(root, labels)
    return time.process_time() - started, count


def measure(root: Path, rounds: int) -> tuple[dict[str, list[float]], int]:
    """Seconds per pass of each side, alternating which goes first, after a warm-up read."""
    labels = [found.path for found in scan(root) if isinstance(found, Found)]
    for label in labels:
        (root / label).read_bytes()
    sides: dict[str, Pass] = {"baseline": baseline, "pipeline": pipeline}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    counts: dict[str, int] = {}
    for number in range(rounds):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for name in order:
            took, counts[name] = timed(sides[name], root, labels)
            seconds[name].append(took)
    print(
        f"{len(labels):,} files; parsed by the baseline {counts['baseline']:,}, "
        f"articles {counts['pipeline']:,}"
    )
    return seconds, len(labels)


def one_core() -> str:
    """Pin this process to one CPU, so neither side gains from another core."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def one_pass(root: Path, side: str) -> float:
    """Seconds of one warm pass of `side` over the corpus, in this process."""
    labels = [found.path for found in scan(root) if isinstance(found, Found)]
    run = baseline if side == "baseline" else pipeline
    run(root, labels[:200])  # imports, compiled patterns, the page cache
    return timed(run, root, labels)[0]


def against(revision: str, root: Path, rounds: int) -> dict[str, list[float]]:
    """Pipeline seconds per pass of `revision` and of the working tree, alternating."""
    command = [sys.executable, "-m", "bench.corpus_stage", "--corpus", str(root)]
    return alternating(revision, [*command, "--one-pass", "pipeline"], rounds)


def report_against(seconds: dict[str, list[float]], documents: int) -> None:
    (before, after) = seconds
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{'pipeline of':<14}{'median s':>10}{'µs/doc':>10}   all rounds (s)")
    for name, values in seconds.items():
        rounds = " ".join(f"{value:.2f}" for value in values)
        print(
            f"{name:<14}{medians[name]:>10.2f}{medians[name] / documents * 1e6:>10.1f}   {rounds}"
        )
    print(f"after / before: {medians[after] / medians[before]:.2f}")


def report(seconds: dict[str, list[float]], documents: int) -> None:
    base = statistics.median(seconds["baseline"])
    ours = statistics.median(seconds["pipeline"])
    print(f"{'side':<10}{'median s':>10}{'µs/doc':>10}   all rounds (s)")
    for name, median in (("baseline", base), ("pipeline", ours)):
        rounds = " ".join(f"{value:.2f}" for value in seconds[name])
        print(f"{name:<10}{median:>10.2f}{median / documents * 1e6:>10.1f}   {rounds}")
    print(f"ratio pipeline / baseline: {ours / base:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus_stage", description=__doc__)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, help="an existing corpus instead of a new one")
    parser.add_argument("--against", metavar="REV", help="compare with the pipeline of REV")
    parser.add_argument("--one-pass", choices=["baseline", "pipeline"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_pass:
        one_core()
        print(f"{one_pass(args.corpus, args.one_pass):.6f}")
        return 0
    with tempfile.TemporaryDirectory(prefix="corpus-stage-") as directory:
        root = args.corpus or Path(directory)
        if args.corpus is None:
            write_corpus(root, args.documents, args.seed, workers=os.cpu_count() or 1)
        if args.against:
            documents = sum(isinstance(found, Found) for found in scan(root))
            report_against(against(args.against, root, args.rounds), documents)
            return 0
        print(one_core())
        report(*measure(root, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

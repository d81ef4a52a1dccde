"""A cold build beside its floor: building the index from nothing against one core reading
every file and parsing its front matter with yaml-rs (`bench.corpus_stage.baseline`).

For each size, round after round, alternating which goes first so both meet the same
machine load, each in a fresh process:

- baseline: the read-and-parse pass pinned to one core, in CPU seconds (on a shared
  machine the CPU time of a one-core pass is the work itself);
- build: `feeds.index.indexer.update` into an empty data directory with the default
  settings (a parser per core), its wall time, the CPU seconds of the writer and of
  the parsers, and the builder's PSS once it is done (what the indexer keeps).

It prints the medians and the ratios issue #23 sets targets for (build at most twice the baseline):
the wall time, and half the build's CPU seconds (its wall time on 2 idle cores). With
`--server`, it then starts the server from the Procfile on a fresh data directory per
size and reports the time to feeds served and the whole server's PSS after the build.

    python -m bench.cold_build --sizes 10000,100000 [--repeats 3] [--server]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.run import ensure_corpus, measure_start, parse_pss_kb, parse_sizes, sample_feeds
from feeds.index.indexer import Target, update
from feeds.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def one_build(corpus: Path, data_dir: Path) -> dict[str, float]:
    """Build the index of `corpus` in `data_dir` here; seconds, CPU seconds and PSS."""
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(data_dir)})
    began, cpu = time.perf_counter(), time.process_time()
    update(Target.from_settings(settings))
    parsers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": time.perf_counter() - began,
        "writer_cpu": time.process_time() - cpu,
        "parsers_cpu": parsers.ru_utime + parsers.ru_stime,
        "pss_mb": parse_pss_kb(Path("/proc/self/smaps_rollup").read_text()) / 1024,
    }


def run_side(side: str, corpus: Path) -> dict[str, float]:
    """One side in a fresh process: its figures."""
    if side == "baseline":
        command = ["-m", "bench.corpus_stage", "--corpus", str(corpus), "--one-pass", "baseline"]
        done = subprocess.run(
            [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return {"cpu": float(done.stdout.split()[-1])}
    with tempfile.TemporaryDirectory(prefix="cold-build-") as data:
        command = ["-m", "bench.cold_build", "--one-build", str(corpus), data]
        done = subprocess.run(
            [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, check=True
        )
    return json.loads(done.stdout.splitlines()[-1])


def measure(corpus: Path, repeats: int) -> dict[str, list[dict[str, float]]]:
    for path in corpus.rglob("*"):  # the page cache holds the corpus for both sides
        if path.is_file():
            path.read_bytes()
    sides: dict[str, list[dict[str, float]]] = {"baseline": [], "build": []}
    for number in range(repeats):
        for side in list(sides) if number % 2 == 0 else list(reversed(sides)):
            sides[side].append(run_side(side, corpus))
    return sides


def report(size: int, sides: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    def median(side: str, key: str) -> float:
        return statistics.median(run[key] for run in sides[side])

    base = median("baseline", "cpu")
    wall = median("build", "seconds")
    cpu = statistics.median(run["writer_cpu"] + run["parsers_cpu"] for run in sides["build"])
    summary = {
        "documents": size,
        "baseline_cpu": base,
        "build_seconds": wall,
        "writer_cpu": median("build", "writer_cpu"),
        "parsers_cpu": median("build", "parsers_cpu"),
        "build_cpu": cpu,
        "ratio_wall": wall / base,
        "ratio_cpu_on_2": cpu / 2 / base,
        "builder_pss_mb": median("build", "pss_mb"),
    }
    walls = " ".join(f"{run['seconds']:.1f}" for run in sides["build"])
    print(
        f"{size:>9,}: baseline {base:.2f} s (1 core); build {wall:.2f} s wall [{walls}],"
        f" CPU writer {summary['writer_cpu']:.2f} s + parsers {summary['parsers_cpu']:.2f} s;"
        f" ratio {summary['ratio_wall']:.2f} (wall), {summary['ratio_cpu_on_2']:.2f}"
        f" (CPU / 2 cores); builder PSS after {summary['builder_pss_mb']:.0f} MB",
        flush=True,
    )
    return summary


def server_after_build(corpus: Path, workdir: Path) -> dict[str, float]:
    """The server from the Procfile on a fresh data directory: feeds served, whole PSS."""
    data = workdir / f"data-{corpus.name}"
    shutil.rmtree(data, ignore_errors=True)
    args = argparse.Namespace(data_dir=data, log_dir=workdir / "logs", start_timeout=3600)
    found = measure_start(corpus, sample_feeds(corpus), args, "cold")
    shutil.rmtree(data, ignore_errors=True)
    return {"seconds_to_serving": found["seconds_to_serving"], "pss_mb": found["pss_kb"] / 1024}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_build", description=__doc__)
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server", action="store_true", help="also the whole server's PSS")
    parser.add_argument("--corpora", type=Path, default=Path("/tmp/feeds-bench"))
    parser.add_argument("--one-build", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_build:
        print(json.dumps(one_build(*args.one_build)))
        return 0
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for size in args.sizes:
        corpus = ensure_corpus(size, args.corpora)
        result: dict[str, object] = {**report(size, measure(corpus, args.repeats))}
        if args.server:
            result["server"] = server_after_build(corpus, args.corpora)
            print(f"{'':>11}server: {result['server']}", flush=True)
        results.append(result)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / f"cold_build-{int(time.time())}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

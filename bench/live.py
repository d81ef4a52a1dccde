"""Freshness of a living corpus: from a file written to its article in every feed it joins.

For each corpus size: the Procfile's server starts on a generated corpus (its own index
directory, rescans off, so only change events count), 64 connections poll the all, topic
and provider feeds, and one article is added, edited and removed `--changes` times each;
each latency runs from the file's close (or unlink) to the moment all three feeds show
it (or no longer do). Then a burst of 1,000 new files (an rsync of a day's articles),
timed until the index holds all of them, and the indexer's CPU over `--idle` seconds with
nothing changing. Feeds invalidated per change come from the indexer's log.

    .venv/bin/python bench/live.py --sizes 10000,100000

`--rescan 5` measures a file system without change events instead (`FEEDS_WATCH=false`,
`FEEDS_RESCAN_SECONDS=5`): once the start's reconciliation is done, the CPU of the indexer
and of the whole server (master, workers, indexer) over `--idle` seconds with nothing
changing and nobody asking, whether the all feed's version moved meanwhile, then
`--changes` new files, each timed from its close until the all feed shows it.
`--code DIR` runs the server from another checkout (e.g. a `git archive` of main), to
compare. Files are written into the corpus and removed at the end: give a copy
(`--work-dir` holding `corpus-N`), not a corpus something else reads.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import requests

from bench.run import (
    OUT_DIR,
    Server,
    child_pids,
    ensure_corpus,
    log,
    parse_sizes,
    procfile_command,
    start_gunicorn,
)
from tests.support import FromAddress

ROOT = Path(__file__).resolve().parent.parent
FEEDS = ("/feeds/all.rss", "/feeds/topics/bench-live.rss", "/feeds/providers/live.example.rss")
POLLERS = 64
POLL_PAUSE = 0.1  # each connection asks again this long after an answer
BURST = 1000
TIMEOUT = 30.0  # longest any one change may take to show before it counts as lost
RESCAN_POLL = 0.05  # seconds between asks for a rescanned file: a gentle client, as the
# rescans it waits for are what is measured
Json = dict[str, Any]


def live_document(title: str, slug: str, published: datetime) -> str:
    return (
        "---\n"
        f'title: "{title}"\n'
        'excerpt: "A change timed by bench/live.py."\n'
        f"publishedDateTime: {published.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        f'webUrl: "https://live.example/{slug}"\n'
        "provider:\n  name: Live Example\n  domain: live.example\n"
        "topics:\n  - Bench Live\n"
        "---\n"
    )


class Pollers:
    """64 keep-alive connections polling the three feeds, each from its own address;
    failures are counted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.answered = 0
        self.failed: list[str] = []
        self.threads = [threading.Thread(target=self._poll, args=(i,)) for i in range(POLLERS)]

    def __enter__(self) -> Pollers:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.seconds = time.monotonic() - self.started

    def _poll(self, number: int) -> None:
        session = requests.Session()
        # Readers come from many addresses: first renders are bounded per client address.
        session.mount("http://", FromAddress(f"127.0.1.{1 + number}"))
        path = FEEDS[number % len(FEEDS)]
        while not self.stop.is_set():
            try:
                status = session.get(self.url + path, timeout=10).status_code
                if status >= 500:
                    self.failed.append(f"{path}: {status}")
                self.answered += 1
            except requests.RequestException as error:
                self.failed.append(f"{path}: {error.__class__.__name__}")
            self.stop.wait(POLL_PAUSE)


def shown_everywhere(session: requests.Session, url: str, marker: str) -> list[bool]:
    found = []
    for path in FEEDS:
        response = session.get(url + path, timeout=10)
        found.append(response.status_code == 200 and marker in response.text)
    return found


def shown_on_all(session: requests.Session, url: str, marker: str) -> bool:
    return all(shown_everywhere(session, url, marker))


def shown_on_none(session: requests.Session, url: str, marker: str) -> bool:
    return not any(shown_everywhere(session, url, marker))


def time_until(check: Callable[[], bool], every: float = 0.005) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > TIMEOUT:
            return float("inf")
        time.sleep(every)
    return time.perf_counter() - started


def measure_changes(
    server: Server, corpus: Path, changes: int, pause: float
) -> dict[str, list[float]]:
    """Seconds from each add, edit and remove to all three feeds agreeing with the file.

    Changes `pause` seconds apart: a feed's Last-Modified moves a whole second per change
    and never ahead of the clock, so one feed shows at most one change a second.
    """
    session = requests.Session()
    results: dict[str, list[float]] = {"add": [], "edit": [], "remove": []}
    for number in range(changes):
        path = corpus / f"live-{number}.md"
        published = datetime.now(UTC) - timedelta(seconds=1)
        added, edited = f"Live added {number}", f"Live edited {number}"
        time.sleep(pause)
        path.write_text(live_document(added, f"a{number}", published))
        results["add"].append(time_until(partial(shown_on_all, session, server.url, added)))
        time.sleep(pause)
        path.write_text(live_document(edited, f"a{number}", published))
        results["edit"].append(time_until(partial(shown_on_all, session, server.url, edited)))
        time.sleep(pause)
        path.unlink()
        results["remove"].append(time_until(partial(shown_on_none, session, server.url, edited)))
    return results


def article_count(server: Server) -> int:
    return requests.get(server.url + "/healthz", timeout=10).json()["articles"]


def measure_burst(server: Server, corpus: Path) -> float:
    """Seconds from the last of 1,000 new files written to the index serving all of them."""
    before = article_count(server)
    folder = corpus / "burst"
    folder.mkdir()
    published = datetime.now(UTC) - timedelta(days=1)
    for number in range(BURST):
        (folder / f"b{number}.md").write_text(
            live_document(f"Burst {number}", f"b{number}", published)
        )
    return time_until(lambda: article_count(server) >= before + BURST)


def indexer_pid(server: Server) -> int:
    for pid in child_pids(server.pid):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"index" in command and b"--follow" in command:
            return pid
    raise RuntimeError("no indexer process under the server")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime in clock ticks


def feeds_per_change(log_path: Path) -> float | None:
    counts = [int(n) for n in re.findall(r"; (\d+) feeds changed", log_path.read_text())]
    return statistics.mean(counts) if counts else None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its direct children (the server: master, workers,
    indexer); a child gone meanwhile counts for nothing."""
    total = 0.0
    for each in [pid, *child_pids(pid)]:
        try:
            total += cpu_seconds(each)
        except OSError:
            continue
    return total


def measure_rescans(server: Server, corpus: Path, args: argparse.Namespace) -> Json:
    """Idle CPU between rescans (indexer, whole server), then new files' time to the all
    feed, each written at no particular moment of the rescan interval."""
    session = requests.Session()
    pid = indexer_pid(server)
    deadline = time.monotonic() + 600
    while "indexed " not in server.log_path.read_text():  # the start's reconciliation
        if time.monotonic() > deadline:
            raise TimeoutError("the start's reconciliation did not end within 600 s")
        time.sleep(0.5)
    time.sleep(args.rescan)
    version = session.get(server.url + FEEDS[0], timeout=10).headers.get("ETag")
    indexer_before, server_before = cpu_seconds(pid), tree_cpu_seconds(server.pid)
    time.sleep(args.idle)
    indexer_cpu = (cpu_seconds(pid) - indexer_before) / args.idle
    server_cpu = (tree_cpu_seconds(server.pid) - server_before) / args.idle
    moved = session.get(server.url + FEEDS[0], timeout=10).headers.get("ETag") != version
    added = []
    for number in range(args.changes):
        time.sleep(args.pause)
        title = f"Live rescanned {number}"
        (corpus / f"live-r{number}.md").write_text(
            live_document(title, f"r{number}", datetime.now(UTC) - timedelta(seconds=1))
        )
        shown = partial(shown_on_feed, session, server.url + FEEDS[0], title)
        added.append(time_until(shown, every=RESCAN_POLL))
    return {
        "rescan_seconds": args.rescan,
        "idle_indexer_cpu": indexer_cpu,
        "idle_server_cpu": server_cpu,
        "all_feed_moved_while_idle": moved,
        "add_s": {"p50": percentile(added, 0.5), "p99": percentile(added, 0.99)},
        "adds": added,
    }


def shown_on_feed(session: requests.Session, url: str, marker: str) -> bool:
    response = session.get(url, timeout=10)
    return response.status_code == 200 and marker in response.text


def run_size(size: int, args: argparse.Namespace) -> Json:
    corpus = ensure_corpus(size, args.work_dir)
    (corpus / "live-seed.md").write_text(
        live_document("Live seed", "seed", datetime(2020, 1, 1, tzinfo=UTC))
    )
    data_dir = args.data_dir or args.work_dir / f"data-live-{size}-{int(time.time())}"
    env = {
        "FEEDS_CORPUS_DIR": str(corpus),
        "FEEDS_DATA_DIR": str(data_dir),
        "FEEDS_RESCAN_SECONDS": str(args.rescan),
    }
    if args.rescan:
        env["FEEDS_WATCH"] = "false"
    if args.code:
        env["PYTHONPATH"] = str(args.code)
    logs = args.work_dir / "logs"
    server = start_gunicorn("live", procfile_command(), env, logs, cwd=args.code or ROOT)
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            try:
                if requests.get(server.url + FEEDS[1], timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        if args.rescan:
            log(f"{size:,}: serving; idle CPU, then {args.changes} adds; rescans {args.rescan} s")
            return {"documents": size, **measure_rescans(server, corpus, args)}
        log(f"{size:,}: serving; measuring {args.changes} adds, edits and removes")
        with Pollers(server.url) as pollers:
            latencies = measure_changes(server, corpus, args.changes, args.pause)
            burst = measure_burst(server, corpus)
        pid = indexer_pid(server)
        time.sleep(2)
        cpu_before = cpu_seconds(pid)
        time.sleep(args.idle)
        idle_cpu = (cpu_seconds(pid) - cpu_before) / args.idle
        return {
            "documents": size,
            "latency_s": {
                kind: {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
                for kind, values in latencies.items()
            },
            "burst_s": burst,
            "requests": pollers.answered,
            "requests_per_s": pollers.answered / pollers.seconds,
            "failed": len(pollers.failed),
            "failures": pollers.failed[:5],
            "feeds_per_change": feeds_per_change(server.log_path),
            "idle_indexer_cpu": idle_cpu,
        }
    finally:
        server.stop()
        shutil.rmtree(corpus / "burst", ignore_errors=True)
        for path in corpus.glob("live-*.md"):
            path.unlink()


def table(results: list[Json]) -> str:
    lines = [
        "| documents | add p50 / p99 | edit p50 / p99 | remove p50 / p99 "
        "| 1,000-file burst | failed / requests | feeds per change | idle indexer CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [f"{r['documents']:,}"]
        for kind in ("add", "edit", "remove"):
            latency = r["latency_s"][kind]
            cells.append(f"{latency['p50'] * 1000:.0f} / {latency['p99'] * 1000:.0f} ms")
        cells.append(f"{r['burst_s']:.2f} s")
        cells.append(f"{r['failed']} / {r['requests']:,}")
        cells.append(f"{r['feeds_per_change']:.1f}" if r["feeds_per_change"] else "n/a")
        cells.append(f"{r['idle_indexer_cpu'] * 100:.2f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rescan_table(results: list[Json]) -> str:
    lines = [
        "| documents | idle CPU: indexer / whole server | all feed moved while idle "
        "| new file served p50 / p99 (max) |",
        "|---|---|---|---|",
    ]
    for r in results:
        cells = [f"{r['documents']:,}"]
        cells.append(f"{r['idle_indexer_cpu'] * 100:.1f} % / {r['idle_server_cpu'] * 100:.1f} %")
        cells.append("yes" if r["all_feed_moved_while_idle"] else "no")
        add = r["add_s"]
        cells.append(f"{add['p50']:.2f} / {add['p99']:.2f} s ({max(r['adds']):.2f} s)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000], help="corpus sizes")
    parser.add_argument("--changes", type=int, default=20, help="adds, edits, removes each")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between changes")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/feeds-bench"))
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="reuse this index directory (e.g. one bench/run.py built) instead of a new one",
    )
    parser.add_argument(
        "--rescan",
        type=int,
        default=0,
        metavar="SECONDS",
        help="no change events: rescan every SECONDS; measure idle CPU and new files' delay",
    )
    parser.add_argument("--code", type=Path, default=None, help="run the server from this tree")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    results = [run_size(size, args) for size in args.sizes]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"live-rescan-{args.rescan}" if args.rescan else "live"
    (OUT_DIR / f"{name}-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(rescan_table(results) if args.rescan else table(results))


if __name__ == "__main__":
    main(sys.argv[1:])

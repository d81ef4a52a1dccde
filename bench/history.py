"""History under polling: a release restart and a forced rebuild against the Procfile's server.

The promise of issue #21 is that neither a release (gunicorn's binary upgrade) nor
`feeds index --rebuild` costs a reader a request, and that a rebuild needs little more
than one index's worth of extra disk. This measures both on a generated corpus while
`--pollers` readers (each from its own address in 127.0.1.0/24, since first renders are
bounded per client address) poll feeds and archive pages with conditional GETs:

1. steady: `--seconds` of polling with nothing happening, to compare with;
2. release: a copy of the package gets a comment in `feeds/corpus/fields.py`, the master
   gets SIGUSR2, and once the new master's workers are up the old master gets SIGTERM;
3. rebuild: `feeds index --rebuild` as a subprocess (it asks the running indexer and
   waits), with the data directory's size and the served link sampled every 50 ms.

    .venv/bin/python -m bench.history --documents 10000 [--pollers 64] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.live import POLL_PAUSE, percentile
from bench.run import OUT_DIR, ensure_corpus, http_get, log, sample_feeds, wait_serving
from tests.support import (
    PROJECT_ROOT,
    FromAddress,
    Server,
    children,
    gone,
    indexer_of,
    launch,
    procfile_command,
    revalidation,
    wait_for,
    worker_pids,
)

Json = dict[str, Any]
POLLERS = 64
WORKERS = 2
FORMATS = ("rss", "atom", "json")
SAMPLE_SECONDS = 0.05  # the data directory and the link, during the rebuild
# Every loop here (pollers, waits, the rebuild) ends by then: 900 s, or 3 s per thousand
# documents on bigger corpora (a build of 1,000,000 takes many minutes).
RUN_LIMIT_SECONDS = 900.0
LIMIT_SECONDS_PER_DOCUMENT = 0.003
SETTLE_SECONDS = 2.0  # polling goes on this long after each event, for requests in flight
DISK_RATIO_TARGET = 2.2
LINK = re.compile(r"index-[0-9a-f]{16}\.sqlite")
ARCHIVE_PAGE = re.compile(r"/archive/(\d+)\.json")
# One poller's record of one request: when it was sent (monotonic), how long it took, and
# what went wrong (None for a 200 or 304).
Answer = tuple[float, float, str | None]
HEADER = (
    "| documents | scenario | requests | failed | p50 | p99 | switch time | peak disk ratio |\n"
    "|---:|---|---:|---:|---:|---:|---:|---:|"
)


class Pollers:
    """Feed readers polling `paths` in turn until stopped (or the run's limit): conditional
    GETs with the validators of their last 200, one pause between requests; every request
    is kept, so each scenario's window can be cut from the same stream."""

    def __init__(self, url: str, paths: list[str], count: int, pause: float, limit: float) -> None:
        self.url, self.paths, self.pause = url, paths, pause
        self.stopped = threading.Event()
        self.answers: list[Answer] = []
        self.deadline = time.monotonic() + limit
        self.cpu_before = _cpu_seconds()
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._poll, args=(n,)) for n in range(count)]
        for thread in self.threads:
            thread.start()

    def _poll(self, number: int) -> None:
        session = requests.Session()
        session.mount("http://", FromAddress(f"127.0.1.{1 + number}"))
        seen: dict[str, dict[str, str]] = {}
        turn = number
        while not self.stopped.is_set() and time.monotonic() < self.deadline:
            path = self.paths[turn % len(self.paths)]
            turn += 1
            asked = time.monotonic()
            failure = None
            try:
                response = session.get(self.url + path, headers=seen.get(path, {}), timeout=10)
                if response.status_code == 200:
                    seen[path] = revalidation(response)
                elif response.status_code != 304:
                    failure = f"{path}: {response.status_code} {response.text[:80]!r}"
            except requests.RequestException as error:
                failure = f"{path}: {error.__class__.__name__}"
            self.answers.append((asked, time.monotonic() - asked, failure))
            self.stopped.wait(self.pause)
        session.close()

    def stop(self) -> Json:
        """Stop every poller; the load generator's own CPU use (it shares the cores)."""
        self.stopped.set()
        for thread in self.threads:
            thread.join()
        seconds = time.monotonic() - self.started
        return {
            "requests": len(self.answers),
            "failed": sum(1 for *_, failure in self.answers if failure),
            "seconds": seconds,
            "client_cpu_cores": (_cpu_seconds() - self.cpu_before) / seconds,
        }

    def window(self, start: float, end: float) -> Json:
        """Requests sent between `start` and `end`: how many, which failed, p50 and p99."""
        inside = [answer for answer in self.answers if start <= answer[0] < end]
        latencies = [seconds * 1000 for _, seconds, _ in inside]
        failures = [f"{at - start:+.2f}s {failure}" for at, _, failure in inside if failure]
        return {
            "seconds": end - start,
            "requests": len(inside),
            "failed": len(failures),
            "failures": failures[:10],
            "p50_ms": percentile(latencies, 0.5) if latencies else None,
            "p99_ms": percentile(latencies, 0.99) if latencies else None,
        }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def polled_paths(port: int, corpus: Path) -> list[str]:
    """The sampled feeds in every format, each with its oldest and newest archive page (the
    newest is the one a live feed seals next; the oldest, what walkers of prev-archive end on)."""
    paths = []
    for feed in sample_feeds(corpus):
        base = feed.removesuffix(".rss")
        status, _, body = http_get(port, f"{base}.json")
        found = (
            ARCHIVE_PAGE.search(json.loads(body).get("next_url") or "") if status == 200 else None
        )
        pages = sorted({1, int(found[1])}) if found else []
        for extension in FORMATS:
            paths.append(f"{base}.{extension}")
            paths += [f"{base}/archive/{page}.{extension}" for page in pages]
    return paths


def warm(port: int, paths: list[str]) -> None:
    """Every polled path rendered once (into the shared render cache) before anything is
    timed: a first render is not what a release or a rebuild costs."""
    for path in paths:
        status, _, _ = http_get(port, path)
        if status != 200:
            raise RuntimeError(f"{path} answered {status} while warming")


def data_files(data: Path) -> dict[str, int]:
    """Each regular file of the data directory and its size (what the disk holds now)."""
    sizes = {}
    for entry in os.scandir(data):
        try:
            if entry.is_file(follow_symlinks=False):
                sizes[entry.name] = entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:  # pruned between the listing and the stat
            continue
    return sizes


def the_link(data: Path) -> Path:
    return next(path for path in data.iterdir() if LINK.fullmatch(path.name))


def index_bytes(data: Path) -> int:
    """One index at rest: the served file and its WAL."""
    served = data / os.readlink(the_link(data))
    wal = served.with_name(served.name + "-wal")
    return served.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def indexed_passes(server: Server) -> int:
    """Reconciliations the server's indexers logged (one line at the end of each)."""
    return len(re.findall(r"\bindexed \S+: \d+ files", server.log()))


def release(server: Server, data: Path, folder: Path, pollers: Pollers) -> tuple[Json, int]:
    """A release of unchanged versions by gunicorn's binary upgrade; the new master's pid."""
    link = the_link(data)
    served_before = os.readlink(link)
    passes = indexed_passes(server)
    old_workers = worker_pids(server)
    with (folder / "feeds" / "corpus" / "fields.py").open("a") as source:
        source.write("\n# a comment in a new release\n")
    began = time.monotonic()
    server.process.send_signal(signal.SIGUSR2)  # a new master, re-executed from disk
    new_master: int = wait_for(
        lambda: next(iter(children(server.pid) - old_workers - indexer_of(server.pid)), 0),
        bool,
        timeout=60,
    )
    wait_for(
        lambda: len(children(new_master) - indexer_of(new_master)),
        lambda n: n >= WORKERS,
        timeout=120,
    )
    workers_up = time.monotonic()
    time.sleep(1.0)  # its workers take connections
    server.process.send_signal(signal.SIGTERM)  # the old master goes, gracefully
    server.process.wait(timeout=60)
    old_gone = time.monotonic()
    time.sleep(SETTLE_SECONDS)
    ended = time.monotonic()
    # The new master's indexer takes the lock once the old one is gone, and walks the
    # corpus: only then would a new identity have started a build.
    wait_for(lambda: indexed_passes(server), lambda n: n > passes, timeout=300, pause=0.5)
    served_after = os.readlink(link)
    result = {
        **pollers.window(began, ended),
        "new_workers_up_s": workers_up - began,
        "old_master_gone_s": old_gone - began,
        "served_before": served_before,
        "served_after": served_after,
        "same_index": served_after == served_before,
    }
    return result, new_master


def rebuild(env: dict[str, str], data: Path, cwd: Path, pollers: Pollers, limit: float) -> Json:
    """`feeds index --rebuild` against the running server: when the link moves, and the
    most the data directory held meanwhile against one index at rest."""
    link = the_link(data)
    served_before = os.readlink(link)
    one_index = index_bytes(data)
    at_rest = data_files(data)
    samples: list[tuple[float, dict[str, int], str]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            samples.append((time.monotonic(), data_files(data), os.readlink(link)))
            sampling.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample)
    began = time.monotonic()
    sampler.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "feeds", "index", "--rebuild"],
            env={**os.environ, **env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
        finished = time.monotonic()
        time.sleep(SETTLE_SECONDS)  # requests in flight at the switch are answered too
    finally:
        sampling.set()
        sampler.join()
    ended = time.monotonic()
    switched = next((at for at, _, name in samples if name != served_before), None)
    peak_at, peak_files, _ = max(samples, key=lambda sample: sum(sample[1].values()))
    peak = sum(peak_files.values())
    return {
        **pollers.window(began, ended),
        "returncode": done.returncode,
        "stdout": done.stdout.strip()[-400:],
        "stderr": done.stderr.strip()[-400:],
        "command_s": finished - began,
        "switch_s": None if switched is None else switched - began,
        "served_before": served_before,
        "served_after": os.readlink(link),
        "one_index_bytes": one_index,
        "at_rest_files": at_rest,
        "peak_bytes": peak,
        "peak_at_s": peak_at - began,
        "peak_files": peak_files,
        "peak_ratio": peak / one_index,
        "samples": len(samples),
    }


def run(args: argparse.Namespace) -> Json:
    loadavg = os.getloadavg()
    log(f"load average at start: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f}")
    corpus = ensure_corpus(args.documents, args.work_dir)
    limit = max(RUN_LIMIT_SECONDS, args.documents * LIMIT_SECONDS_PER_DOCUMENT)
    work = Path(tempfile.mkdtemp(prefix=f"history-{args.documents}-", dir=args.work_dir))
    data, folder = work / "data", work / "release"
    shutil.copytree(PROJECT_ROOT / "feeds", folder / "feeds")  # the release's own source
    env = {
        "FEEDS_CORPUS_DIR": str(corpus),
        "FEEDS_DATA_DIR": str(data),
        "FEEDS_CACHE_TYPE": "filesystem",  # both workers (and both masters) share renders
        "FEEDS_CACHE_DIR": str(work / "renders"),
        "PYTHONPATH": str(folder),
        "WEB_CONCURRENCY": str(WORKERS),
    }
    server = launch(env, procfile_command(), args.work_dir / "logs", "history", cwd=folder)
    result: Json = {
        "documents": args.documents,
        "pollers": args.pollers,
        "pause_s": args.pause,
        "loadavg_at_start": loadavg,
        "log": str(server.log_path),
    }
    new_master = 0
    pollers: Pollers | None = None
    try:
        result["first_build_s"] = wait_serving(server, "/healthz", limit)
        wait_for(lambda: indexed_passes(server), bool, timeout=limit, pause=0.5)
        log(f"serving after {result['first_build_s']:.1f} s; warming")
        paths = polled_paths(server.port, corpus)
        warm(server.port, paths)
        result["paths"] = len(paths)
        pollers = Pollers(server.url, paths, args.pollers, args.pause, limit)
        began = time.monotonic()
        time.sleep(args.seconds)
        result["steady"] = pollers.window(began, time.monotonic())
        log(f"steady: {_summary(result['steady'])}; releasing")
        result["release"], new_master = release(server, data, folder, pollers)
        log(f"release: {_summary(result['release'])}")
        time.sleep(args.seconds)  # the new master settles before the next event
        log("rebuilding")
        result["rebuild"] = rebuild(env, data, folder, pollers, limit)
        log(f"rebuild: {_summary(result['rebuild'])}")
    finally:
        if pollers is not None:
            result["whole_run"] = pollers.stop()
        if new_master and not gone(new_master):
            os.kill(new_master, signal.SIGTERM)
            wait_for(lambda: gone(new_master), bool, timeout=60)
        server.stop()
        result["loadavg_at_end"] = os.getloadavg()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _summary(window: Json) -> str:
    return (
        f"{window['requests']:,} requests, {window['failed']} failed, "
        f"p50 {_ms(window['p50_ms'])}, p99 {_ms(window['p99_ms'])}"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def table_rows(result: Json) -> list[str]:
    """The docs table's rows for one run: documents, scenario, requests, failed, p50, p99,
    switch time, peak disk ratio."""
    rows = []
    documents = f"{result['documents']:,}"
    steady, released = result.get("steady"), result.get("release")
    if steady is not None:
        rows.append(_row(documents, "steady polling", steady, "-", "-"))
    if released is not None:
        same = "same index file" if released["same_index"] else "NEW index file"
        rows.append(_row(documents, f"release (USR2), {same}", released, "-", "-"))
    window = result.get("rebuild")
    if window is not None:
        switch = "not switched" if window["switch_s"] is None else f"{window['switch_s']:.1f} s"
        ratio = f"{window['peak_ratio']:.2f}"
        rows.append(_row(documents, "`feeds index --rebuild`", window, switch, ratio))
    return rows


def _row(documents: str, label: str, window: Json, switch: str, ratio: str) -> str:
    cells = [documents, label, f"{window['requests']:,}", str(window["failed"])]
    cells += [_ms(window["p50_ms"]), _ms(window["p99_ms"]), switch, ratio]
    return "| " + " | ".join(cells) + " |"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=10_000, help="corpus size")
    parser.add_argument("--pollers", type=int, default=POLLERS, help="readers, at most 250")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady and settling window")
    parser.add_argument(
        "--pause", type=float, default=POLL_PAUSE, help="seconds each reader waits between GETs"
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/feeds-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    args.pollers = max(1, min(args.pollers, 250))  # one address each in 127.0.1.0/24
    args.seconds = max(1.0, min(args.seconds, 60.0))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    result["machine"] = {"cpus": os.cpu_count(), "arch": platform.machine()}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = OUT_DIR / f"history-{args.documents}-{stamp}.json"
    out.write_text(json.dumps(result, indent=1))
    rebuilt = result.get("rebuild") or {}
    released = result.get("release") or {}
    print(
        f"{os.cpu_count()} CPUs, load average at start {result['loadavg_at_start'][0]:.2f}, "
        f"at end {result['loadavg_at_end'][0]:.2f}; {args.pollers} pollers, "
        f"{args.pause} s pause; the load generator used "
        f"{result.get('whole_run', {}).get('client_cpu_cores', 0):.2f} cores"
    )
    print(HEADER)
    print("\n".join(table_rows(result)))
    for name, window in (("release", released), ("rebuild", rebuilt)):
        for failure in window.get("failures", []):
            print(f"  {name} failure: {failure}")
    log(f"results: {out}")
    met = (
        released.get("failed") == 0
        and released.get("same_index")
        and rebuilt.get("failed") == 0
        and rebuilt.get("returncode") == 0
        and rebuilt.get("switch_s") is not None
        and rebuilt.get("peak_ratio", DISK_RATIO_TARGET + 1) <= DISK_RATIO_TARGET
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

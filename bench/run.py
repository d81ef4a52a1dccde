"""The benchmark suite: throughput against a minimal WSGI app, cold requests, startup, memory.

Everything runs on this machine over loopback, in one run, so the numbers compare like
with like: our server and the baseline (bench/baseline.py) run under the same gunicorn
settings (feeds/server/gunicorn_config.py, 2 workers) and are measured alternately with wrk. Results
go to bench/out/ as JSON; `--write-docs` puts the summary table into docs/benchmarks.md
between the bench markers.

    .venv/bin/python bench/run.py --write-docs
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feeds.corpus import parse_front_matter
from feeds.corpus.normalize import Unusable
from feeds.model import slugify  # the server's own slugs, so sampled feed URLs exist
from tests.support import Server, launch, procfile_command

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
DOCS = ROOT / "docs"
BENCHMARKS_DOC = DOCS / "benchmarks.md"
START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"
MAX_DURATION = 30  # seconds per wrk run, whatever is asked: every load run stays bounded
WARMUP_SECONDS = 2  # fills every worker's fast path before anything is measured
FEED_PATH = "/feeds/all.rss"
WRK_ARGS = ("-t2", "-c32", "--latency")
WORKERS = "2"
MILLION = 1_000_000
BASELINE_SPEC_ENV = "BENCH_BASELINE_SPEC"
Json = dict[str, Any]


# --- wrk ----------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_wrk(text: str) -> Json:
    """Requests/sec, latency percentiles (ms) and error counts from `wrk --latency` output.

    Raises ValueError when the output has no Requests/sec line: a run we cannot read is
    not a run we may report.
    """
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if rps is None:
        raise ValueError(f"no Requests/sec in wrk output:\n{text}")
    percentiles = {
        match[1]: float(match[2]) * _UNITS_MS[match[3]]
        for match in re.finditer(r"^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)
    }
    total = re.search(
        r"^\s+(\d+) requests in ([0-9.]+)(us|ms|s|m), ([0-9.]+)([KMGT]?B) read", text, re.M
    )
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    requests = int(total[1]) if total else 0
    read_bytes = float(total[4]) * _SIZES[total[5]] if total else 0.0
    return {
        "requests_per_second": float(rps[1]),
        "p50_ms": percentiles.get("50"),
        "p99_ms": percentiles.get("99"),
        "requests": requests,
        "bytes_per_request": round(read_bytes / requests) if requests else None,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
        "non_2xx_3xx": int(non_2xx[1]) if non_2xx else 0,
    }


def run_wrk(url: str, headers: Sequence[str], duration: int) -> Json:
    """One bounded wrk run; the subprocess timeout is a second guard on the bound."""
    command = ["wrk", *WRK_ARGS, f"-d{duration}s"]
    for header in headers:
        command += ["-H", header]
    command.append(url)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=True
    )
    return parse_wrk(done.stdout)


# --- processes ----------------------------------------------------------------------------


def start_gunicorn(
    name: str, command: list[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT
) -> Server:
    """gunicorn on a free loopback port, started the one way tests start it too (in `cwd`:
    the checkout whose code it runs)."""
    return launch({"WEB_CONCURRENCY": WORKERS, **env}, command, log_dir, name, cwd)


def start_ours(
    corpus: Path, args: argparse.Namespace, settings: dict[str, str] | None = None
) -> Server:
    """Our server on `corpus`, with this run's own index directory.

    A fresh index directory per run makes the first start a real first start (no
    index left by an earlier run) and the restart a start from that index.
    """
    env = {
        "FEEDS_CORPUS_DIR": str(corpus),
        "FEEDS_DATA_DIR": str(args.data_dir),
        **(settings or {}),
    }
    return start_gunicorn("feeds", procfile_command(), env, args.log_dir)


def start_baseline(spec_path: Path, log_dir: Path) -> Server:
    """The baseline under exactly our gunicorn config; only the app differs."""
    command = ["gunicorn", "--config", "python:feeds.server.gunicorn_config", "bench.baseline:app"]
    return start_gunicorn("baseline", command, {BASELINE_SPEC_ENV: str(spec_path)}, log_dir)


def wait_serving(server: Server, path: str, timeout: float) -> float:
    """Seconds from Popen to the first 200 on `path`."""
    deadline = server.started_at + timeout
    port = int(server.url.rsplit(":", 1)[1])
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited: see {server.log_path}")
        try:
            status, _, _ = http_get(port, path, timeout=5)
            if status == 200:
                return time.perf_counter() - server.started_at
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"server not serving after {timeout:.0f}s: see {server.log_path}")


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request on a fresh connection, body undecoded (requests would gunzip it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


# --- memory -------------------------------------------------------------------------------


def parse_pss_kb(smaps_rollup: str) -> int:
    """The `Pss:` line of /proc/PID/smaps_rollup, in kB."""
    match = re.search(r"^Pss:\s+(\d+) kB", smaps_rollup, re.M)
    if match is None:
        raise ValueError("no Pss line in smaps_rollup")
    return int(match[1])


def child_pids(pid: int) -> list[int]:
    """Direct children, from /proc/PID/task/*/children or, where the kernel lacks it, a scan."""
    tasks = Path(f"/proc/{pid}/task")
    listed = [task / "children" for task in tasks.iterdir()] if tasks.exists() else []
    if listed and all(path.exists() for path in listed):
        return sorted({int(p) for path in listed for p in path.read_text().split()})
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses; fields after the last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def pss_of_tree(pid: int) -> Json:
    """PSS of the master and its workers: shared pages are split, so the sum is honest."""
    per_process = {}
    for each in [pid, *child_pids(pid)]:
        try:
            per_process[each] = parse_pss_kb(Path(f"/proc/{each}/smaps_rollup").read_text())
        except (OSError, ValueError):
            continue
    return {"total_kb": sum(per_process.values()), "per_process_kb": per_process}


# --- corpora and feeds --------------------------------------------------------------------


def ensure_corpus(count: int, root: Path) -> Path:
    """Generate the corpus once per size (into a temporary name, renamed when complete)."""
    corpus = root / f"corpus-{count}"
    if corpus.is_dir():
        return corpus
    partial = root / f"corpus-{count}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    log(f"generating {count:,} documents into {corpus}")
    command = [sys.executable, "-m", "tests.generate", str(partial), "--count", str(count)]
    subprocess.run(command, cwd=ROOT, check=True)
    partial.rename(corpus)
    return corpus


def sample_feeds(corpus: Path, wanted: int = 2) -> list[str]:
    """`all` plus a few topic and provider feeds named by the first documents of the corpus.

    Read from the files, not from the server, so that asking which feeds exist cannot
    warm the feeds we are about to time.
    """
    topics: list[str] = []
    providers: list[str] = []
    for path in _first_documents(corpus, 200):
        try:
            fields = parse_front_matter(path.read_bytes())
        except (OSError, Unusable):
            continue
        for topic in fields.get("topics") or []:
            if isinstance(topic, str) and len(topics) < wanted:
                slug = slugify(topic)
                if slug not in topics:
                    topics.append(slug)
        domain = (fields.get("provider") or {}).get("domain")
        if isinstance(domain, str) and len(providers) < wanted:
            slug = domain.lower().removeprefix("www.")
            if slug not in providers:
                providers.append(slug)
        if len(topics) >= wanted and len(providers) >= wanted:
            break
    return [
        FEED_PATH,
        *(f"/feeds/topics/{slug}.rss" for slug in topics),
        *(f"/feeds/providers/{slug}.rss" for slug in providers),
    ]


def _first_documents(corpus: Path, limit: int) -> list[Path]:
    """The first documents in sorted order, without walking a million files."""
    found: list[Path] = []
    pending = [corpus]
    while pending and len(found) < limit:
        folder = pending.pop(0)
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        found += [p for p in entries if p.is_file() and p.suffix in {".txt", ".md"}]
        pending = [p for p in entries if p.is_dir()] + pending
    return found[:limit]


# --- measurements -------------------------------------------------------------------------


def wait_bound(server: Server, timeout: float) -> float:
    """Seconds from Popen until the port accepts connections (what a platform waits for)."""
    deadline = server.started_at + timeout
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited: see {server.log_path}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return time.perf_counter() - server.started_at
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"port not bound after {timeout:.0f}s: see {server.log_path}")


def measure_pickup(server: Server, corpus: Path, timeout: float) -> float:
    """Seconds from SIGHUP, after one document changed, until the index serves the change."""
    document = _first_documents(corpus, 1)[0]
    text = document.read_text()
    marker = f"Changed at {time.time_ns()}"
    document.write_text(text.replace("title: ", f"title: {marker} ", 1), encoding="utf-8")
    try:
        before = json.loads(http_get(server.port, "/healthz")[2])["corpus_version"]
        began = time.perf_counter()
        server.process.send_signal(signal.SIGHUP)
        while time.perf_counter() - began < timeout:
            status, _, body = http_get(server.port, "/healthz")
            if status == 200 and json.loads(body)["corpus_version"] != before:
                return time.perf_counter() - began
            time.sleep(0.02)
        raise RuntimeError(f"change not picked up after {timeout:.0f}s: see {server.log_path}")
    finally:
        document.write_text(text, encoding="utf-8")


def measure_start(corpus: Path, feeds: list[str], args: argparse.Namespace, label: str) -> Json:
    """Popen to the port bound and to the first 200 from /healthz (feeds served), cold first
    requests, PSS after warm-up, and after a restart, one changed file picked up."""
    server = start_ours(corpus, args)
    try:
        bound = wait_bound(server, args.start_timeout)
        seconds = wait_serving(server, "/healthz", args.start_timeout)
        port = server.port
        _, _, health_body = http_get(port, "/healthz")
        health = json.loads(health_body)
        cold = {}
        for path in feeds:
            began = time.perf_counter()
            status, _, body = http_get(port, path)
            cold[path] = {
                "ms": (time.perf_counter() - began) * 1000,
                "status": status,
                "bytes": len(body),
            }
        cold_ms = [c["ms"] for c in cold.values() if c["status"] == 200]
        for _ in range(4):  # warm: reach both workers, every format of the sampled feeds
            for path in feeds:
                for extension in (".rss", ".atom", ".json"):
                    http_get(port, path.removesuffix(".rss") + extension)
        memory = pss_of_tree(server.pid)
        pickup = measure_pickup(server, corpus, args.start_timeout) if label == "restart" else None
    finally:
        server.stop()
    result = {
        "seconds_to_bound": bound,
        "seconds_to_serving": seconds,
        "seconds_to_pickup": pickup,
        "articles": health.get("articles"),
        "health": health,
        "cold_requests": cold,
        "cold_median_ms": statistics.median(cold_ms) if cold_ms else None,
        "pss_kb": memory["total_kb"],
        "pss_per_process_kb": memory["per_process_kb"],
    }
    log(
        f"  {label}: bound after {bound:.2f}s, serving after {seconds:.2f}s, "
        f"{health.get('articles')} articles, cold median {result['cold_median_ms'] or 0:.1f} ms, "
        f"PSS {memory['total_kb'] / 1024:.0f} MB"
        + (f", one change picked up in {pickup:.2f}s" if pickup is not None else "")
    )
    return result


def capture_spec(server: Server, workdir: Path) -> tuple[Path, dict[str, Json]]:
    """Fetch our cached feed (plain and gzip) and write the baseline's spec and bodies."""
    port = server.port
    variants = []
    facts: dict[str, Json] = {}
    for encoding, request_headers in (("", {}), ("gzip", {"Accept-Encoding": "gzip"})):
        status, headers, body = http_get(port, FEED_PATH, request_headers)
        if status != 200:
            raise RuntimeError(f"{FEED_PATH} answered {status}")
        kept = [(k, v) for k, v in headers if k.lower() not in {"date", "server", "connection"}]
        body_path = workdir / f"body{'.' + encoding if encoding else ''}"
        body_path.write_bytes(body)
        etag = dict((k.lower(), v) for k, v in headers)["etag"]
        variants.append({"encoding": encoding, "headers": kept, "body_path": str(body_path)})
        facts[encoding or "identity"] = {"bytes": len(body), "etag": etag, "headers": kept}
    spec_path = workdir / "baseline-spec.json"
    spec_path.write_text(json.dumps({"variants": variants}, indent=1))
    return spec_path, facts


def check_same_answers(ours: Server, baseline: Server, cases: dict[str, list[str]]) -> None:
    """Before timing anything: both sides give the same status, body and ETag per case."""
    for case, header_lines in cases.items():
        headers = dict(line.split(": ", 1) for line in header_lines)
        answers = []
        for server in (ours, baseline):
            status, got_headers, body = http_get(server.port, FEED_PATH, headers)
            etag = dict((k.lower(), v) for k, v in got_headers).get("etag")
            answers.append((status, etag, body))
        if answers[0] != answers[1]:
            summary = [(s, e, len(b)) for s, e, b in answers]
            raise RuntimeError(f"{case}: ours and baseline differ: {summary}")
        expected = 304 if case == "304" else 200
        if answers[0][0] != expected:
            raise RuntimeError(f"{case}: expected {expected}, got {answers[0][0]}")


def measure_throughput(corpus: Path, args: argparse.Namespace, workdir: Path) -> Json:
    """wrk against baseline and ours, alternately (A/B/A/B), each case `repeats` times."""
    ours = start_ours(corpus, args)
    try:
        wait_serving(ours, "/healthz", args.start_timeout)
        spec_path, facts = capture_spec(ours, workdir)
        cases = {
            "plain": [],
            "gzip": ["Accept-Encoding: gzip"],
            "304": [f"If-None-Match: {facts['identity']['etag']}"],
        }
        baseline = start_baseline(spec_path, args.log_dir)
        try:
            wait_serving(baseline, FEED_PATH, 60)
            check_same_answers(ours, baseline, cases)
            servers = {"baseline": baseline, "ours": ours}
            for server in servers.values():
                for headers in cases.values():
                    run_wrk(server.url + FEED_PATH, headers, WARMUP_SECONDS)
            runs: dict[str, dict[str, list[Json]]] = {
                c: {"baseline": [], "ours": []} for c in cases
            }
            for repeat in range(args.repeats):
                for case, headers in cases.items():
                    for name, server in servers.items():
                        result = run_wrk(server.url + FEED_PATH, headers, args.duration)
                        runs[case][name].append(result)
                        log(
                            f"  run {repeat + 1}/{args.repeats} {case:5} {name:8} "
                            f"{result['requests_per_second']:8.0f} req/s  "
                            f"p99 {result['p99_ms']:.2f} ms"
                        )
        finally:
            baseline.stop()
    finally:
        ours.stop()
    summary = {case: summarize(by_server) for case, by_server in runs.items()}
    return {
        "feed": FEED_PATH,
        "bytes": {name: fact["bytes"] for name, fact in facts.items()},
        "cases": summary,
        "runs": runs,
    }


def summarize(by_server: dict[str, list[Json]]) -> Json:
    """Medians per server, and ours/baseline as the ratio of the medians."""
    out: Json = {}
    for name, results in by_server.items():
        out[name] = {
            "rps_median": statistics.median(r["requests_per_second"] for r in results),
            "p99_median_ms": statistics.median(r["p99_ms"] for r in results),
            "errors": sum(r["socket_errors"] + r["non_2xx_3xx"] for r in results),
            "bytes_per_request": results[0]["bytes_per_request"],
        }
    out["ratio"] = out["ours"]["rps_median"] / out["baseline"]["rps_median"]
    return out


# --- report -------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s" if value < 100 else f"{value:,.0f} s"


def _mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.0f} MB"


def render_table(results: Json) -> str:
    """docs/benchmarks.md's summary: throughput vs the baseline, startup, memory, cold requests."""
    meta = results["meta"]
    lines = [
        f"Measured {meta['date']} on {meta['cpus']} CPUs ({meta['machine']}), Python "
        f"{meta['python']}, `{meta['command']}`: wrk `{' '.join(WRK_ARGS)}` for "
        f"{meta['duration']} s per run, median of {meta['repeats']} runs, baseline and ours "
        f"alternating; gunicorn from `feeds/server/gunicorn_config.py` with {WORKERS} workers "
        "for both.",
        "",
    ]
    sizes = results["sizes"]
    throughput = {n: s["throughput"] for n, s in sizes.items() if s.get("throughput")}
    if throughput:
        first = next(iter(throughput.values()))
        lines += [
            f"Cached `{FEED_PATH}` ({first['bytes']['identity'] / 1024:.0f} KB plain, "
            f"{first['bytes']['gzip'] / 1024:.0f} KB gzip at the first size):",
            "",
            "| documents | case | baseline req/s | ours req/s | ours / baseline "
            "| baseline p99 | ours p99 | target |",
            "|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        for n, result in throughput.items():
            cases = result["cases"]
            plain_rps = cases["plain"]["ours"]["rps_median"]
            for case, label in (("plain", "200"), ("gzip", "200 gzip"), ("304", "304")):
                c = cases[case]
                if case == "304":
                    vs_200 = c["ours"]["rps_median"] / plain_rps
                    verdict = "met" if vs_200 >= 1 else "missed"
                    target = f"304 ≥ 200: x{vs_200:.2f}, {verdict}"
                else:
                    target = f"≥ 0.90: {'met' if c['ratio'] >= 0.9 else 'missed'}"
                lines.append(
                    f"| {int(n):,} | {label} | {_n(c['baseline']['rps_median'])} "
                    f"| {_n(c['ours']['rps_median'])} | {c['ratio']:.2f} "
                    f"| {_ms(c['baseline']['p99_median_ms'])} | {_ms(c['ours']['p99_median_ms'])} "
                    f"| {target} |"
                )
        if len(throughput) > 1:
            (small, low), *_, (large, high) = throughput.items()
            growth = (
                high["cases"]["plain"]["ours"]["rps_median"]
                / low["cases"]["plain"]["ours"]["rps_median"]
            )
            lines += [
                "",
                f"Cached-feed req/s at {int(large):,} documents / at {int(small):,}: "
                f"{growth:.2f} (1.00 means the per-request cost does not grow with the corpus).",
            ]
        lines.append("")
    lines += [
        "| documents | port bound | cold index → feeds served | restart → feeds served "
        "| one changed file, SIGHUP → served | PSS, whole server | first request (cold), median |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, size in sizes.items():
        start, restart = size.get("start") or {}, size.get("restart") or {}
        bound = max(start.get("seconds_to_bound") or 0, restart.get("seconds_to_bound") or 0)
        lines.append(
            f"| {int(n):,} | {_s(bound)} | {_s(start.get('seconds_to_serving'))} "
            f"| {_s(restart.get('seconds_to_serving'))} | {_s(restart.get('seconds_to_pickup'))} "
            f"| {_mb(restart.get('pss_kb'))} | {_ms(start.get('cold_median_ms'))} |"
        )
    return "\n".join(lines)


def replace_between_markers(
    text: str, table: str, start_mark: str = START_MARK, end_mark: str = END_MARK
) -> str:
    """A document's text with everything between two markers replaced by `table`."""
    start, end = text.find(start_mark), text.find(end_mark)
    if start < 0 or end < start:
        raise ValueError(f"the document needs {start_mark} before {end_mark}")
    return f"{text[: start + len(start_mark)]}\n{table}\n{text[end:]}"


# --- main ---------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        type=parse_sizes,
        help="corpus sizes in documents (default: %(default)s)",
    )
    parser.add_argument(
        "--include-million",
        action="store_true",
        help="also run the 1,000,000-document tier (slow, needs several GB)",
    )
    parser.add_argument(
        "--throughput-sizes",
        type=parse_sizes,
        default=None,
        help="sizes that get the wrk runs (default: the smallest and largest)",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=10,
        help=f"seconds per wrk run (default 10, capped at {MAX_DURATION})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="wrk runs per case and server; the median is reported",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=900,
        help="seconds a server may take to start serving",
    )
    parser.add_argument(
        "--corpus-root",
        type=Path,
        default=Path("/tmp/feeds-bench"),
        help="where corpora are generated once and reused",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"replace the table between {START_MARK} and {END_MARK}",
    )
    args = parser.parse_args(argv)
    args.duration = max(1, min(args.duration, MAX_DURATION))
    args.repeats = max(1, args.repeats)
    if args.include_million and MILLION not in args.sizes:
        args.sizes.append(MILLION)
    args.sizes = sorted(set(args.sizes))
    if args.throughput_sizes is None:
        args.throughput_sizes = sorted({args.sizes[0], args.sizes[-1]})
    args.log_dir = args.corpus_root / "logs"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = args.corpus_root / f"run-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    args.data_dir = workdir / "data"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    command = "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    results: Json = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "command": command.strip(),
            "duration": args.duration,
            "repeats": args.repeats,
            "wrk": list(WRK_ARGS),
            "loadavg_at_start": os.getloadavg(),
        },
        "sizes": {},
    }
    out_path = OUT_DIR / f"results-{stamp}.json"
    for count in args.sizes:
        log(f"== {count:,} documents")
        corpus = ensure_corpus(count, args.corpus_root)
        feeds = sample_feeds(corpus)
        size: Json = {"feeds": feeds}
        results["sizes"][str(count)] = size
        size["start"] = measure_start(corpus, feeds, args, "start")
        size["restart"] = measure_start(corpus, feeds, args, "restart")
        if count in args.throughput_sizes:
            size["throughput"] = measure_throughput(corpus, args, workdir)
        _save(out_path, results)  # a long run that fails late keeps what it measured
    table = render_table(results)
    _save(out_path, results)
    shutil.copyfile(out_path, OUT_DIR / "latest.json")
    print(table)
    log(f"results: {out_path}")
    if args.write_docs:
        BENCHMARKS_DOC.write_text(replace_between_markers(BENCHMARKS_DOC.read_text(), table))
        log(f"{BENCHMARKS_DOC.relative_to(ROOT)} table updated")
    return 0


def _save(path: Path, results: Json) -> None:
    path.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())

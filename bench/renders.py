"""A cached feed's poller alone and under a flood of never-seen custom feeds.

Our server (the Procfile's gunicorn, 2 workers) serves a generated corpus. A poller asks
for the cached all feed 20 times a second on one kept-alive connection (opened before
the flood) and times each answer; wrk floods the server meanwhile with custom feeds
nobody asked for before (each request a new `min_quality`, `limit=500`: a query, a
500-entry render and a compression each), from 64 and then 256 connections. Everything
runs on loopback and every run is bounded in time. `--open-gate` runs the same flood
with the render bound opened by settings, for comparison.

    .venv/bin/python -m bench.renders --size 20000 --open-gate
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.run import (
    MAX_DURATION,
    OUT_DIR,
    ensure_corpus,
    log,
    parse_wrk,
    start_ours,
    wait_serving,
)

POLLED_PATH = "/feeds/all.rss"
POLL_INTERVAL = 0.05
POLL_TIMEOUT = 30.0
FLOODS = (0, 64, 256)
Json = dict[str, object]

# Each wrk thread numbers its requests from its own offset, so no two ask for the same
# filter; the decimals are written without trailing zeros (the canonical spelling), so
# no request is a redirect. Values run to about a million before one repeats.
FLOOD_SCRIPT = """
local next_id = 0
function setup(thread)
  thread:set("offset", next_id * 200000)
  next_id = next_id + 1
end
function init(args)
  sent = 0
end
function request()
  sent = sent + 1
  local n = offset + sent
  local decimals = (string.format("%03d", n % 999 + 1):gsub("0+$", ""))
  local quality = string.format("-%d.%s", math.floor(n / 999) % 999 + 1, decimals)
  return wrk.format("GET", "/feeds/custom.rss?min_quality=" .. quality .. "&limit=500")
end
"""


class Poller(threading.Thread):
    """One reader of a cached feed on one kept-alive connection, for `seconds`.

    The connection is opened (and the feed fetched once) when the poller is made, before
    any flood: what is timed is the answer to a poll, not the accept of a new connection.
    """

    def __init__(self, port: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.seconds = port, seconds
        self.times: list[float] = []
        self.failures: list[str] = []
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=POLL_TIMEOUT)
        self.connection.request("GET", POLLED_PATH, headers={"Accept-Encoding": "gzip"})
        self.connection.getresponse().read()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        connection = self.connection
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                connection.request("GET", POLLED_PATH, headers={"Accept-Encoding": "gzip"})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(str(response.status))
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(type(error).__name__)
                connection.close()
                connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=POLL_TIMEOUT
                )
            self.times.append(time.perf_counter() - started)
            time.sleep(POLL_INTERVAL)
        connection.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def phase(port: int, connections: int, seconds: int, script: Path) -> Json:
    """The poller's latencies while `connections` flood (0: alone), and what wrk saw."""
    poller = Poller(port, seconds)
    flood = None
    if connections:
        command = [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds + 2}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ]
        flood = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # the flood is on before the poller starts
    poller.start()
    poller.join(seconds + POLL_TIMEOUT + 5)
    result: Json = {
        "attackers": connections,
        "poller_requests": len(poller.times),
        "poller_failed": len(poller.failures),
        "poller_failures": dict(Counter(poller.failures)),
        "poller_p50_ms": round(statistics.median(poller.times) * 1000, 1),
        "poller_p99_ms": round(percentile(poller.times, 0.99) * 1000, 1),
        "poller_max_ms": round(max(poller.times) * 1000, 1),
    }
    if flood is not None:
        out, _ = flood.communicate(timeout=seconds + 60)
        wrk = parse_wrk(out)
        result.update(
            flood_requests=wrk["requests"],
            flood_refused=wrk["non_2xx_3xx"],
            flood_rendered=wrk["requests"] - wrk["non_2xx_3xx"],
            flood_socket_errors=wrk["socket_errors"],
        )
    return result


def measure(args: argparse.Namespace, open_gate: bool) -> list[Json]:
    corpus = ensure_corpus(args.size, args.corpus_root)
    args.data_dir = args.corpus_root / f"data-{args.size}"
    env = {}
    if open_gate:  # the bound opened: every render runs at once, as before it existed
        env = {
            "FEEDS_RENDERS": "100000",
            "FEEDS_RENDER_QUEUE": "0",
            "FEEDS_RENDERS_PER_CLIENT": "100000",
        }
    server = start_ours(corpus, args, env)
    results = []
    try:
        started = wait_serving(server, POLLED_PATH, args.start_timeout)
        log(f"{args.size:,} documents: serving after {started:.1f}s (gate open: {open_gate})")
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(FLOOD_SCRIPT)
        for connections in FLOODS:
            row = phase(server.port, connections, args.duration, Path(script.name))
            row["gate"] = "open" if open_gate else "bounded"
            log(f"  {row}")
            results.append(row)
            time.sleep(2)  # the last flood's connections drain
    finally:
        server.stop()
    return results


def table(rows: list[Json]) -> str:
    lines = [
        "| renders | attacker connections | poller p50 | p99 | max | poller failed |"
        " flood requests | rendered | refused (503) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['gate']} | {row['attackers']} | {row['poller_p50_ms']} ms"
            f" | {row['poller_p99_ms']} ms | {row['poller_max_ms']} ms"
            f" | {row['poller_failed']} of {row['poller_requests']}"
            f" | {row.get('flood_requests', '-')} | {row.get('flood_rendered', '-')}"
            f" | {row.get('flood_refused', '-')} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000, help="documents in the corpus")
    parser.add_argument("--duration", type=int, default=20, help="seconds per phase")
    parser.add_argument("--open-gate", action="store_true", help="also run with no bound")
    parser.add_argument("--start-timeout", type=float, default=600)
    parser.add_argument("--corpus-root", type=Path, default=Path("/tmp/feeds-bench"))
    args = parser.parse_args(argv)
    args.duration = min(args.duration, MAX_DURATION)
    args.log_dir = args.corpus_root / "logs"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = measure(args, open_gate=False)
    if args.open_gate:
        rows += measure(args, open_gate=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "renders.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

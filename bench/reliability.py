"""The reliability load test: a mixed load well above the worker count, with a reload
in the middle, against the real server started from the Procfile.

The mix holds cached 200s (plain and gzip), 304s, feeds of every kind, an unknown
slug (404) and the directory page; halfway through, a new document is written into the
corpus and the gunicorn master gets SIGHUP. The run passes when no request failed at
the socket level, no answer was a 5xx, and the p99 latency stays under the bound.

    .venv/bin/python -m bench.reliability [--documents 3000] [--seconds 60] [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.run import (
    DOCS,
    Server,
    ensure_corpus,
    http_get,
    log,
    parse_wrk,
    procfile_command,
    replace_between_markers,
    sample_feeds,
    start_gunicorn,
    wait_serving,
)

START_MARK = "<!-- reliability:start -->"
END_MARK = "<!-- reliability:end -->"
MAX_SECONDS = 60  # the load is bounded, whatever is asked
CONNECTIONS = 64  # 32 per worker: well above the 2 workers
P99_BOUND_MS = 1000.0

# wrk runs this per thread: it cycles through the request mix and counts answers by
# status; done() sums the threads' counts and prints one JSON line.
LUA = r"""
local mix = {MIX}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} ; i = 0 end
function request()
  i = i + 1
  local case = mix[(i % #mix) + 1]
  return wrk.format("GET", case[1], case[2])
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      total[tostring(status)] = (total[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, '"' .. status .. '":' .. n) end
  io.write("STATUSES {" .. table.concat(parts, ",") .. "}\n")
end
"""


def lua_mix(cases: Sequence[tuple[str, dict[str, str]]]) -> str:
    def table(headers: dict[str, str]) -> str:
        return "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"

    return "{" + ", ".join(f'{{"{path}", {table(headers)}}}' for path, headers in cases) + "}"


def request_mix(server: Server, feeds: list[str]) -> list[tuple[str, dict[str, str]]]:
    """The requests the load cycles through; the 304 case uses the ETag served now."""
    _, headers, _ = http_get(server.port, feeds[0], {"Accept-Encoding": "identity"})
    etag = dict((k.lower(), v) for k, v in headers)["etag"].replace('"', '\\"')
    gzip = {"Accept-Encoding": "gzip"}
    cases = [(feeds[0], {}), (feeds[0], gzip), (feeds[0], {"If-None-Match": etag})]
    for feed in feeds[1:]:
        cases += [(feed, gzip), (feed.replace(".rss", ".atom"), {"If-None-Match": etag})]
        cases.append((feed.replace(".rss", ".json"), {}))
    cases += [("/feeds/topics/no-such-topic.rss", {}), ("/feeds/all.rss?limit=10", gzip)]
    cases += [("/", gzip)]
    return cases


def run(documents: int, seconds: int) -> dict:
    seconds = min(seconds, MAX_SECONDS)
    source = ensure_corpus(documents, Path(tempfile.gettempdir()) / "feeds-bench")
    work = Path(tempfile.mkdtemp(prefix="feeds-reliability-"))
    corpus = work / "corpus"
    shutil.copytree(source, corpus)
    env = {"FEEDS_CORPUS_DIR": str(corpus), "FEEDS_DATA_DIR": str(work / "data")}
    server = start_gunicorn("reliability", procfile_command(), env, work)
    try:
        wait_serving(server, "/healthz", 600)
        feeds = sample_feeds(corpus)
        for feed in feeds:  # warm each worker a little; the rest warms under load
            http_get(server.port, feed)
        script = work / "mix.lua"
        script.write_text(LUA.replace("{MIX}", lua_mix(request_mix(server, feeds))))
        reload_at = seconds / 3
        reload_done: list[float] = []
        started = time.monotonic()
        reloader = threading.Timer(
            reload_at, reload_with_new_document, (server, corpus, started, reload_done)
        )
        reloader.start()
        command = [
            "wrk",
            "-t2",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            server.url + "/",
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=True
        )
        reloader.join()
        result = parse_wrk(done.stdout)
        errors = re.search(r"^\s*Socket errors: (.*)$", done.stdout, re.M)
        reported = re.search(r"^STATUSES (.*)$", done.stdout, re.M)
        statuses = json.loads(reported[1]) if reported else {}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    server_errors = sum(n for status, n in statuses.items() if status.startswith("5"))
    return {
        "documents": documents,
        "seconds": seconds,
        "connections": CONNECTIONS,
        "requests": result["requests"],
        "requests_per_second": result["requests_per_second"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "statuses": dict(sorted(statuses.items())),
        "socket_errors": result["socket_errors"],
        "socket_error_kinds": errors[1] if errors else "none",
        "server_errors": server_errors,
        "reload_at_s": reload_at,
        "reload_done_at_s": reload_done[0] if reload_done else None,
        "passed": bool(reload_done)
        and reload_done[0] < seconds
        and server_errors == 0
        and result["socket_errors"] == 0
        and (result["p99_ms"] or 0) < P99_BOUND_MS,
    }


def reload_with_new_document(
    server: Server, corpus: Path, started: float, done: list[float]
) -> None:
    """Change the corpus under load, ask the master to reload it, note when it serves it."""
    (corpus / "zz-reliability.txt").write_text(
        '---\ntitle: "Written during the load test"\n'
        "publishedDateTime: 2030-01-01T00:00:00Z\n"
        'webUrl: "https://example.com/reliability"\n'
        "provider:\n  name: Example\n  domain: example.com\n---\n"
    )
    before = corpus_version(server)
    log("SIGHUP: reloading the corpus under load")
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 2 * MAX_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if corpus_version(server) != before:
            done.append(time.monotonic() - started)
            log(f"new corpus served {done[0]:.1f} s into the load")
            return


def corpus_version(server: Server) -> str:
    _, _, body = http_get(server.port, "/healthz")
    return json.loads(body)["corpus_version"]


def render_table(result: dict) -> str:
    statuses = ", ".join(f"{status}: {n:,}" for status, n in result["statuses"].items())
    verdict = "held" if result["passed"] else "FAILED"
    return "\n".join(
        [
            "| what | measured |",
            "|---|---|",
            f"| load | {result['connections']} connections, 2 wrk threads, {result['seconds']} s, "
            f"{result['documents']:,} documents, 2 gevent workers |",
            f"| requests | {result['requests']:,} ({result['requests_per_second']:,.0f}/s) |",
            f"| answers by status | {statuses} |",
            f"| socket errors (connect, read, write, timeout) | {result['socket_errors']} |",
            f"| 5xx answers | {result['server_errors']} |",
            f"| reload (SIGHUP, one new document) at {result['reload_at_s']:.0f} s | "
            + (
                f"new corpus served from {result['reload_done_at_s']:.1f} s |"
                if result["reload_done_at_s"]
                else "NOT DONE |"
            ),
            f"| latency p50 / p99 | {result['p50_ms']:.1f} ms / {result['p99_ms']:.1f} ms "
            f"(bound {P99_BOUND_MS:.0f} ms) |",
            f"| verdict | {verdict} |",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=3_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.documents, args.seconds)
    print(json.dumps(result, indent=2))
    if args.write_docs:
        doc = DOCS / "security.md"
        doc.write_text(
            replace_between_markers(doc.read_text(), render_table(result), START_MARK, END_MARK)
        )
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

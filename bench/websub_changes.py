"""One change, from the file written to served (and pushed), with many subscribed custom feeds.

For each number of subscriptions, our server (the Procfile's gunicorn, 2 workers) serves a
generated corpus, and that many distinct custom feeds (canonical filters built from the
index's own topics, providers and title words) are subscribed in the hub's store, each to
a callback on loopback that answers 204. One more filter matches only the articles the
benchmark writes. Each round writes one new article; "served" is until GET
/feeds/all.rss holds it, "pushed" until the probe's callback got its document.
Every wait is bounded (--timeout), so a run ends whatever the server does.
The claim measured here, not in the tests: with thousands of subscribed custom feeds a
change is still served within a few seconds (tests/test_hub_custom_changes.py asserted
under 3 s with 2,000 until timing left the tests; it checks only one filter is queried).

    .venv/bin/python -m bench.websub_changes --subscriptions 0,1000,10000
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.run import ensure_corpus, http_get, log, start_gunicorn, wait_serving
from feeds.index.indexer import Target
from feeds.index.reader import IndexReader
from feeds.index.search import Filter
from feeds.publish.custom import canonical_query
from feeds.settings import load_settings
from feeds.websub.store import Limits, SqliteSubscriptionStore, Subscription
from tests.support import document, procfile_command

PROBE_WORD = "zyxwebsubprobe"
ROOMY = Limits(1_000_000, 1_000_000, 1_000_000)


class Sink:
    """Callbacks on loopback: every POST is answered 204; the probe's arrivals are timed."""

    def __init__(self) -> None:
        self.probe_hits: list[float] = []
        self.posts = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.posts += 1
                if "probe" in self.path:
                    owner.probe_hits.append(time.perf_counter())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def filters(corpus: Path, data_dir: Path, count: int) -> list[str]:
    """`count` distinct canonical queries that name the index's own topics and providers."""
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(data_dir)})
    view = IndexReader(Target.from_settings(settings).path).view()
    topics, providers = sorted(view.topics), sorted(view.providers)
    words = sorted(
        {w for a in view.articles[:2000] for w in a.title.lower().split() if w.isalpha()}
    )
    made: list[str] = []
    shapes = itertools.product(words, topics + providers, (None, 40.0))
    for word, slug, quality in shapes:
        if len(made) >= count:
            break
        field = {"topics": (slug,)} if slug in view.topics else {"providers": (slug,)}
        made.append(canonical_query(Filter(**field, words=word, min_quality=quality)))
    if len(made) < count:
        raise SystemExit(f"only {len(made)} distinct filters from this corpus")
    return made


def write_article(corpus: Path, number: int) -> str:
    title = f"Benchmark change {number} {PROBE_WORD}"
    (corpus / f"websub-bench-{number}.md").write_text(
        document(
            title=f'"{title}"',
            publishedDateTime=(datetime.now(UTC) - timedelta(seconds=30)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),  # the newest article, not yet due to no one: served at once
            webUrl=f'"https://bench.example/websub-{number}"',
        )
    )
    return title


def wait_until(check: object, timeout: float) -> float | None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if check():  # type: ignore[operator]
            return time.perf_counter()
        time.sleep(0.02)
    return None


def measure(count: int, args: argparse.Namespace, corpus: Path) -> dict[str, object]:
    store_path = args.data_dir / f"websub-{count}.sqlite3"
    store_path.unlink(missing_ok=True)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "FEEDS_CORPUS_DIR": str(corpus),
        "FEEDS_DATA_DIR": str(args.data_dir),
        "FEEDS_WEBSUB_DB": str(store_path),
        "FEEDS_WEBSUB_ALLOW_PRIVATE_CALLBACKS": "1",
    }
    server = start_gunicorn("feeds", procfile_command(), env, args.log_dir)
    sink = Sink()
    try:
        wait_serving(server, "/feeds/all.rss", args.start_timeout)
        base = server.url
        store = SqliteSubscriptionStore(store_path)
        far = time.time() + 86400
        for n, query in enumerate(filters(corpus, args.data_dir, count)):
            topic = f"{base}/feeds/custom.atom?{query}"
            store.put(Subscription(f"{sink.url}/cb/{n}", topic, "", far), ROOMY)
        probe = f"{base}/feeds/custom.atom?q={PROBE_WORD}"
        store.put(Subscription(f"{sink.url}/probe", probe, "", far), ROOMY)
        served, pushed = [], []
        port = server.port
        for round_number in range(args.rounds):
            hits = len(sink.probe_hits)
            title = write_article(corpus, count * 10 + round_number)
            written = time.perf_counter()
            seen = wait_until(
                lambda title=title: title.encode() in http_get(port, "/feeds/all.rss")[2],
                args.timeout,
            )
            got = wait_until(lambda hits=hits: len(sink.probe_hits) > hits, args.timeout)
            served.append(None if seen is None else seen - written)
            pushed.append(None if got is None else sink.probe_hits[hits] - written)
            time.sleep(1.2)  # the next change gets its own feed clock second
        result = {
            "subscriptions": count,
            "served_s": _median(served),
            "pushed_s": _median(pushed),
            "served_max_s": _max(served),
            "rounds": args.rounds,
            "posts": sink.posts,
        }
        log(f"{result}")
        return result
    finally:
        sink.stop()
        server.stop()


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return None if len(known) < len(values) else statistics.median(known)


def _max(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return None if len(known) < len(values) else max(known)


def table(results: list[dict[str, object]]) -> str:
    rows = [
        "| subscribed custom feeds | written → served (median) | max | written → pushed |",
        "|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['subscriptions']:,} | {_s(r['served_s'])} | {_s(r['served_max_s'])} |"
            f" {_s(r['pushed_s'])} |"
        )
    return "\n".join(rows)


def _s(value: object) -> str:
    return "timed out" if value is None else f"{value:.2f} s"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", default="0,1000,10000")
    parser.add_argument("--documents", type=int, default=2000, help="generated corpus size")
    parser.add_argument("--rounds", type=int, default=5, help="changes measured per count")
    parser.add_argument("--timeout", type=float, default=60.0, help="longest wait per change")
    parser.add_argument("--start-timeout", type=float, default=300)
    parser.add_argument("--corpus-root", type=Path, default=Path("/tmp/feeds-bench-websub"))
    args = parser.parse_args(argv)
    args.data_dir = args.corpus_root / "data"
    args.log_dir = args.corpus_root / "logs"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    corpus = ensure_corpus(args.documents, args.corpus_root)
    for old in corpus.glob("websub-bench-*.md"):
        old.unlink()
    counts = [int(n) for n in args.subscriptions.split(",")]
    results = [measure(count, args, corpus) for count in counts]
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

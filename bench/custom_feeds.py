"""Custom feeds: the first render of filters nobody asked for yet, and cached throughput.

For each corpus size, our server (the Procfile's gunicorn, 2 workers) serves a generated
corpus; filters are sampled from real articles so each one matches something, and each
is requested once on a fresh connection (a first render: no cache holds it). Then wrk
measures a cached custom feed against the fixed all feed, under the same settings.

    .venv/bin/python -m bench.custom_feeds --sizes 100000
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from bench.run import (
    OUT_DIR,
    ensure_corpus,
    http_get,
    log,
    parse_sizes,
    run_wrk,
    start_ours,
    wait_serving,
)
from feeds.index.indexer import Target
from feeds.index.reader import IndexReader
from feeds.model import Article
from feeds.settings import load_settings

CASES = ("topic + provider", "q, two words", "both + min_quality")
_WORD = re.compile(r"[a-z]{4,}")
Json = dict[str, object]


def sample_queries(corpus: Path, data_dir: Path, count: int) -> dict[str, list[str]]:
    """Distinct canonical queries per case, each taken from one article so it matches."""
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(data_dir)})
    view = IndexReader(Target.from_settings(settings).path).view()
    queries: dict[str, list[str]] = {case: [] for case in CASES}
    seen: set[str] = set()
    step = max(1, len(view.articles) // (count * 4))
    sampled = range(0, min(count * 4 * step, len(view.articles)), step)
    for article in (view.articles[n] for n in sampled):  # each read alone: not 1M decoded
        made = _queries(article)
        if made is None or made[0] in seen:
            continue
        seen.add(made[0])
        for case, query in zip(CASES, made, strict=True):
            queries[case].append(query)
        if len(seen) == count:
            break
    return queries


def _queries(article: Article) -> tuple[str, str, str] | None:
    words = sorted(set(_WORD.findall(article.title.lower())))
    if not article.topics or len(words) < 2:
        return None
    pair = f"topic={article.topics[0].slug}&provider={quote(article.provider.slug, safe='')}"
    search = f"q={quote(' '.join(words[:2]), safe='')}"
    return pair, search, f"{pair}&{search}&min_quality=10"


def first_renders(port: int, queries: list[str]) -> Json:
    """Milliseconds for each first request (fresh connection, body read)."""
    times = []
    for query in queries:
        started = time.perf_counter()
        status, _, _ = http_get(port, f"/feeds/custom.rss?{query}")
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"/feeds/custom.rss?{query} answered {status}")
    times.sort()
    return {
        "requests": len(times),
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(times[int(len(times) * 0.9) - 1], 1),
        "max_ms": round(times[-1], 1),
    }


def measure(size: int, args: argparse.Namespace) -> Json:
    corpus = ensure_corpus(size, args.corpus_root)
    args.data_dir = args.corpus_root / f"data-{size}"
    server = start_ours(corpus, args)
    try:
        started = wait_serving(server, "/feeds/all.rss", args.start_timeout)
        log(f"{size:,} documents: serving after {started:.1f}s")
        queries = sample_queries(corpus, args.data_dir, args.filters)
        result: Json = {"documents": size}
        for case in CASES:
            result[case] = first_renders(server.port, queries[case])
            log(f"  first render, {case}: {result[case]}")
        cached = f"/feeds/custom.rss?{queries[CASES[2]][0]}"
        for label, path in (("cached custom", cached), ("cached all", "/feeds/all.rss")):
            http_get(server.port, path)
            wrk = run_wrk(server.url + path, ["Accept-Encoding: gzip"], args.duration)
            result[label] = wrk
            log(f"  {label}: {wrk}")
        return result
    finally:
        server.stop()


def table(results: list[Json]) -> str:
    lines = [
        "| documents | case | first render median | p90 | max |",
        "|---:|---|---:|---:|---:|",
    ]
    for result in results:
        for case in CASES:
            row = result[case]
            assert isinstance(row, dict)
            lines.append(
                f"| {result['documents']:,} | {case} | {row['median_ms']} ms"
                f" | {row['p90_ms']} ms | {row['max_ms']} ms |"
            )
    lines += ["", "| documents | cached custom feed | cached all feed |", "|---:|---:|---:|"]
    for result in results:
        custom, fixed = result["cached custom"], result["cached all"]
        assert isinstance(custom, dict) and isinstance(fixed, dict)
        lines.append(
            f"| {result['documents']:,} | {custom.get('requests_per_second', '?')} req/s"
            f" | {fixed.get('requests_per_second', '?')} req/s |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", type=parse_sizes)
    parser.add_argument("--filters", type=int, default=30, help="distinct filters per case")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--start-timeout", type=float, default=1800)
    parser.add_argument("--corpus-root", type=Path, default=Path("/tmp/feeds-bench"))
    args = parser.parse_args(argv)
    args.log_dir = args.corpus_root / "logs"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = [measure(size, args) for size in args.sizes]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "custom_feeds.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

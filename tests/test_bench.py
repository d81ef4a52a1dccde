"""The benchmark harness reads wrk and /proc correctly, and its baseline answers like a cache hit.

No timings are asserted here: these check the parsing and the baseline's logic, so a
wrong number can never reach the README because the harness misread its tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.baseline import WSGIApp, load_variants, make_app
from bench.history import data_files, index_bytes, table_rows
from bench.run import (
    END_MARK,
    START_MARK,
    child_pids,
    parse_pss_kb,
    parse_wrk,
    replace_between_markers,
    sample_feeds,
)
from tests.support import document

# Real wrk 4.1.0 output (a local gunicorn), plus the error lines wrk prints when it has any.
WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:18765/
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.00ms    1.76ms   9.63ms   79.44%
    Req/Sec   663.05    196.13     1.06k    70.00%
  Latency Distribution
     50%    1.90ms
     75%    4.20ms
     90%    5.73ms
     99%    7.64ms
  1333 requests in 1.01s, 205.82KB read
Requests/sec:   1317.08
Transfer/sec:    203.36KB
"""

WRK_OUTPUT_WITH_ERRORS = """\
Running 10s test @ http://127.0.0.1:8000/feeds/all.rss
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.50us  300.10us  12.00ms   90.00%
    Req/Sec     3.91k   210.12     4.30k    72.00%
  Latency Distribution
     50%  750.00us
     75%  900.00us
     90%    1.10ms
     99%    1.25s
  78000 requests in 10.00s, 4.90GB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   7800.00
Transfer/sec:    501.76MB
"""


def test_parse_wrk_reads_rate_percentiles_and_bytes() -> None:
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed["requests_per_second"] == 1317.08
    assert parsed["p50_ms"] == 1.90
    assert parsed["p99_ms"] == 7.64
    assert parsed["requests"] == 1333
    assert parsed["bytes_per_request"] == round(205.82 * 1024 / 1333)
    assert parsed["socket_errors"] == 0
    assert parsed["non_2xx_3xx"] == 0


def test_parse_wrk_converts_units_and_counts_errors() -> None:
    parsed = parse_wrk(WRK_OUTPUT_WITH_ERRORS)
    assert parsed["requests_per_second"] == 7800.0
    assert parsed["p50_ms"] == pytest.approx(0.75)
    assert parsed["p99_ms"] == pytest.approx(1250.0)
    assert parsed["bytes_per_request"] == round(4.90 * 1024**3 / 78000)
    assert parsed["socket_errors"] == 5
    assert parsed["non_2xx_3xx"] == 7


def test_parse_wrk_refuses_output_without_a_rate() -> None:
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_parse_pss_kb() -> None:
    rollup = "55dd-7ffc ---p 00000000 00:00 0  [rollup]\nRss: 1688 kB\nPss:   235 kB\n"
    assert parse_pss_kb(rollup) == 235
    assert parse_pss_kb(Path("/proc/self/smaps_rollup").read_text()) > 0


def test_child_pids_finds_a_child_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in child_pids(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_readme_table_goes_between_the_markers() -> None:
    text = f"# x\n\n{START_MARK}\nold table\n{END_MARK}\n\nafter\n"
    replaced = replace_between_markers(text, "| new |")
    assert replaced == f"# x\n\n{START_MARK}\n| new |\n{END_MARK}\n\nafter\n"
    assert replace_between_markers(replaced, "| new |") == replaced
    with pytest.raises(ValueError):
        replace_between_markers("no markers", "| new |")


def _baseline(tmp_path: Path) -> WSGIApp:
    variants = []
    for encoding, body in (("", b"<rss>plain</rss>"), ("gzip", b"\x1f\x8bgzipped")):
        body_path = tmp_path / f"body-{encoding or 'identity'}"
        body_path.write_bytes(body)
        etag = '"abc-gz"' if encoding else '"abc"'
        headers = [
            ["Content-Type", "application/rss+xml; charset=utf-8"],
            ["ETag", etag],
            ["Content-Length", str(len(body))],
        ]
        variants.append({"encoding": encoding, "headers": headers, "body_path": str(body_path)})
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"variants": variants}))
    return make_app(load_variants(str(spec)))


def _call(app: WSGIApp, **environ: str) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body  # type: ignore[return-value]


def test_baseline_serves_the_captured_bytes_and_headers(tmp_path: Path) -> None:
    app = _baseline(tmp_path)
    status, headers, body = _call(app)
    assert (status, body) == ("200 OK", b"<rss>plain</rss>")
    assert headers["ETag"] == '"abc"'
    assert headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    status, headers, body = _call(app, HTTP_ACCEPT_ENCODING="gzip")
    assert (status, body, headers["ETag"]) == ("200 OK", b"\x1f\x8bgzipped", '"abc-gz"')


def test_baseline_answers_304_only_when_the_etag_matches(tmp_path: Path) -> None:
    app = _baseline(tmp_path)
    status, headers, body = _call(app, HTTP_IF_NONE_MATCH='"abc"')
    assert (status, body) == ("304 Not Modified", b"")
    assert "Content-Length" not in headers
    assert headers["ETag"] == '"abc"'
    status, _, _ = _call(app, HTTP_IF_NONE_MATCH='"other"')
    assert status == "200 OK"


def test_sample_feeds_come_from_the_first_documents(tmp_path: Path) -> None:
    folder = tmp_path / "000"
    folder.mkdir()
    (folder / "a.txt").write_text(
        document(topics="\n  - Computer Vision", provider="\n  name: A\n  domain: www.a.example")
    )
    (folder / "b.txt").write_text(
        document(topics="\n  - AI", provider="\n  name: B\n  domain: b.example")
    )
    assert sample_feeds(tmp_path) == [
        "/feeds/all.rss",
        "/feeds/topics/computer-vision.rss",
        "/feeds/topics/ai.rss",
        "/feeds/providers/a.example.rss",
        "/feeds/providers/b.example.rss",
    ]


def test_history_reads_the_data_directory_and_one_index_at_rest(tmp_path: Path) -> None:
    served = tmp_path / "index-0123456789abcdef-fedcba9876543210-1.sqlite"
    served.write_bytes(b"x" * 4096)
    served.with_name(served.name + "-wal").write_bytes(b"w" * 1000)
    (tmp_path / "index-0123456789abcdef.sqlite").symlink_to(served.name)
    (tmp_path / "renders").mkdir()
    assert index_bytes(tmp_path) == 5096
    assert data_files(tmp_path) == {served.name: 4096, served.name + "-wal": 1000}


def test_history_table_has_a_row_per_scenario() -> None:
    window = {"requests": 1234, "failed": 0, "p50_ms": 4.2, "p99_ms": 250.0}
    result = {
        "documents": 10_000,
        "steady": window,
        "release": {**window, "same_index": True},
        "rebuild": {**window, "failed": 2, "switch_s": 12.34, "peak_ratio": 2.345},
    }
    assert table_rows(result) == [
        "| 10,000 | steady polling | 1,234 | 0 | 4.2 ms | 250 ms | - | - |",
        "| 10,000 | release (USR2), same index file | 1,234 | 0 | 4.2 ms | 250 ms | - | - |",
        "| 10,000 | `feeds index --rebuild` | 1,234 | 2 | 4.2 ms | 250 ms | 12.3 s | 2.35 |",
    ]

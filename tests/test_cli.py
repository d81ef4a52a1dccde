"""The `feeds` command, run as a real process."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pty
import subprocess
import sys
from pathlib import Path

import feedparser

from tests.generate import write_corpus
from tests.support import SEEDS, document

FEEDS = str(Path(sys.executable).parent / "feeds")


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    return subprocess.run(
        [FEEDS, *args], check=False, capture_output=True, text=True, timeout=60, env=environ
    )


def test_check_clean_corpus_exits_zero() -> None:
    result = run("check", str(SEEDS))
    assert result.returncode == 0
    assert "2 files: 2 loaded, 0 skipped" in result.stdout


def test_check_reports_each_skip_and_exits_one(corpus: Path) -> None:
    (corpus / "bad.txt").write_text("no front matter here")
    result = run("check", str(corpus))
    assert result.returncode == 1
    assert "skipped  bad.txt: no front matter" in result.stdout
    assert "3 files: 2 loaded, 1 skipped" in result.stdout


def test_list_and_render_agree() -> None:
    urls = run("list").stdout.split()
    assert "http://127.0.0.1:8000/feeds/topics/computer-vision.atom" in urls
    assert len(urls) == 3 * (1 + 3 + 2)  # all, 3 topics, 2 providers
    rendered = run("render", "/feeds/topics/ai.rss")
    assert rendered.returncode == 0
    assert len(feedparser.parse(rendered.stdout).entries) == 2
    missing = run("render", "/feeds/topics/unknown.rss")
    assert missing.returncode == 1
    assert "404 Not Found" in missing.stderr


def test_check_shows_progress_plainly_when_piped_and_as_a_bar_on_a_terminal(
    tmp_path: Path,
) -> None:
    write_corpus(tmp_path, 1200, seed=3)
    piped = run("check", str(tmp_path))
    assert piped.returncode == 0
    assert "checking: 500 of 1200\nchecking: 1000 of 1200\n" in piped.stderr
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [FEEDS, "check", str(tmp_path)], stdout=subprocess.PIPE, stderr=follower
    ) as process:
        os.close(follower)
        terminal = b""
        with contextlib.suppress(OSError):  # the pty closes when the command ends
            while chunk := os.read(leader, 4096):
                terminal += chunk
        assert process.wait(timeout=60) == 0
    os.close(leader)
    assert b"checking" in terminal and b"100%" in terminal
    assert b"checked 500 of" not in terminal


def test_index_builds_then_updates_with_progress_and_the_report(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 1200, seed=3)
    (corpus / "bad.txt").write_text("no front matter here")
    data = str(tmp_path / "data")
    first = run("index", str(corpus), FEEDS_DATA_DIR=data)
    assert first.returncode == 0, first.stderr
    assert "indexing: 500 of 1201\nindexing: 1000 of 1201\n" in first.stderr
    assert "skipped  bad.txt: no front matter" in first.stdout
    assert "1201 files: 1200 loaded, 1 skipped" in first.stdout
    assert "(1201 parsed, 0 removed)" in first.stdout
    (corpus / "bad.txt").unlink()
    again = run("index", str(corpus), FEEDS_DATA_DIR=data)
    assert "1200 files: 1200 loaded, 0 skipped" in again.stdout
    assert "(0 parsed, 1 removed)" in again.stdout


def test_check_reports_what_the_index_holds(tmp_path: Path) -> None:
    """`feeds check` and `feeds index` read through one pipeline: the same skips (hostile
    documents, filters, duplicates: higher quality, then lower digest, served)."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 450, seed=8)  # over 2 chunks: parsed by worker processes
    same = '"https://example.com/same"'
    for name, quality, title in [("a", 10, "Low"), ("b", 50, "High"), ("c", 50, "Twin")]:
        text = document(webUrl=same, title=f'"{title}"', quality=str(quality))
        (corpus / f"dup-{name}.txt").write_text(text)
    (corpus / "deep.txt").write_text(document(x="\n" + "- " * 30_000))
    (corpus / "maybe.txt").write_text(document(heat="!!bool maybe"))
    (corpus / "draft.txt").write_text(document(webUrl='"https://e.com/d"', published="false"))
    checked = run("check", str(corpus))
    indexed = run("index", str(corpus), FEEDS_DATA_DIR=str(tmp_path / "data"))
    assert indexed.returncode == 0, indexed.stderr

    def listed(output: str) -> list[str]:
        return sorted(line for line in output.splitlines() if line.startswith(("skip", "filt")))

    assert listed(checked.stdout) == listed(indexed.stdout)
    duplicates = [line for line in listed(checked.stdout) if "duplicate" in line]
    winner = min(
        (f"dup-{n}.txt" for n in "bc"),
        key=lambda name: hashlib.sha256((corpus / name).read_bytes()).hexdigest(),
    )
    assert len(duplicates) == 2
    assert all(line.endswith(f"same article as {winner}") for line in duplicates)
    assert "skipped  deep.txt: nested deeper than 64 levels" in checked.stdout

"""The `feeds` command, run as a real process."""

from __future__ import annotations

import contextlib
import os
import pty
import subprocess
import sys
from pathlib import Path

import feedparser

from tests.generate import write_corpus
from tests.support import SEEDS

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

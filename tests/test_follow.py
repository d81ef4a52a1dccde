"""The indexer process (`feeds index --follow`) as a whole: what it does between builds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from feeds.app import BACKGROUND_INDEX_ENV
from tests.history_corpus import served_titles
from tests.support import PROJECT_ROOT, document, wait_for

# The indexer as the supervisor runs it, with watches that take seconds to set up, as
# over a million files.
INDEXER = textwrap.dedent(
    """
    import logging, sys, time, watchfiles
    from feeds.server import follow
    from feeds.settings import load_settings
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    real_watch = watchfiles.watch
    def slow_watch(*args, **kwargs):
        time.sleep(3)
        print("watching", file=sys.stderr, flush=True)
        yield from real_watch(*args, **kwargs)
    watchfiles.watch = slow_watch
    follow.follow(load_settings())
    """
)


def start_indexer(root: Path, data: Path, log: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "FEEDS_CORPUS_DIR": str(root), "FEEDS_DATA_DIR": str(data)}
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-c", INDEXER], cwd=PROJECT_ROOT, env=environment, stderr=output
        )


@pytest.fixture(autouse=True)
def _served_by_the_indexer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app reads what the indexer under test wrote; it never indexes itself."""
    monkeypatch.setenv(BACKGROUND_INDEX_ENV, "1")


def test_the_first_walk_does_not_wait_for_watches_and_nothing_written_meanwhile_is_lost(
    tmp_path: Path,
) -> None:
    """Setting watches up over a million files takes seconds (longer than the 5 s the
    indexer waited under load, after which it gave up on events for good). The first walk
    now starts at once; a file written after it passed and before watches were up is
    found by one more walk once they are."""
    root, data, log = tmp_path / "corpus", tmp_path / "data", tmp_path / "indexer.log"
    root.mkdir()
    (root / "first.md").write_text(document(title='"Walked at once"'))
    process = start_indexer(root, data, log)
    try:
        wait_for(log.read_text, lambda text: "indexed " in text)  # the first walk is served
        assert "Walked at once" in served_titles(root, data)
        assert "watching" not in log.read_text(), "served before the watches were up"
        (root / "second.md").write_text(
            document(title='"Written meanwhile"', webUrl='"https://example.com/meanwhile"')
        )
        wait_for(log.read_text, lambda text: "watching" in text)
        wait_for(lambda: served_titles(root, data), lambda titles: "Written meanwhile" in titles)
        (root / "third.md").write_text(
            document(title='"Written after"', webUrl='"https://example.com/after-watching"')
        )
        wait_for(lambda: served_titles(root, data), lambda titles: "Written after" in titles)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)

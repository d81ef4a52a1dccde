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
from feeds.index.indexer import Target, update
from feeds.server import follow
from feeds.settings import load_settings
from tests.history_corpus import overrides, served_titles, target_for
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


# The indexer without change events, its walks paced so far apart that none comes after
# the first during a test: only the folder poller can find what changes.
POLLING_INDEXER = textwrap.dedent(
    """
    import logging, sys
    from feeds.server import follow
    from feeds.settings import load_settings
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    follow.WALK_BUDGET = 1e-9
    follow.follow(load_settings())
    """
)


def test_without_events_the_polled_folders_find_every_new_removed_and_renamed_file(
    tmp_path: Path,
) -> None:
    root, data, log = tmp_path / "corpus", tmp_path / "data", tmp_path / "indexer.log"
    (root / "kept").mkdir(parents=True)
    (root / "kept" / "first.md").write_text(document(title='"First"'))
    update(target_for(root, data))  # built: the indexer's first walk is paced, not a build
    environment = {
        **os.environ,
        "FEEDS_CORPUS_DIR": str(root),
        "FEEDS_DATA_DIR": str(data),
        "FEEDS_WATCH": "false",
        "FEEDS_RESCAN_SECONDS": "1",
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", POLLING_INDEXER],
            cwd=PROJECT_ROOT,
            env=environment,
            stderr=output,
        )

    def served(titles: set[str], gone: set[str] = set()) -> None:  # noqa: B006
        wait_for(
            lambda: served_titles(root, data),
            lambda found: titles <= found and not gone & found,
            timeout=10,
        )

    def write(path: str, title: str) -> None:
        url = f'"https://example.com/{path}"'
        (root / path).write_text(document(title=f'"{title}"', webUrl=url))

    try:
        wait_for(log.read_text, lambda text: "indexed " in text)
        served({"First"})
        write("top.md", "At the top")
        write("kept/second.md", "Second")
        served({"At the top", "Second"})
        (root / "new" / "deep").mkdir(parents=True)
        write("new/deep/third.md", "Third")
        served({"Third"})
        write(".incoming.md", "Replaced")
        os.replace(root / ".incoming.md", root / "top.md")
        (root / "kept" / "first.md").unlink()
        served({"Replaced"}, gone={"At the top", "First"})
        os.rename(root / "new", tmp_path / "away")
        served(set(), gone={"Third"})
        assert log.read_text().count("indexed ") == 1, "a walk found them, not the poller"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def test_without_events_a_walk_waits_until_its_cpu_time_fits_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data = tmp_path / "corpus", tmp_path / "data"
    root.mkdir()

    def paced(watch: bool, cpu: float, built: bool = False) -> float:
        """When the next walk is due after one that took `cpu` CPU seconds."""
        settings = load_settings(overrides(root, data, WATCH=watch, RESCAN_SECONDS=5))
        follower = follow._Follower(Target.from_settings(settings), settings)
        try:
            clock = iter([100.0, 100.0 + cpu])
            monkeypatch.setattr(follow.time, "process_time", lambda: next(clock))
            follower.walking()
            follower.reconciled(built)
            return follower.next_rescan - follower.walk_started
        finally:
            follower.close()

    assert paced(watch=False, cpu=0.9) == pytest.approx(0.9 / follow.WALK_BUDGET)
    assert paced(watch=False, cpu=0.01) == pytest.approx(5, abs=0.1)  # never within the interval
    assert paced(watch=True, cpu=0.9) == pytest.approx(5, abs=0.1)  # events: as before
    assert paced(watch=False, cpu=60, built=True) == pytest.approx(5, abs=0.1)

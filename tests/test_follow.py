"""The indexer process (`feeds index --follow`) as a whole: what it does between builds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from feeds.app import create_app
from tests.history_corpus import overrides
from tests.support import PROJECT_ROOT, document, wait_for

# The indexer as the supervisor runs it, with a limit every build passes.
INDEXER = textwrap.dedent(
    """
    import logging, sys
    from feeds.server import follow
    from feeds.settings import load_settings
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    follow.RESTART_ABOVE_BYTES = 0
    follow.follow(load_settings())
    """
)


def served_titles(root: Path, data: Path) -> set[str]:
    client = create_app(overrides(root, data)).test_client()
    answer = client.get("/feeds/all.json")
    return (
        {item["title"] for item in answer.get_json()["items"]}
        if answer.status_code == 200
        else set()
    )


def test_an_indexer_that_a_build_left_big_starts_again_and_keeps_following(
    tmp_path: Path,
) -> None:
    """A build of a million documents left the indexer 300 MB it had freed but kept
    (fragmented arenas): the whole server missed 250 MB. After such a build it replaces
    itself with a fresh process, once, and goes on indexing changes."""
    root, data, log = tmp_path / "corpus", tmp_path / "data", tmp_path / "indexer.log"
    root.mkdir()
    (root / "first.md").write_text(document(title='"Before the restart"'))
    environment = {**os.environ, "FEEDS_CORPUS_DIR": str(root), "FEEDS_DATA_DIR": str(data)}
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", INDEXER], cwd=PROJECT_ROOT, env=environment, stderr=output
        )
    try:
        wait_for(log.read_text, lambda text: "the indexer starts again" in text)
        wait_for(lambda: served_titles(root, data), lambda titles: "Before the restart" in titles)
        (root / "second.md").write_text(
            document(title='"After the restart"', webUrl='"https://example.com/after"')
        )
        wait_for(lambda: served_titles(root, data), lambda titles: "After the restart" in titles)
        assert process.poll() is None, "the same process (pid) goes on"
        assert log.read_text().count("the indexer starts again") == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)

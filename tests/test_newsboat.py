"""newsboat, a real libcurl reader, follows a living corpus: nothing it fetches is thrown away.

newsboat sends `If-Modified-Since` with `If-None-Match` and has libcurl drop a 200 whose
`Last-Modified` is not newer than what it sent; an article dated before the feed's
newest, or an edit, must still reach its cache.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support import Server, wait_for
from tests.test_live import LIVE, robots

NEWSBOAT = shutil.which("newsboat")
pytestmark = pytest.mark.skipif(
    NEWSBOAT is None, reason="newsboat is not installed (.ci/run installs it)"
)
FEED = "/feeds/all.rss?limit=500"


class Newsboat:
    """newsboat run non-interactively with its own home, URL list, config and cache."""

    def __init__(self, home: Path, server: Server) -> None:
        self.home = home
        home.mkdir()
        (home / "urls").write_text(server.url + FEED + "\n")
        (home / "config").write_text("")
        self.cache = home / "cache.db"

    def reload(self) -> None:
        subprocess.run(
            [NEWSBOAT, "-q", "-u", "urls", "-C", "config", "-c", "cache.db", "-x", "reload"],
            cwd=self.home,
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "TERM": "dumb"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=True,
        )

    def titles(self) -> set[str]:
        with sqlite3.connect(self.cache) as db:
            return {title for (title,) in db.execute("SELECT title FROM rss_item")}


def served(server: Server, title: str) -> None:
    """Until every worker serves `title`: four answers in a row hold it. An ETag that moved
    on one answer is not enough: it may be an earlier change's, from a worker that had not
    yet seen it (the CI once saw that, and newsboat then fetched the feed before the
    change it was asked about)."""
    wait_for(
        lambda: [server.get(FEED).text for _ in range(4)],
        lambda texts: all(title in text for text in texts),
    )


def test_newsboat_keeps_a_backdated_article_and_an_edit(
    server_factory, corpus: Path, tmp_path: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **LIVE)
    (corpus / "robots.md").write_text(robots("Robots arrive"))
    served(server, "Robots arrive")
    reader = Newsboat(tmp_path / "newsboat", server)
    reader.reload()
    assert "Robots arrive" in reader.titles()

    (corpus / "old.md").write_text(robots("Robots of 2001", "2001-01-01T00:00:00Z", "old"))
    served(server, "Robots of 2001")
    reader.reload()
    assert "Robots of 2001" in reader.titles()

    (corpus / "robots.md").write_text(robots("Robots edited"))
    served(server, "Robots edited")
    reader.reload()
    assert "Robots edited" in reader.titles()

"""A living corpus without change events (`FEEDS_WATCH=false`, as on NFS): the Procfile's
server polls the folders every `FEEDS_RESCAN_SECONDS` and walks the whole directory for
edits in place as its CPU budget allows (at once here: the corpus is small)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support import Server, wait_for
from tests.test_live import body, robots

POLLED = {"FEEDS_WATCH": "false", "FEEDS_RESCAN_SECONDS": "1"}
SOON = 8.0  # seconds: the interval, the commit, and a loaded machine


def shows(server: Server, shown: str | None = None, hidden: str | None = None) -> None:
    wait_for(
        lambda: body(server, "/feeds/all.rss?limit=100"),
        lambda text: (shown is None or shown in text) and (hidden is None or hidden not in text),
        timeout=SOON,
        pause=0.05,
    )


def article(title: str) -> str:
    published = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return robots(title, published, title.replace(" ", "-").lower())


def test_adds_removals_renames_and_folders_are_served_without_events(
    server_factory, corpus: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **POLLED)
    (corpus / "top.md").write_text(article("Robots at the top"))
    shows(server, "Robots at the top")

    (corpus / "day" / "deep").mkdir(parents=True)  # a new folder, with one below it
    (corpus / "day" / "deep" / "one.md").write_text(article("Robots deep down"))
    shows(server, "Robots deep down")
    (corpus / "day" / "two.md").write_text(article("Robots of the day"))
    shows(server, "Robots of the day")

    (corpus / ".incoming.md").write_text(article("Robots replace the top"))
    os.replace(corpus / ".incoming.md", corpus / "top.md")  # renamed over another
    shows(server, "Robots replace the top", hidden="Robots at the top")
    os.replace(corpus / "day" / "two.md", corpus / "day" / "deep" / "two.md")
    (corpus / "day" / "deep" / "one.md").unlink()
    shows(server, "Robots of the day", hidden="Robots deep down")

    shutil.rmtree(corpus / "day")
    shows(server, hidden="Robots of the day")
    (corpus / "top.md").unlink()
    shows(server, hidden="Robots replace the top")


def test_an_edit_in_place_is_served_by_the_paced_walk(server_factory, corpus: Path) -> None:
    (corpus / "kept.md").write_text(article("Robots as they were"))
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), **POLLED)
    shows(server, "Robots as they were")
    with (corpus / "kept.md").open("r+") as handle:  # no new name: its folder stays as it was
        handle.truncate(0)
        handle.write(article("Robots as they are"))
    shows(server, "Robots as they are", hidden="Robots as they were")

"""The folder poller (`feeds.index.poll`) on a real directory: what it reports, what it costs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from feeds.index import poll
from feeds.index.indexer import DOUBT_NS
from feeds.index.poll import Poller

LATER = 3600 * 10**9  # a clock this far ahead: every stamp is long settled


def settled(root: Path) -> Poller:
    """A poller that has learned `root`, with a clock for which nothing is in doubt."""
    poller = Poller(root, clock=lambda: time.time_ns() + LATER)
    poller.learn()
    return poller


def tree(root: Path) -> Path:
    for folder in ("a/b", "c", ".hidden"):
        (root / folder).mkdir(parents=True)
        (root / folder / "one.md").write_text("x")
    (root / "top.md").write_text("x")
    return root


def test_it_reports_the_folders_whose_names_changed(tmp_path: Path) -> None:
    root = tree(tmp_path / "corpus")
    poller = settled(root)
    assert set(poller.folders) == {"", "a", "a/b", "c"}
    assert poller.poll() == set()

    (root / "a" / "b" / "two.md").write_text("x")
    assert poller.poll() == {"a/b"}
    (root / "new.md").write_text("x")
    assert poller.poll() == {""}  # the root: its own files
    os.replace(root / "new.md", root / "top.md")  # renamed over another
    assert poller.poll() == {""}

    (root / "d" / "e").mkdir(parents=True)  # a new folder, with one below it
    (root / "d" / "e" / "one.md").write_text("x")
    assert poller.poll() == {"", "d"}
    assert {"d", "d/e"} <= set(poller.folders)
    os.replace(root / "d", root / "a" / "d")  # moved: gone from one folder, new in another
    assert poller.poll() == {"", "a", "d"}
    assert "a/d/e" in poller.folders and "d/e" not in poller.folders

    os.utime(root / "c", ns=(0, 0))  # an older modification time restored: ctime moves
    assert poller.poll() == {"c"}
    assert poller.poll() == set()


def test_a_folder_replaced_by_another_is_new_and_a_replaced_root_asks_for_a_walk(
    tmp_path: Path,
) -> None:
    root = tree(tmp_path / "corpus")
    poller = settled(root)
    (tmp_path / "other" / "deep").mkdir(parents=True)
    os.rename(root / "c", tmp_path / "old-c")
    os.rename(tmp_path / "other", root / "c")
    assert poller.poll() == {"", "c"}
    assert "c/deep" in poller.folders
    (root / "c" / "later.md").write_text("x")  # the new folder itself is watched too
    assert poller.poll() == {"c"}
    os.rename(root, tmp_path / "away")
    root.mkdir()
    assert poller.poll() is None


REAL_STAT = os.stat


def coarse_stat(path: Any) -> SimpleNamespace:
    """A file system whose stamps tick once a second (ext3, some NFS servers)."""
    info = REAL_STAT(path)
    tick = 10**9
    return SimpleNamespace(
        st_mode=info.st_mode,
        st_ino=info.st_ino,
        st_mtime_ns=info.st_mtime_ns // tick * tick,
        st_ctime_ns=info.st_ctime_ns // tick * tick,
    )


def test_a_change_in_the_tick_of_the_last_look_is_reported_by_the_doubt_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree(tmp_path / "corpus")
    monkeypatch.setattr(poll.os, "stat", coarse_stat)
    monkeypatch.setattr(poll.os, "lstat", coarse_stat)  # the folders' own (links are gone)
    now = [time.time_ns()]
    poller = Poller(root, clock=lambda: now[0])
    time.sleep(1 - time.time() % 1 + 0.01)  # early in a second: both steps fit in it
    started = time.time_ns()
    (root / "a" / "b" / "two.md").write_text("x")
    poller.learn()
    (root / "a" / "b" / "three.md").write_text("x")  # in the same tick: its stamp stays
    assert time.time_ns() // 10**9 == started // 10**9, "the machine was too slow"
    now[0] = time.time_ns()
    assert "a/b" in poller.poll()  # the stamps did not move: in doubt, looked at again
    now[0] += 2 * DOUBT_NS  # much later, with no change: out of doubt after one more look
    poller.poll()
    assert poller.poll() == set()


def test_an_idle_poll_stats_each_folder_once_and_lists_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree(tmp_path / "corpus")
    for number in range(50):
        (root / "c" / f"{number}.md").write_text("x")
    poller = settled(root)
    calls: list[str] = []

    def counted(name: str) -> Any:
        real = getattr(os, name)
        return lambda *args, **kwargs: calls.append(name) or real(*args, **kwargs)

    for name in ("scandir", "listdir", "stat", "lstat"):
        monkeypatch.setattr(poll.os, name, counted(name))
    assert poller.poll() == set()
    assert len(calls) == len(poller.folders) == 4  # the root followed, the others not
    assert sorted(calls) == ["lstat", "lstat", "lstat", "stat"]


def test_a_root_that_is_a_link_to_the_corpus_is_followed(tmp_path: Path) -> None:
    tree(tmp_path / "release")
    (tmp_path / "current").symlink_to(tmp_path / "release")
    poller = settled(tmp_path / "current")
    (tmp_path / "release" / "new.md").write_text("x")
    assert poller.poll() == {""}


def test_a_folder_that_cannot_be_looked_at_now_is_kept_and_looked_at_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On NFS or SMB a stat or a listing can fail for a moment (EIO, ESTALE): that is not a
    folder gone, or the folders below it would be polled no more until the next walk."""
    root = tree(tmp_path / "corpus")
    poller = settled(root)
    failing = {"lstat": root / "a", "scandir": root / "a"}

    def flaky(name: str, real: Any) -> Any:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(path) == failing.get(name):
                del failing[name]
                raise OSError(5, "Input/output error")
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(poll.os, "lstat", flaky("lstat", os.lstat))
    assert poller.poll() == set()
    assert {"a", "a/b"} <= set(poller.folders)
    (root / "a" / "new.md").write_text("x")  # `a` changed, and its listing fails once
    monkeypatch.setattr(poll.os, "scandir", flaky("scandir", os.scandir))
    assert poller.poll() == {"a"}
    assert {"a", "a/b"} <= set(poller.folders)
    (root / "a" / "b" / "three.md").write_text("x")
    assert poller.poll() >= {"a/b"}


def test_many_folders_changed_at_once_ask_for_a_walk(tmp_path: Path) -> None:
    """A `chmod -R` moves every folder's change time: relisting each looks through every
    remembered folder (10 s at 10,000 folders), a walk does not."""
    root = tmp_path / "corpus"
    for n in range(poll.MOST_CHANGED + 1):
        (root / f"f{n}").mkdir(parents=True)
    poller = settled(root)
    for folder in root.iterdir():
        folder.chmod(0o750)
    assert poller.poll() is None


def test_a_folder_replaced_by_a_link_is_gone_and_never_walked_through(tmp_path: Path) -> None:
    """Only the root is followed: a link in a folder's place could lead anywhere (`/`)."""
    root = tree(tmp_path / "corpus")
    poller = settled(root)
    (tmp_path / "outside" / "deep").mkdir(parents=True)
    os.rename(root / "c", tmp_path / "old-c")
    os.symlink(tmp_path / "outside", root / "c")
    poller._stat("")  # the root looked at just before the link took the folder's place
    assert poller.poll() == {"c"}
    assert not [folder for folder in poller.folders if folder.startswith("c")]

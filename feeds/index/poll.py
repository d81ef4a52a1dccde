"""Finding changed folders without change events (NFS, SMB): one stat per folder, not per file.

Adding, removing or renaming an entry changes its folder's modification and change time,
so a folder whose stamp is unchanged holds the same names as before, and only folders
are remembered and stat'ed each interval (a stat of every file costs 7 % of a core every
5 s at 100,000 files). The change time catches a restored older modification time (rsync,
`touch -d`), the inode a folder replaced by another. A folder stamped within `DOUBT_NS` of
its stat may change again within the same clock tick unseen, so it is reported again at the
next poll. What a folder's files hold is not seen here: an edit in place changes no folder
(the full walk finds those).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from feeds.index.indexer import DOUBT_NS

Stamp = tuple[int, int, int]  # (st_ino, st_mtime_ns, st_ctime_ns)
# More changed folders than this in one poll, and the whole directory is walked instead:
# each relist looks through every remembered folder (10,201 changed at once took 10 s).
MOST_CHANGED = 64


class Poller:
    """The folders of a corpus (paths below the root, "" the root) and their last stamps."""

    def __init__(self, root: Path, clock: Callable[[], int] = time.time_ns) -> None:
        self.root = os.fspath(root)
        self.clock = clock  # wall clock in ns, what folder stamps are compared with
        self.folders: dict[str, Stamp] = {}
        self.doubted: set[str] = set()  # stamped too close to their stat: reported again

    def learn(self) -> None:
        """Remember every folder as it is now: stat'ed before it is listed, so whatever
        changes in it later (the walk that follows) moves its stamp."""
        self.folders.clear()
        self.doubted.clear()
        if self._stat("") is not None:
            self._learn_below("")

    def poll(self) -> set[str] | None:
        """The folders whose names changed since the last poll (the root as "", its own
        files only; any other folder for everything below it), new folders and vanished
        ones included; None when the root itself is gone or replaced, or more than
        `MOST_CHANGED` folders changed (walk it all)."""
        root = self.folders.get("")
        if root is None:
            return set()  # nothing learned yet: the first walk comes first
        doubted, self.doubted = self.doubted, set()
        changed = set()
        for folder, stamp in list(self.folders.items()):
            if folder not in self.folders:
                continue  # forgotten with a vanished folder above it
            now = self._stat(folder)
            if now is None or now[0] != stamp[0]:
                if not folder:
                    self.folders.clear()
                    return None
                self._forget(folder)
                if now is not None and self._stat(folder) is not None:
                    self._learn_below(folder)  # another folder in its place: all of it new
                changed.add(folder)
            elif now != stamp or folder in doubted:
                moved = self._relist(folder)
                changed.add(folder)
                if not folder:
                    changed.update(moved)  # the root stands for its own files only
            if len(changed) > MOST_CHANGED:
                return None  # a walk costs less than relisting each (`chmod -R`, a restore)
        return changed

    def _stat(self, folder: str) -> Stamp | None:
        """Remember the folder's stamp (in doubt when taken within `DOUBT_NS` of now)."""
        # Only the root is followed (it may be a link to the corpus): a folder replaced by
        # a link is gone, never walked through (to `/`, say).
        look = os.lstat if folder else os.stat
        try:
            info = look(os.path.join(self.root, folder))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:  # EIO, ESTALE, a soft mount's time-out: not gone; look again
            self.doubted.add(folder if folder in self.folders else _parent(folder))
            return self.folders.get(folder)
        if not stat.S_ISDIR(info.st_mode):
            return None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
        self.folders[folder] = stamp
        if max(info.st_mtime_ns, info.st_ctime_ns) >= self.clock() - DOUBT_NS:
            self.doubted.add(folder)
        return stamp

    def _subfolders(self, folder: str) -> set[str] | None:
        """The folder's visible subfolders, from the listing alone (no stat of any entry);
        None when it cannot be listed now (it is then listed again at the next poll)."""
        prefix = f"{folder}/" if folder else ""
        try:
            with os.scandir(os.path.join(self.root, folder)) as entries:
                return {
                    prefix + entry.name
                    for entry in entries
                    if not entry.name.startswith(".") and _is_folder(entry)
                }
        except OSError:
            self.doubted.add(folder)
            return None

    def _learn_below(self, folder: str) -> None:
        pending = [folder]
        while pending:
            for below in self._subfolders(pending.pop()) or ():
                if self._stat(below) is not None:
                    pending.append(below)

    def _relist(self, folder: str) -> set[str]:
        """Learn a changed folder's new subfolders (with all below them), forget gone ones;
        both are returned (none while it cannot be listed: what is known is kept)."""
        listed = self._subfolders(folder)
        if listed is None:
            return set()
        prefix = f"{folder}/" if folder else ""
        known = {
            path
            for path in self.folders
            if path.startswith(prefix) and path != folder and "/" not in path[len(prefix) :]
        }
        for gone in known - listed:
            self._forget(gone)
        for new in listed - known:
            if self._stat(new) is not None:
                self._learn_below(new)
        return listed ^ known

    def _forget(self, folder: str) -> None:
        """A vanished folder and every folder remembered below it."""
        below = f"{folder}/"
        for path in [path for path in self.folders if path == folder or path.startswith(below)]:
            del self.folders[path]
            self.doubted.discard(path)


def _parent(folder: str) -> str:
    return folder.rpartition("/")[0]


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False

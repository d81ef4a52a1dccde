"""Finding document files and reading them safely: only regular files, never blocking."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from feeds.corpus.normalize import Unusable
from feeds.corpus.outcome import Skip

SUFFIXES = (".txt", ".md")
_NAME = attrgetter("name")


class Found(NamedTuple):
    """A document file as its directory lists it: path below the root, size, mtime.

    A tuple, so it equals the index's `(path, size, mtime_ns)` row of an unchanged file,
    and costs half a frozen dataclass: a rescan makes one per file of the corpus.
    """

    path: str
    size: int
    mtime_ns: int


def scan(root: Path, deep: bool = True) -> Iterator[Found | Skip]:
    """Every `*.txt`/`*.md` below root (hidden files and folders excepted), in a stable order;
    without `deep`, those in root itself only.

    Nothing is opened: whatever a name is (a FIFO, a link, a device), reading it decides.
    A folder that cannot be listed is a Skip, so none is left out without a word.
    """
    # Folders as (path below root with a trailing slash, full path): plain strings, since
    # path objects cost more than the listing itself at a million files.
    pending = [("", os.fspath(root))]
    while pending:
        prefix, directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=_NAME)
        except OSError as error:
            yield Skip(prefix or "./", _unlisted(error))
            continue
        folders = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append((f"{prefix}{name}/", entry.path))
                elif name.lower().endswith(SUFFIXES):
                    try:
                        info = entry.stat()
                    except FileNotFoundError:  # a dangling link: its own stamp
                        info = entry.stat(follow_symlinks=False)
                    yield Found(prefix + name, info.st_size, info.st_mtime_ns)
            except OSError:
                continue  # gone while we looked: the next scan sees what is there
        if deep:
            pending.extend(reversed(folders))


def unreadable_folder(root: Path, label: str) -> Skip:
    """A folder `scan` could not list, as its skip: listed again, so that the reason is
    the same whichever process reads it (the index's parsing processes, `feeds check`)."""
    try:
        os.scandir(root / label).close()
    except OSError as error:
        return Skip(label, _unlisted(error))
    return Skip(label, "unreadable directory: listed since, read at the next scan")


def _unlisted(error: OSError) -> str:
    return f"unreadable directory: {error.strerror or error.__class__.__name__}"


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def read_regular_file(root: Path, label: str, limit: int) -> bytes:
    """The bytes of a regular file of the corpus, up to `limit`; anything else is Unusable.

    The file is opened without blocking and without following a final symbolic link, and
    only then checked: opening a FIFO for reading would wait for a writer forever, and a
    device may never end. A symbolic link is followed only to a file inside the corpus:
    opening without following fails on a link (ELOOP), and only then is it resolved.
    """
    try:
        descriptor = os.open(os.path.join(root, label), _OPEN_FLAGS)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise _unreadable(error) from None
        descriptor = _open_link(root, root / label)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise Unusable("not a regular file: a FIFO, device, socket or directory")
        if info.st_size > limit:
            raise Unusable(f"too large: {info.st_size} bytes, limit {limit}")
        raw = _read_up_to(descriptor, limit + 1, info.st_size)
    except OSError as error:
        raise _unreadable(error) from None
    finally:
        os.close(descriptor)
    if len(raw) > limit:
        raise Unusable(f"too large: more than {limit} bytes")
    return raw


def _unreadable(error: OSError) -> Unusable:
    return Unusable(f"unreadable: {error.strerror or error.__class__.__name__}")


def _open_link(root: Path, path: Path) -> int:
    """A descriptor of what a link names inside the corpus (or of a path that loops)."""
    try:
        return os.open(_target(root, path), _OPEN_FLAGS)
    except OSError as error:
        raise _unreadable(error) from None


def _target(root: Path, path: Path) -> str:
    """The path to open: the file itself, or what its link points to inside the corpus."""
    if not path.is_symlink():
        return str(path)
    target = os.path.realpath(path)
    corpus = os.path.realpath(root)
    if os.path.commonpath([target, corpus]) != corpus:
        raise Unusable("a symbolic link to outside the corpus")
    return target


def _read_up_to(descriptor: int, limit: int, expected: int) -> bytes:
    """At most `limit` bytes; reads sized to what the file said it holds, so a small file
    costs small buffers (a file that grows while read still stops at `limit`)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        wanted = min(limit - size, max(expected - size, 0) + 4096)
        chunk = os.read(descriptor, wanted)
        chunks.append(chunk)
        size += len(chunk)
        if len(chunk) < wanted:
            break  # a regular file reads short only at its end
    return b"".join(chunks)

"""An on-disk snapshot of a loaded corpus, so a restart over unchanged files parses nothing.

One file per corpus directory and load options, named by a hash of both and of the
loading code. It holds a digest of the manifest (relative path, size and mtime_ns of
every document): any added, removed, renamed or changed document gives another digest,
and the corpus is loaded again from the files. Articles are stored packed, newest
first, and the served catalog reads them from an mmap of the file, so its pages live
in the page cache and are shared by every worker. Anything wrong with the file (wrong
magic, truncation, a bad checksum, an unreadable header) means it is ignored and rebuilt.

The build runs in a forked child process: the parsing's transient memory (all articles
as objects) goes away with the child instead of staying in the server's heap.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import multiprocessing
import os
import pickle
import struct
import tempfile
import zlib
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from feeds.model import build_catalog, pack_catalog, packed_articles

log = logging.getLogger("feeds.snapshot")

MAGIC = b"FEEDSNAP2\n"
_HEADER = struct.Struct("<QQI")  # header length, blob length, blob crc32
_CODE = (
    "corpus.py",
    "normalize.py",
    "model.py",
    "snapshot.py",
)


def default_directory() -> Path:
    """Where snapshots go when no directory is set: the user's cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "feeds")


def snapshot_path(directory: Path, root: Path, options_key: str) -> Path:
    """The snapshot file for this corpus directory, load options and version of the code."""
    identity = hashlib.sha256()
    for part in (MAGIC, os.fsencode(os.path.realpath(root)), options_key.encode(), _code_hash()):
        identity.update(part + b"\0")
    return directory / f"corpus-{identity.hexdigest()[:32]}.snap"


def _code_hash() -> bytes:
    """Changed loading code must not serve articles parsed by the old code."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in _CODE:
        digest.update((here / name).read_bytes())
    return digest.digest()


def manifest_digest(root: Path, suffixes: tuple[str, ...]) -> str:
    """A hash of every document's relative path, size and mtime_ns, in loading order."""
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        relative = os.path.relpath(directory, root)
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(suffixes):
                continue
            try:
                stat = os.stat(os.path.join(directory, name))
                line = f"{relative}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
            except OSError:
                line = f"{relative}/{name}\0unreadable\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def write(path: Path, corpus: Any, manifest: str) -> None:
    """The loaded corpus as a snapshot file, written beside it and renamed into place."""
    catalog = build_catalog(corpus.articles, "")
    blob, offsets, indexes = pack_catalog(catalog)
    header = pickle.dumps(
        {
            "manifest": manifest,
            "report": corpus.report,
            "digest": corpus.digest,
            "offsets": offsets.tobytes(),
            "indexes": indexes,
        },
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".snap-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(MAGIC + _HEADER.pack(len(header), len(blob), zlib.crc32(blob)))
            handle.write(header)
            handle.write(blob)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read(path: Path, manifest: str) -> tuple[Any, Any, str] | None:
    """(articles, report, digest) from a valid snapshot of this manifest; None otherwise."""
    try:
        with path.open("rb") as handle:
            prefix = handle.read(len(MAGIC) + _HEADER.size)
            if not prefix.startswith(MAGIC):
                return None
            header_length, blob_length, crc = _HEADER.unpack(prefix[len(MAGIC) :])
            header = pickle.loads(handle.read(header_length))
            if header["manifest"] != manifest:
                return None
            start = len(prefix) + header_length
            if os.fstat(handle.fileno()).st_size != start + blob_length:
                raise ValueError("truncated or extended")
            if _crc(handle, blob_length) != crc:
                raise ValueError("checksum mismatch")
            buffer = _map(handle, start, blob_length)
        offsets = array("Q")
        offsets.frombytes(header["offsets"])
        if offsets[-1] != blob_length:
            raise ValueError("offsets do not match the articles")
        articles = packed_articles(buffer, offsets, header["indexes"])
        return articles, header["report"], header["digest"]
    except FileNotFoundError:
        return None
    except Exception as error:  # any damage: ignore the snapshot, the files are the truth
        log.warning("ignoring damaged snapshot %s: %s", path, error)
        return None


def _crc(handle: Any, length: int) -> int:
    """The blob's checksum, read without mapping it (so it does not count in our memory)."""
    crc = 0
    remaining = length
    while remaining:
        chunk = handle.read(min(remaining, 1 << 24))
        if not chunk:
            raise ValueError("truncated")
        crc = zlib.crc32(chunk, crc)
        remaining -= len(chunk)
    return crc


def _map(handle: Any, start: int, length: int) -> Any:
    """The blob as a read-only memory map (a view past the header), or bytes when empty."""
    if length == 0:
        return b""
    mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return memoryview(mapped)[start : start + length]


def build_in_child(build: Callable[[], None]) -> bool:
    """Run `build` in a forked process; True when it finished without error."""
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:
        return False
    process = context.Process(target=_run, args=(build,), name="feeds-snapshot")
    process.start()
    process.join()
    return process.exitcode == 0


def _run(build: Callable[[], None]) -> None:
    try:
        build()
    except BaseException:
        log.exception("building the corpus snapshot failed")
        os._exit(1)

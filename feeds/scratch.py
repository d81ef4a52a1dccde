"""Temporary directories that go when the process that made them exits.

The gunicorn master makes them (the metrics directory, the filesystem cache's default
folder) and its forked workers inherit the exit handler: only the maker removes, so a
worker leaving never deletes what its siblings still use.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile


def scratch_directory(prefix: str) -> str:
    """A new private directory under the temp directory, removed at this process's exit."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(_remove, path, os.getpid())
    return path


def _remove(path: str, maker: int) -> None:
    if os.getpid() == maker:
        shutil.rmtree(path, ignore_errors=True)

"""A hash of source files: what tells one release's code from another's.

The package version never changes between deploys, so it cannot tell old code from new;
the index names its file after the code that decides rows, and the shared cache keys
carry the code that renders, both with this hash.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from pathlib import Path


def files_hash(root: Path, paths: Iterable[Path], salt: str = "") -> str:
    """SHA-256 over each file's name below `root` and bytes (length-prefixed), and `salt`."""
    digest = hashlib.sha256(salt.encode("utf-8"))
    for path in paths:
        data = path.read_bytes()
        name = path.relative_to(root).as_posix().encode("utf-8")
        digest.update(struct.pack(">II", len(name), len(data)) + name + data)
    return digest.hexdigest()

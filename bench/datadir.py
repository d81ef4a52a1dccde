"""The data directory after settings changes and damages: what stays, and how much.

Builds a generated corpus's index under five archive page sizes (four settings changes),
then damages the served index twice, rebuilding each time, as `feeds index` does; prints
the index's size, what the data directory holds and what was removed.

    .venv/bin/python bench/datadir.py --count 5000
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from feeds.index.indexer import Target, update
from feeds.settings import load_settings
from tests.support import PROJECT_ROOT

PAGE_SIZES = (50, 40, 30, 20, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="documents to generate")
    count = parser.parse_args().count
    work = Path(tempfile.mkdtemp(prefix="feeds-datadir-"))
    corpus, data = work / "corpus", work / "data"
    generate = [sys.executable, "-m", "tests.generate", str(corpus), "--count", str(count)]
    subprocess.run(generate, check=True, capture_output=True, cwd=PROJECT_ROOT)
    removed: list[str] = []

    class Removals(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("removed"):
                removed.append(record.getMessage())

    logging.getLogger("feeds.index").addHandler(Removals())
    logging.getLogger("feeds.index").setLevel(logging.INFO)
    for page_size in PAGE_SIZES:
        settings = {"CORPUS_DIR": str(corpus), "DATA_DIR": str(data)}
        target = Target.from_settings(load_settings({**settings, "ARCHIVE_PAGE_SIZE": page_size}))
        update(target)
    index_bytes = target.path.stat().st_size
    for damage in (b"first damage ", b"second damage "):
        with target.path.open("r+b") as handle:
            handle.write(damage * 100)
        update(target)
    held = sorted(data.iterdir())
    total = sum(path.stat().st_size for path in held)
    print(f"{count} documents: index {index_bytes / 1e6:.1f} MB,", end=" ")
    print(f"data directory {total / 1e6:.1f} MB")
    print(f"holds ({data}):", *(path.name for path in held), sep="\n  ")
    print("removed:", *removed, sep="\n  ")


if __name__ == "__main__":
    main()

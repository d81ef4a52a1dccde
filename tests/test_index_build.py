"""A cold build gives, row for row, the index the per-file writer gave before builds were
loaded in bulk: every table a build derives is pinned by a digest taken with that writer.

Regenerate the digests (only when a change is meant to alter what a build holds, with
`PARSER_VERSION` or `SCHEMA_VERSION` bumped) with `python -m tests.test_index_build`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from feeds.index.indexer import update
from tests.conftest import PROJECT_ROOT
from tests.test_index import TABLE_QUERIES, target_for

DOCUMENTS = 3000
FIXTURE = Path(__file__).parent / "fixtures" / "build-rows.json"

# What a build decides beyond `TABLE_QUERIES`: pages, open counts and the search words
# (by article id: copy numbers are not compared). Wall-clock columns are left out.
BUILD_QUERIES = {
    **TABLE_QUERIES,
    "documents": TABLE_QUERIES["documents"].replace("mtime_ns, ", ""),
    "entries": "SELECT kind, slug, page, published, id, retired FROM entries"
    " ORDER BY kind, slug, page, published, id",
    "archive_pages": "SELECT kind, slug, page FROM archive_pages ORDER BY kind, slug, page",
    "feed_clock": "SELECT kind, slug, pages FROM feed_clock ORDER BY kind, slug",
    "open": "SELECT kind, slug, open FROM feeds ORDER BY kind, slug",
    "words": "SELECT a.id, w.term, w.col, w.offset FROM temp.words w"
    " JOIN articles a ON a.version = w.doc ORDER BY a.id, w.col, w.offset",
}


def build_digests(root: Path, data_dir: Path) -> dict[str, str]:
    """Build the index of `root` from nothing; each table's row count and digest."""
    target = target_for(root, data_dir)
    update(target)
    db = sqlite3.connect(target.path)
    try:
        db.execute("CREATE VIRTUAL TABLE temp.words USING fts5vocab(main, article_words, instance)")
        digests = {}
        for name, query in BUILD_QUERIES.items():
            found = db.execute(query).fetchall()
            text = json.dumps(found, ensure_ascii=False).encode()
            digests[name] = f"{len(found)} {hashlib.sha256(text).hexdigest()}"
        return digests
    finally:
        db.close()


def generate(root: Path) -> Path:
    """A generated corpus with copies of some articles: the same bytes (the lower path is
    served), a higher quality (served) and other words (the lower digest is served)."""
    command = [sys.executable, "-m", "tests.generate", str(root), "--count", str(DOCUMENTS)]
    subprocess.run(command, check=True, capture_output=True, cwd=PROJECT_ROOT)
    copies = root / "copies"
    copies.mkdir()
    for number, path in enumerate(sorted(root.glob("*/*.txt"))[::40]):
        text = path.read_text(encoding="utf-8")
        if number % 3 == 1:
            text = re.sub(r"(?m)^quality: .*$", "quality: 100", text, count=1)
        elif number % 3 == 2:
            text = text.replace('title: "', 'title: "Again ', 1)
        (copies / path.name).write_text(text, encoding="utf-8")
    (copies / "broken.txt").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    return root


def test_a_build_gives_the_rows_the_per_file_writer_gave(tmp_path: Path) -> None:
    expected = json.loads(FIXTURE.read_text())
    assert build_digests(generate(tmp_path / "corpus"), tmp_path / "data") == expected


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        found = build_digests(generate(Path(directory) / "corpus"), Path(directory) / "data")
    FIXTURE.write_text(json.dumps(found, indent=1) + "\n")

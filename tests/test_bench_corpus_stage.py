"""bench.corpus_stage counts what each side did, so a ratio is of like with like."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.corpus_stage import baseline, measure, pipeline
from tests.support import SEEDS, document


def test_both_sides_read_the_same_files_and_say_what_they_made(tmp_path: Path) -> None:
    shutil.copytree(SEEDS, tmp_path, dirs_exist_ok=True)
    (tmp_path / "untitled.txt").write_text(document(title=None))  # parses, is no article
    labels = sorted(path.name for path in tmp_path.glob("*.txt"))
    assert baseline(tmp_path, labels) == 3
    assert pipeline(tmp_path, labels) == 2
    seconds, files = measure(tmp_path, rounds=2)
    assert files == 3
    assert all(len(values) == 2 and min(values) >= 0 for values in seconds.values())

"""Parallel and snapshot loads give the plain load's result; any file change invalidates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from feeds import snapshot
from feeds.corpus import SUFFIXES, LoadOptions, load_corpus
from feeds.model import Catalog, build_catalog
from tests.support import document


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    command = [sys.executable, "-m", "feeds.corpusgen", str(root), "--count", "600"]
    subprocess.run(command, check=True, capture_output=True)
    (root / "000" / "dup.txt").write_text(document())
    (root / "000" / "dup2.md").write_text(document(excerpt='"another copy"'))
    (root / "000" / "broken.txt").write_text("---\ntitle: [unclosed\n---\n")
    return root


@pytest.fixture(scope="module")
def plain(generated: Path):
    return load_corpus(generated, LoadOptions())


def catalog_state(catalog: Catalog) -> tuple:
    return (
        tuple(catalog.articles),
        dict(catalog.topics),
        dict(catalog.providers),
        {slug: tuple(items) for slug, items in catalog.by_topic.items()},
        {slug: tuple(items) for slug, items in catalog.by_provider.items()},
    )


def same_load(first, second) -> None:
    assert first.digest == second.digest
    assert first.report.as_dict() | {"seconds": 0} == second.report.as_dict() | {"seconds": 0}
    assert first.report.skipped == second.report.skipped
    assert first.report.filtered == second.report.filtered
    assert first.report.repairs == second.report.repairs
    assert catalog_state(build_catalog(first.articles, "v")) == catalog_state(
        build_catalog(second.articles, "v")
    )


def test_parallel_load_is_the_plain_load(generated: Path, plain) -> None:
    parallel = load_corpus(generated, LoadOptions(workers=2))
    assert parallel.articles == plain.articles  # same order too
    same_load(plain, parallel)
    assert plain.report.loaded > 500 and plain.report.skipped


def test_snapshot_load_is_the_plain_load(generated: Path, tmp_path: Path) -> None:
    plain = load_corpus(generated, LoadOptions(min_quality=20))
    options = LoadOptions(min_quality=20, workers=2, snapshot_dir=tmp_path)
    cold = load_corpus(generated, options)
    assert len(list(tmp_path.glob("*.snap"))) == 1
    warm = load_corpus(generated, options)
    same_load(plain, cold)
    same_load(plain, warm)
    assert warm.articles[:3] == tuple(warm.articles)[:3]
    assert plain.report.filtered


@pytest.mark.parametrize("change", ["edit", "add", "remove", "rename", "touch"])
def test_any_file_change_invalidates_the_snapshot(tmp_path: Path, change: str) -> None:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    for index in range(3):
        text = document(title=f'"Title {index}"', webUrl=f'"https://example.com/{index}"')
        (root / "sub" / f"{index}.txt").write_text(text)
    options = LoadOptions(snapshot_dir=tmp_path / "snapshots")
    load_corpus(root, options)
    before = snapshot.manifest_digest(root, SUFFIXES)
    target = root / "sub" / "1.txt"
    if change == "edit":
        target.write_text(document(title='"Changed"', webUrl='"https://example.com/1"'))
    elif change == "add":
        (root / "new.md").write_text(document(title='"New"', webUrl='"https://example.com/n"'))
    elif change == "remove":
        target.unlink()
    elif change == "rename":
        target.rename(root / "sub" / "9.txt")
    else:
        stat = target.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert snapshot.manifest_digest(root, SUFFIXES) != before
    after = load_corpus(root, options)
    same_load(load_corpus(root, LoadOptions()), after)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip", "empty"])
def test_corrupt_snapshot_is_ignored_and_rebuilt(
    generated: Path, plain, tmp_path: Path, damage: str
) -> None:
    options = LoadOptions(snapshot_dir=tmp_path, workers=2)
    load_corpus(generated, options)
    (path,) = tmp_path.glob("*.snap")
    data = bytearray(path.read_bytes())
    if damage == "garbage":
        data[:200] = b"x" * 200
    elif damage == "truncate":
        del data[len(data) // 2 :]
    elif damage == "flip":
        data[-100] ^= 0xFF
    else:
        data.clear()
    path.write_bytes(bytes(data))
    same_load(plain, load_corpus(generated, options))
    manifest = snapshot.manifest_digest(generated, SUFFIXES)
    assert snapshot.read(path, manifest) is not None  # rebuilt

"""The package runs anywhere: built as a wheel and installed without the checkout, the
Procfile's command serves from an empty folder, and `feeds check` finds its bundled corpus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT, document, start_server


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process that imports `feeds` from a wheel, not the checkout."""
    work = tmp_path_factory.mktemp("package")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work), str(PROJECT_ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = work.glob("feeds-*.whl")
    site = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    env = {"PYTHONPATH": str(site), "FEEDS_DATA_DIR": str(work / "data")}
    where = subprocess.run(
        [sys.executable, "-c", "import feeds; print(feeds.__file__)"],
        env={**os.environ, **env},
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(site))  # the wheel's copy, not the editable checkout
    return env


def test_the_procfile_serves_from_an_empty_folder(
    installed: dict[str, str], tmp_path: Path
) -> None:
    corpus, empty = tmp_path / "corpus", tmp_path / "empty"
    corpus.mkdir()
    empty.mkdir()
    (corpus / "a.txt").write_text(document(title='"Installed elsewhere"'))
    server = start_server({**installed, "FEEDS_CORPUS_DIR": str(corpus)}, cwd=empty)
    try:
        response = server.get("/feeds/all.rss")
        assert response.status_code == 200
        assert b"Installed elsewhere" in response.content
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_feeds_check_reads_the_bundled_corpus(installed: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feeds", "check"],
        env={**os.environ, **installed},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2 loaded" in result.stdout + result.stderr

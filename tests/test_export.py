"""The static export, served by a real nginx, gives the live server's bytes."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from feeds.app import create_app
from feeds.corpusgen import write_corpus
from feeds.export import export_site
from tests.support import PROJECT_ROOT, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture(scope="module")
def nginx_export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """An nginx on a free loopback port serving an export of a generated corpus."""
    tmp_path = tmp_path_factory.mktemp("export")
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed; .ci/run installs it")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 80, seed=7)
    export = tmp_path / "export"
    app = create_app({"CORPUS_DIR": str(corpus), "BASE_URL": origin})
    assert export_site(app, export) > 100
    run = tmp_path / "run"
    run.mkdir()
    template = (PROJECT_ROOT / "config" / "nginx-export.conf").read_text()
    config = template.replace("{root}", str(export)).replace("{run}", str(run))
    config = config.replace("{listen}", f"127.0.0.1:{port}")
    (run / "nginx.conf").write_text("user root;\n" + config)
    process = subprocess.Popen(
        [NGINX, "-p", str(run), "-c", str(run / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            requests.get(origin + "/", timeout=1)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(process.stderr.read().decode()) from None
            time.sleep(0.05)
    yield origin, corpus, export
    process.terminate()
    process.wait(timeout=10)


def test_nginx_serves_the_same_bytes_as_the_server(nginx_export, server_factory) -> None:
    origin, corpus, export = nginx_export
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus), FEEDS_BASE_URL=origin)
    paths = [
        "/feeds/all.rss",
        "/feeds/all.atom",
        "/feeds/all.json",
        "/feeds/all/archive/1.atom",
        "/feeds/topics/ai.rss",
        "/feeds.opml",
        "/feeds.opml?format=json",
        "/feed.xsl",
    ]
    provider = next(p for p in (export / "feeds" / "providers").iterdir() if p.suffix == ".rss")
    paths.append(f"/feeds/providers/{provider.name}")
    for path in paths:
        live = server.get(path, headers={"Accept-Encoding": "identity"})
        static = requests.get(origin + path, timeout=10, headers={"Accept-Encoding": "identity"})
        assert static.status_code == live.status_code == 200, path
        assert static.content == live.content, path
        assert static.headers["Content-Type"] == live.headers["Content-Type"], path


def test_precompressed_siblings_and_pages(nginx_export) -> None:
    origin, _corpus, export = nginx_export
    plain = requests.get(
        origin + "/feeds/all.atom", timeout=10, headers={"Accept-Encoding": "identity"}
    ).content
    compressed = requests.get(
        origin + "/feeds/all.atom", timeout=10, stream=True, headers={"Accept-Encoding": "gzip"}
    )
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(compressed.raw.read(decode_content=False)) == plain
    assert (export / "feeds" / "all.atom.gz").exists()
    home = requests.get(origin + "/", timeout=10)
    assert home.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'rel="alternate"' in home.text
    topic = requests.get(origin + "/topics/ai", timeout=10)
    assert topic.status_code == 200
    assert requests.get(origin + "/feeds/topics/missing.rss", timeout=10).status_code == 404


def test_export_needs_a_base_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FEEDS_BASE_URL"):
        export_site(create_app(), tmp_path)

"""The static export, served by a real nginx, gives the live server's bytes."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from feeds.app import create_app
from feeds.http.export import create_file, export_paths, export_site
from feeds.http.responses import PAGE_POLICY
from tests.generate import write_corpus
from tests.support import PROJECT_ROOT, document, free_port

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
        for header in ("X-Content-Type-Options", "Content-Security-Policy", "Referrer-Policy"):
            assert static.headers.get(header) == live.headers.get(header), (path, header)


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
    for page in (home, topic):  # the live server's security headers
        assert page.headers["Content-Security-Policy"] == PAGE_POLICY
        assert page.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(origin + "/feeds/topics/missing.rss", timeout=10).status_code == 404


def test_export_needs_a_base_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FEEDS_BASE_URL"):
        export_site(create_app(), tmp_path)


def run_export(corpus: Path, target: Path) -> subprocess.CompletedProcess:
    """`feeds export` as an operator runs it."""
    command = [str(Path(sys.executable).with_name("feeds")), "export", str(target)]
    environ = {
        **os.environ,
        "FEEDS_CORPUS_DIR": str(corpus),
        "FEEDS_BASE_URL": "https://feeds.example.org",
    }
    return subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=60, check=False
    )


def leftovers(target: Path) -> list[str]:
    return [p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]


def test_a_provider_domain_ending_like_a_feed_still_exports(corpus: Path, tmp_path: Path) -> None:
    """`nypost.com.rss` once made the export stop halfway with NotADirectoryError."""
    (corpus / "odd.md").write_text(
        document(
            title='"An odd domain"',
            webUrl='"https://odd.example/a"',
            provider="\n  name: Odd Post\n  domain: nypost.com.rss",
        )
    )
    target = tmp_path / "site"
    result = run_export(corpus, target)
    assert result.returncode == 0, result.stderr
    assert (target / "feeds" / "providers" / "nypost.com.rss").is_file()
    assert b"An odd domain" in (target / "feeds" / "providers" / "odd-post.rss").read_bytes()
    assert leftovers(target) == []


def test_an_export_replaces_the_old_tree_and_writes_through_no_link(
    corpus: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the export's")
    target = tmp_path / "site"
    (target / "feeds").mkdir(parents=True)
    (target / "stale.rss").write_text("from an older export")
    (target / "feeds" / "all.rss").symlink_to(outside)
    (target / "index.html").symlink_to(outside)
    result = run_export(corpus, target)
    assert result.returncode == 0, result.stderr
    assert outside.read_text() == "not the export's"
    assert not (target / "stale.rss").exists()
    for path in (target / "feeds" / "all.rss", target / "index.html"):
        assert path.is_file() and not path.is_symlink()
    assert b"<rss" in (target / "feeds" / "all.rss").read_bytes()
    assert leftovers(target) == []


def test_a_failed_export_leaves_the_old_tree(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "site"
    assert run_export(corpus, target).returncode == 0
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    (corpus / "new.md").write_text(document(webUrl='"https://example.com/new"'))

    def one_more(site):  # a URL the app does not answer, after everything else
        yield from export_paths(site)
        yield "/feeds/topics/missing.rss", "/missing.rss"

    monkeypatch.setattr("feeds.http.export.export_paths", one_more)
    app = create_app({"CORPUS_DIR": str(corpus), "BASE_URL": "https://feeds.example.org"})
    with pytest.raises(RuntimeError, match=r"missing\.rss answered 404"):
        export_site(app, target)
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    assert leftovers(target) == []


def test_two_urls_for_one_file_are_an_error_not_an_overwrite(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("kept")
    (tmp_path / "link").symlink_to(outside)
    for taken in ("link", "outside.txt"):
        with pytest.raises(RuntimeError, match="need the same file"):
            create_file(tmp_path / taken, b"new")
    assert outside.read_text() == "kept"

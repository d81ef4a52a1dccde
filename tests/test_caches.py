"""Real caches in front of the real server, with the shipped configurations: Varnish with
config/varnish.vcl and nginx with config/nginx-proxy-cache.conf keep one copy per feed URL
for every client, and keep serving every feed after the origin stops."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from feeds.render import FORMATS
from tests.clients import CLIENTS
from tests.support import PROJECT_ROOT, Server, free_port, start_server, wait_for

MAX_AGE = 2  # seconds; stale-while-revalidate is the same
FEEDS = [
    f"/feeds/{name}.{extension}"
    for name in ("all", "topics/ai", "providers/nypost.com")
    for extension in FORMATS
]
VARNISHD = shutil.which("varnishd") or "/usr/sbin/varnishd"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Cache:
    url: str
    from_cache: Callable[[requests.Response], bool]
    origin_seen_down: Callable[[], bool]


def start(command: list[str], url: str) -> subprocess.Popen:
    """A cache program in the foreground, once it answers on its port."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(url + "/healthz", timeout=1)
            return process
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(process.stderr.read().decode()) from None
            time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def config(name: str, origin: Server) -> str:
    """A shipped configuration, pointed at the test's origin instead of 127.0.0.1:8000."""
    origin_port = origin.url.rsplit(":", 1)[1]
    text = (PROJECT_ROOT / "config" / name).read_text()
    assert "127.0.0.1:8000" in text or '"8000"' in text
    return text.replace("127.0.0.1:8000", f"127.0.0.1:{origin_port}").replace(
        '"8000"', f'"{origin_port}"'
    )


def varnish(origin: Server, work: Path) -> Iterator[Cache]:
    if not Path(VARNISHD).exists():
        pytest.fail("varnishd is not installed; .ci/run installs it")
    (work / "feeds.vcl").write_text(config("varnish.vcl", origin))
    url = f"http://127.0.0.1:{free_port()}"
    name = str(work / "varnish")
    command = [VARNISHD, "-F", "-j", "none", "-n", name, "-f", str(work / "feeds.vcl")]
    process = start([*command, "-a", url.removeprefix("http://"), "-s", "malloc,64m"], url)

    def origin_seen_down() -> bool:
        backends = subprocess.run(
            ["varnishadm", "-n", name, "backend.list"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return bool(re.search(r"\bsick\b", backends.stdout))

    # X-Varnish holds two transaction ids when the object came from the cache.
    yield Cache(
        url, lambda response: len(response.headers["X-Varnish"].split()) == 2, origin_seen_down
    )
    stop(process)


def nginx(origin: Server, work: Path, edit: Callable[[str], str] = str) -> Iterator[Cache]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed; .ci/run installs it")
    url = f"http://127.0.0.1:{free_port()}"
    text = edit(config("nginx-proxy-cache.conf", origin)).replace("{run}", str(work))
    (work / "nginx.conf").write_text("user root;\n" + text.replace("{listen}", url[7:]))
    process = start([NGINX, "-p", str(work), "-c", str(work / "nginx.conf")], url)

    def from_cache(response: requests.Response) -> bool:
        return response.headers["X-Cache-Status"] in {"HIT", "STALE", "UPDATING"}

    yield Cache(url, from_cache, lambda: True)  # nginx tries the origin on every miss
    stop(process)


@pytest.fixture(params=[varnish, nginx], ids=["varnish", "nginx"])
def cached(request, server_factory, tmp_path: Path) -> Iterator[tuple[Server, Cache]]:
    origin = server_factory(FEEDS_MAX_AGE=str(MAX_AGE))
    starter = request.param
    yield from ((origin, cache) for cache in starter(origin, tmp_path))


def get(cache: Cache, path: str, client: str) -> requests.Response:
    return requests.get(cache.url + path, headers=CLIENTS[client], timeout=10)


def test_one_copy_per_feed_and_stale_copies_when_the_origin_is_down(cached) -> None:
    origin, cache = cached
    draw = random.Random(5)
    bodies: dict[str, bytes] = {}
    hits = 0
    for _ in range(200):
        path, client = draw.choice(FEEDS), draw.choice(list(CLIENTS))
        response = get(cache, path, client)
        assert response.status_code == 200, (path, client)
        assert bodies.setdefault(path, response.content) == response.content, (path, client)
        hits += cache.from_cache(response)
    assert hits >= 190, f"{hits} of 200 requests served from the cache"
    last_fetch = time.monotonic()

    origin.stop()
    wait_for(cache.origin_seen_down, bool)
    time.sleep(max(0.0, last_fetch + 2 * MAX_AGE + 0.5 - time.monotonic()))
    for path in FEEDS:
        for client in CLIENTS:
            response = get(cache, path, client)
            assert response.status_code == 200, (path, client)
            assert response.content == bodies[path], (path, client)
    # The origin really is gone: a feed nobody asked for cannot be had.
    assert get(cache, "/feeds/topics/computer-vision.rss", "curl").status_code in {502, 503}


TOKEN = "t" * 40
OPERATOR_PAGES = ("/metrics", "/stats", "/stats.json")
PUBLIC_NAME = "feeds.example.org"


@contextlib.contextmanager
def running(starter: Iterator[Cache]) -> Iterator[Cache]:
    """A cache from one of the generators above, stopped whatever the test does."""
    cache = next(starter)
    try:
        yield cache
    finally:
        next(starter, None)


@pytest.fixture(scope="module")
def operator_origin() -> Iterator[Server]:
    """One origin with a stats token for the module's tests, each with its own cache."""
    names = f"localhost 127.0.0.1 [::1] {PUBLIC_NAME}"
    server = start_server({"FEEDS_STATS_TOKEN": TOKEN, "FEEDS_ALLOWED_HOSTS": names})
    yield server
    server.stop()


def assert_operator_pages_need_the_token(cache: Cache, host: str | None = None) -> None:
    named = {"Host": host} if host else {}
    for path in OPERATOR_PAGES:
        assert requests.get(cache.url + path, headers=named, timeout=10).status_code == 404
        token = {**named, "Authorization": f"Bearer {TOKEN}"}
        assert requests.get(cache.url + path, headers=token, timeout=10).status_code == 200
        assert requests.get(cache.url + path, headers=named, timeout=10).status_code == 404
    feed = requests.get(cache.url + "/feeds/all.rss", headers=named, timeout=10)
    assert feed.status_code == 200


@pytest.mark.parametrize("starter", [varnish, nginx], ids=["varnish", "nginx"])
def test_through_a_shipped_cache_the_operator_pages_need_the_token(
    operator_origin: Server, tmp_path: Path, starter
) -> None:
    """nginx-proxy-cache.conf once forwarded no client address: /stats.json, /stats and
    /metrics answered 200 to every client of that nginx. Loopback names pass as Host here."""
    with running(starter(operator_origin, tmp_path)) as cache:
        assert_operator_pages_need_the_token(cache)
    for path in OPERATOR_PAGES:  # a client on this host, straight to the origin
        assert operator_origin.get(path).status_code == 200


def test_a_proxy_that_forwards_no_address_still_passes_the_public_name(
    operator_origin: Server, tmp_path: Path
) -> None:
    """An operator's own proxy without X-Forwarded-For: its clients come from loopback,
    but ask for the public name, and only local clients name the host by a loopback name."""

    def forward_nothing(text: str) -> str:
        return re.sub(r"^.*X-Forwarded-For.*$", "", text, flags=re.M)

    with running(nginx(operator_origin, tmp_path, forward_nothing)) as cache:
        assert "X-Forwarded-For" not in (tmp_path / "nginx.conf").read_text()
        assert_operator_pages_need_the_token(cache, PUBLIC_NAME)


@pytest.mark.parametrize("starter", [varnish, nginx], ids=["varnish", "nginx"])
def test_through_a_shipped_cache_the_port_in_host_reaches_no_link(
    seeds_server: Server, tmp_path: Path, starter
) -> None:
    """Without FEEDS_BASE_URL links follow Host, port included: a port per request was a
    render per request. Both caches pass the name only, as the origin's port rule wants."""
    with running(starter(seeds_server, tmp_path)) as cache:
        bodies = {
            requests.get(
                cache.url + "/feeds/all.atom", headers={"Host": f"127.0.0.1:{port}"}, timeout=10
            ).content
            for port in (1111, 2222, 3333)
        }
    assert len(bodies) == 1
    assert b'href="http://127.0.0.1/feeds/all.atom"' in bodies.pop()

"""Whatever a client sends: a 4xx or a correct answer, never a 5xx or a stack trace."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from feeds.app import create_app
from feeds.http.served import served
from tests.generate import write_corpus
from tests.support import Server, start_server


def raw_request(server: Server, data: bytes) -> bytes:
    """Send bytes as they are (no client library cleans them up) and read the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        # The server may answer and close before reading all we sent.
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


PATHS = [
    "/feeds/topics/../../etc/passwd.rss",
    "/feeds/topics/%2e%2e%2f%2e%2e%2fetc%2fpasswd.rss",
    "/feeds/providers/..%2f..%2fconfig%2fgunicorn.py.rss",
    "/feeds/topics/%00.rss",
    "/feeds/topics/%ff%fe.atom",
    "/feeds/topics/ai.rss%00.json",
    "/feeds/topics/ai",
    "/feeds/topics/.rss",
    "/feeds/topics/ai.RSS",
    "/feeds/topics/ai.rss.exe",
    "/feeds/topics/" + "a" * 3000 + ".rss",
    "/feeds/all.rss?limit=" + "9" * 3000,
    "/feeds/all.rss?" + "&".join(f"p{i}=x" for i in range(400)),
    "/feeds/all.rss?limit=5&" + "limit=5&" * 200,
    "/feeds/all.rss?limit=%FF",
    "/feeds/all.rss?limit=%00",
    "/feeds/all.rss?limit=%EF%BC%95",  # a full-width digit five
    "/%2e%2e/%2e%2e/etc/passwd",
    "//feeds/all.rss",
    "/feeds/all.rss/",
]


@pytest.mark.parametrize("path", PATHS)
def test_hostile_paths_get_a_4xx_or_a_feed(seeds_server: Server, path: str) -> None:
    answer = raw_request(seeds_server, f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
    assert status_of(answer) < 500, answer[:300]
    assert b"Traceback" not in answer
    assert b"root:" not in answer


@pytest.mark.parametrize(
    "headers",
    [
        "Accept-Encoding: gzip;q=abc, br;q=-1, *;q=2\r\n",
        "Accept-Encoding: " + ",".join(["gzip"] * 500) + "\r\n",
        "Accept: text/html;q=x;;;,,,\r\n",
        "Accept: */*;q=0\r\n",
        "If-None-Match: " + '"x", ' * 1000 + "\r\n",
        "If-None-Match: W/W/W/\r\n",
        "If-Modified-Since: Mon, 32 Foo 99999 25:61:61 GMT\r\n",
        "If-Modified-Since: " + "9" * 4000 + "\r\n",
        "Range: bytes=999999999-\r\n",
        "Range: bytes=-5,abc\r\n",
        "Host: [::1\r\n",
        "Host: \r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 99999999999999999999\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "X-Forwarded-Proto: javascript\r\nX-Forwarded-Host: evil.example\r\n",
        "Origin: null\r\n",
    ],
)
def test_hostile_headers_get_a_4xx_or_a_feed(seeds_server: Server, headers: str) -> None:
    request = (
        "GET /feeds/topics/ai.rss HTTP/1.1\r\nHost: localhost\r\n"
        f"Connection: close\r\n{headers}\r\n"
    )
    answer = raw_request(seeds_server, request.encode())
    assert status_of(answer) < 500, answer[:300]
    assert b"Traceback" not in answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"GET /feeds/all.rss HTTP/9.9\r\nHost: localhost\r\n\r\n",
        b"G\xffT /feeds/all.rss HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET " + b"/" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /feeds/all.rss HTTP/1.1\r\n" + b"X-Many: y\r\n" * 200 + b"\r\n",
        b"GET /feeds/all.rss HTTP/1.1\r\nX-Big: " + b"y" * 20000 + b"\r\n\r\n",
        b"GET /feeds/all.rss HTTP/1.1\r\nBad Header\r\n\r\n",
        b"BREW /feeds/all.rss HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
)
def test_malformed_http_gets_a_4xx(seeds_server: Server, request_bytes: bytes) -> None:
    answer = raw_request(seeds_server, request_bytes)
    if answer:  # closing the connection on bytes that are not HTTP is a fine answer too
        assert 400 <= status_of(answer) < 500, answer[:300]
    assert seeds_server.get("/feeds/all.rss").status_code == 200


def test_garbage_request_line_is_a_4xx(seeds_server: Server) -> None:
    host, port = seeds_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /feeds/all.rss\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
        status_line = sock.recv(200).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4"), status_line


@pytest.mark.parametrize("host", ["a b", "a>b", "a/b", "\u00fc.example"])
def test_an_unusable_host_is_a_400_not_broken_links(seeds_server: Server, host: str) -> None:
    request = f"GET /feeds/all.atom HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    answer = raw_request(seeds_server, request.encode())
    assert status_of(answer) == 400, answer[:300]


def test_a_host_header_cannot_poison_what_others_get(seeds_server: Server) -> None:
    plain = seeds_server.get("/feeds/all.atom").content
    evil = seeds_server.get("/feeds/all.atom", headers={"Host": "evil.example"})
    assert evil.status_code == 400
    assert seeds_server.get("/feeds/all.atom").content == plain
    assert b"evil.example" not in plain


def test_slow_clients_do_not_starve_normal_requests(seeds_server: Server) -> None:
    """Many connections that trickle their headers; normal requests are still answered."""
    host, port = seeds_server.url.removeprefix("http://").split(":")
    slow = []
    for _ in range(120):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(b"GET /feeds/all.rss HTTP/1.1\r\nHost: localhost\r\n")
        slow.append(sock)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.5)

    dripper = threading.Thread(target=trickle)
    dripper.start()
    try:
        time.sleep(1)
        for _ in range(20):
            response = requests.get(seeds_server.url + "/feeds/topics/ai.json", timeout=5)
            assert response.status_code == 200
    finally:
        stop.set()
        dripper.join()
        for sock in slow:
            sock.close()


def links_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "gunicorn_args",
    ["", "--forwarder-headers SCRIPT_NAME"],  # gunicorn's default, or trusting a proxy
    ids=["default", "gunicorn-trusts-script-name"],
)
def test_a_script_name_header_changes_no_link(server_factory, gunicorn_args: str) -> None:
    """`SCRIPT_NAME: //evil.example` once poisoned cached pages with `//evil.example/` links."""
    server = server_factory(GUNICORN_CMD_ARGS=gunicorn_args)
    paths = ["/", "/topics/ai", "/providers/nypost.com", "/feeds/topics/ai.atom"]
    for path in paths:
        request = (
            f"GET //evil.example{path} HTTP/1.1\r\nHost: localhost\r\n"
            "SCRIPT_NAME: //evil.example\r\nConnection: close\r\n\r\n"
        )
        answer = raw_request(server, request.encode())
        assert status_of(answer) in (200, 404), answer[:300]
        assert b"evil.example" not in links_of(answer)
    for _ in range(3):  # each worker has its own cache
        for path in paths:
            response = server.get(path, headers={"Host": "localhost"})
            assert response.status_code == 200
            assert b"evil.example" not in response.content, path


def test_a_script_name_header_the_path_lacks_is_no_server_error(seeds_server: Server) -> None:
    request = (
        "GET /topics/ai HTTP/1.1\r\nHost: localhost\r\nSCRIPT_NAME: /elsewhere\r\n"
        "Connection: close\r\n\r\n"
    )
    assert status_of(raw_request(seeds_server, request.encode())) == 200


def test_a_forwarded_scheme_changes_only_its_own_answers(seeds_server: Server) -> None:
    """gunicorn believes `X-Forwarded-Proto` from loopback; the scheme is part of every key."""
    for path in ("/topics/ai", "/feeds/topics/ai.rss"):
        secure = seeds_server.get(path, headers={"X-Forwarded-Proto": "https"}).text
        assert "https://127.0.0.1" in secure
        for _ in range(3):
            plain = seeds_server.get(path).text
            assert "https://127.0.0.1" not in plain
            assert "http://127.0.0.1" in plain


@pytest.fixture(scope="module")
def news_server() -> Iterator[Server]:
    """One server of the seeds mounted under a path, shared by the module's read-only tests."""
    server = start_server({"FEEDS_BASE_URL": "https://feeds.example.org/news"})
    yield server
    server.stop()


def test_the_base_url_path_is_the_only_prefix(news_server: Server) -> None:
    server = news_server
    request = (
        "GET /topics/ai HTTP/1.1\r\nHost: localhost\r\nSCRIPT_NAME: /other\r\n"
        "Connection: close\r\n\r\n"
    )
    for answer in (raw_request(server, request.encode()), server.get("/topics/ai").content):
        assert b'href="/news/providers/nypost.com"' in answer
        assert b"https://feeds.example.org/news/feeds/topics/ai.rss" in answer
        assert b"/other/" not in answer


def test_pages_feeds_and_the_xslt_link_under_the_base_url_path(news_server: Server) -> None:
    """A site mounted under a path once linked its stylesheet and OPML at the origin's root."""
    server = news_server
    page = server.get("/").text
    for link in ('href="/news/feeds.css"', 'href="/news/feeds.opml"', 'action="/news/custom"'):
        assert link in page
    assert 'href="/feeds.' not in page and 'href="/"' not in page
    for extension in ("rss", "atom"):
        feed = server.get(f"/feeds/all.{extension}").text
        assert '<?xml-stylesheet type="text/xsl" href="/news/feed.xsl"?>' in feed
    xslt = server.get("/feed.xsl").text
    assert 'href="/news/feeds.css"' in xslt and 'href="/news/feeds.opml"' in xslt
    assert 'href="/feeds.' not in xslt


def render_count(session: requests.Session, server: Server) -> float:
    """Documents this worker has rendered (its own counters are flushed by the scrape)."""
    text = session.get(server.url + "/metrics", timeout=5).text
    match = re.search(r'^feeds_cache_answers_total\{tier="render"\} (\S+)$', text, re.M)
    return float(match[1]) if match else 0.0


def test_a_flood_of_junk_hosts_costs_no_render_and_locks_no_one_out(
    server_factory, tmp_path
) -> None:
    """Random `Host`s with `?limit=500` once stalled a normal request for 20 s; later, first
    come first served origin slots let 8 junk names lock real ones out with a 421.

    Only served names (FEEDS_ALLOWED_HOSTS, loopback ones by default) get past a 400 now.
    """
    write_corpus(tmp_path / "corpus", 600)
    server = server_factory(FEEDS_CORPUS_DIR=str(tmp_path / "corpus"), WEB_CONCURRENCY="1")
    host, port = server.url.removeprefix("http://").split(":")
    with contextlib.ExitStack() as cleanup:
        session = cleanup.enter_context(requests.Session())
        assert session.get(server.url + "/feeds/all.rss", timeout=5).status_code == 200
        renders = render_count(session, server)
        # Connect first, then send every request at once: the worker wakes to all of them
        # together, and each took about 0.1 s of rendering without the check.
        flood = [
            cleanup.enter_context(socket.create_connection((host, int(port)), timeout=10))
            for _ in range(200)
        ]
        for number, sock in enumerate(flood):
            extension = ("rss", "atom", "json")[number % 3]
            sock.sendall(
                f"GET /feeds/all.{extension}?limit=500 HTTP/1.1\r\n"
                f"Host: flood-{number}.example\r\nConnection: close\r\n\r\n".encode()
            )
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # requests raises on its 5 s timeout
            assert session.get(server.url + "/feeds/all.rss", timeout=5).status_code == 200
        for sock in flood:
            answer = sock.recv(65536)
            assert status_of(answer) == 400, answer[:200]
        assert render_count(session, server) == renders
        # Names never seen before, after 200 junk ones: every served one is answered.
        for name in (f"localhost:{port}", "127.0.0.1:8101", "[::1]:8101", "LocalHost"):
            for path in ("/feeds/all.rss", "/", "/topics/ai", "/feeds.opml"):
                response = session.get(server.url + path, headers={"Host": name}, timeout=5)
                assert response.status_code == 200, (name, path)
        late = session.get(server.url + "/feeds/all.rss", headers={"Host": "late.example"})
        assert late.status_code == 400
        assert "FEEDS_ALLOWED_HOSTS" in late.text


def test_a_remote_client_gets_no_render_per_port(tmp_path) -> None:
    """Without FEEDS_BASE_URL links carry the Host's port, so `localhost:1`, `:2`, … were a
    render each: 200 at once stalled a normal request 7.7 s. Remote clients get the
    server's own port only; clients on this host (browsers, tunnels, proxies) any port.
    Through the test client: a real server's tests have loopback peers only."""
    app = create_app({"DATA_DIR": str(tmp_path)})
    client, cache = app.test_client(), served(app).runtime.site.cache
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/feeds/all.rss", environ_base=remote).status_code == 200
    renders = cache.stats["renders"]
    for port in range(1, 51):
        answer = client.get(
            "/feeds/all.rss", headers={"Host": f"localhost:{port}"}, environ_base=remote
        )
        assert answer.status_code == 400
        assert b"FEEDS_BASE_URL" in answer.data
    assert cache.stats["renders"] == renders
    own = client.get("/feeds/all.rss", headers={"Host": "localhost:80"}, environ_base=remote)
    assert own.status_code == 200  # the port the server listens on
    local = client.get("/feeds/all.rss", headers={"Host": "localhost:8101"})
    assert local.status_code == 200  # the test client's peer is 127.0.0.1
    assert b"http://localhost:8101/feeds/all.rss" in local.data
    under_base_url = create_app(
        {"DATA_DIR": str(tmp_path), "BASE_URL": "https://feeds.example.org"}
    )
    answer = under_base_url.test_client().get(
        "/feeds/all.rss", headers={"Host": "feeds.example.org:8443"}, environ_base=remote
    )
    assert answer.status_code == 200  # links follow no header: any port is one document


def test_a_configured_name_is_served() -> None:
    client = create_app({"ALLOWED_HOSTS": "feeds.example.org"}).test_client()
    named = client.get("/feeds/all.atom", headers={"Host": "feeds.example.org:8443"})
    assert named.status_code == 200
    assert b"http://feeds.example.org:8443/feeds/all.atom" in named.get_data()
    assert client.get("/feeds/all.atom").status_code == 400  # loopback names were replaced
    assert client.get("/healthz").status_code == 200  # load balancers probe by address


def test_the_base_url_host_is_served(news_server: Server) -> None:
    server = news_server
    for host in ("feeds.example.org", "localhost"):
        assert server.get("/feeds/all.atom", headers={"Host": host}).status_code == 200
    assert server.get("/feeds/all.atom", headers={"Host": "other.example"}).status_code == 400


def test_under_the_base_url_the_port_of_a_served_name_is_no_new_entry() -> None:
    client = create_app({"BASE_URL": "https://feeds.example.org"}).test_client()
    first = client.get("/feeds/all.rss").get_data()
    entries = client.get("/healthz").get_json()["cache"]
    for port in range(1, 31):
        for name in ("localhost", "feeds.example.org"):
            response = client.get("/feeds/all.rss", headers={"Host": f"{name}:{port}"})
            assert response.get_data() == first
    after = client.get("/healthz").get_json()["cache"]
    assert after["fast_path_entries"] == entries["fast_path_entries"]


@pytest.mark.parametrize(
    "head",
    [
        "GET /feeds/all.atom HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Host: evil.example\r\n",
        "GET /feeds/all.atom HTTP/1.1\r\nHost: localhost\r\nForwarded: host=evil.example\r\n",
        "GET /feeds/all.atom HTTP/1.1\r\nHost: localhost\r\nX-Host: evil.example\r\n",
        "GET http://evil.example/feeds/all.atom HTTP/1.1\r\nHost: localhost\r\n",
        "GET http://localhost/feeds/all.atom HTTP/1.1\r\nHost: evil.example\r\n",
        "GET http://evil.example/feeds/all.atom HTTP/1.0\r\n",
        "GET /feeds/all.atom HTTP/1.0\r\n",
    ],
)
def test_no_other_header_or_request_target_brings_a_host_past(
    seeds_server: Server, head: str
) -> None:
    answer = raw_request(seeds_server, f"{head}Connection: close\r\n\r\n".encode())
    assert status_of(answer) in (200, 400), answer[:300]
    if status_of(answer) == 200:
        assert b"evil.example" not in answer
        assert b"http://localhost/feeds/all.atom" in answer
    for _ in range(3):  # each worker has its own fast path
        assert b"evil.example" not in seeds_server.get("/feeds/all.atom").content


FIXED = ["/feeds/all.rss", "/feeds/topics/ai.atom", "/feeds/all/archive/1.json", "/"]
FIXED += ["/topics/ai", "/feeds.opml", "/feeds.css", "/feed.xsl"]


@pytest.fixture(scope="module")
def archived_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The seeds with an archive page per article, paged so from their first build."""
    data = tmp_path_factory.mktemp("archived")
    server = start_server({"FEEDS_ARCHIVE_PAGE_SIZE": "1", "FEEDS_DATA_DIR": str(data)})
    yield server
    server.stop()


@pytest.mark.parametrize("path", FIXED)
def test_unknown_parameters_are_a_redirect_never_an_entry(
    archived_server: Server, path: str
) -> None:
    """`?x=N` once made a new full-size fast-path entry per N."""
    url = archived_server.url
    with requests.Session() as session:  # one connection: one worker
        assert session.get(url + path, timeout=5).status_code == 200
        entries = session.get(url + "/healthz", timeout=5).json()["cache"]
        for number in range(30):
            junk = f"{url}{path}?utm_source=feed&x={number}"
            moved = session.get(junk, allow_redirects=False, timeout=5)
            assert moved.status_code == 301, junk
            assert moved.headers["Location"] == path
            assert "max-age" in moved.headers["Cache-Control"]
        after = session.get(url + "/healthz", timeout=5).json()["cache"]
        assert after["fast_path_entries"] == entries["fast_path_entries"]
        assert after["entries"] == entries["entries"]


@pytest.mark.parametrize(
    ("asked", "location"),
    [
        ("/feeds/all.rss?limit=5&utm_source=x", "/feeds/all.rss?limit=5"),
        ("/feeds/all.rss?&&limit=5", "/feeds/all.rss?limit=5"),
        ("/?q=new+york&fbclid=1", "/?q=new+york"),
        ("/topics/ai?ref=home&limit=3", "/topics/ai?limit=3"),
        ("/feeds.opml?format=atom&v=2", "/feeds.opml?format=atom"),
    ],
)
def test_a_redirect_keeps_the_parameters_a_document_reads(
    seeds_server: Server, asked: str, location: str
) -> None:
    moved = seeds_server.get(asked, allow_redirects=False)
    assert (moved.status_code, moved.headers["Location"]) == (301, location)
    assert seeds_server.get(location, allow_redirects=False).status_code == 200

"""What pollers and browsers see: validators, 304s, cache headers, encodings, CORS, errors.

Every request is made twice where it matters: the first answer comes through Flask,
the repeat through the WSGI fast path, and both must be the same. HTTP semantics go through
Flask's test client (the whole WSGI stack); what needs instances runs real servers.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import brotli
import pytest
import requests
from flask.testing import FlaskClient
from werkzeug.http import http_date, parse_date

from tests.clients import CLIENTS
from tests.support import Server, decoded, document, wait_for

FEED = "/feeds/topics/ai.rss"


def fetch(client: FlaskClient, path: str = FEED, method: str = "GET", **headers: str):
    headers.setdefault("Accept-Encoding", "identity")
    return client.open(path, method=method, headers=headers)


def fetch_from(server: Server, path: str, **headers: str) -> requests.Response:
    headers.setdefault("Accept-Encoding", "identity")
    return requests.get(server.url + path, headers=headers, timeout=10)


@pytest.mark.parametrize("attempt", [1, 2])
def test_200_then_304_by_if_none_match(seeds_client: FlaskClient, attempt: int) -> None:
    first = fetch(seeds_client)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = fetch(seeds_client, **{"If-None-Match": value})
        assert again.status_code == 304, value
        assert again.data == b""
        assert again.headers["ETag"] == etag
        assert again.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert fetch(seeds_client, **{"If-None-Match": '"other"'}).status_code == 200


def test_304_by_if_modified_since(seeds_client: FlaskClient) -> None:
    first = fetch(seeds_client)
    last_modified = first.headers["Last-Modified"]  # when the feed last changed
    assert parse_date(last_modified) <= datetime.now(UTC)
    assert fetch(seeds_client, **{"If-Modified-Since": last_modified}).status_code == 304
    earlier = http_date(parse_date(last_modified) - timedelta(seconds=1))
    assert fetch(seeds_client, **{"If-Modified-Since": earlier}).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        {"If-None-Match": "not-quoted"},
        {"If-None-Match": '"unterminated'},
        {"If-None-Match": ",,,"},
        {"If-Modified-Since": "yesterday"},
        {"If-Modified-Since": "Wed, 99 Foo 2021 99:99:99 GMT"},
        {"If-Modified-Since": "0"},
        {"If-None-Match": "W/", "If-Modified-Since": ""},
    ],
)
def test_malformed_conditional_headers_are_ignored(
    seeds_client: FlaskClient, header: dict[str, str]
) -> None:
    for _ in range(2):
        response = fetch(seeds_client, **header)
        assert response.status_code == 200
        assert response.data.startswith(b"<?xml")


def test_cache_headers_and_ttl_agree(seeds_client: FlaskClient) -> None:
    response = fetch(seeds_client)
    assert response.headers["Cache-Control"] == (
        "public, max-age=300, stale-while-revalidate=300, stale-if-error=86400"
    )
    assert b"<ttl>5</ttl>" in response.data
    assert response.headers["Vary"] == "Accept-Encoding"


@pytest.mark.parametrize("attempt", [1, 2])
def test_compressed_bodies_decode_to_the_exact_plain_bytes(
    seeds_client: FlaskClient, attempt: int
) -> None:
    plain = fetch(seeds_client, "/feeds/all.atom")
    gz = seeds_client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    raw = gz.data
    assert gz.headers["Content-Encoding"] == "gzip"
    assert int(gz.headers["Content-Length"]) == len(raw) < len(plain.data)
    assert gzip.decompress(raw) == plain.data
    assert gz.headers["ETag"] != plain.headers["ETag"]  # another representation
    br = seeds_client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip;q=0.5, br"})
    assert br.headers["Content-Encoding"] == "br"
    assert brotli.decompress(br.data) == plain.data
    refused = fetch(seeds_client, "/feeds/all.atom", **{"Accept-Encoding": "gzip;q=0, br;q=0"})
    assert "Content-Encoding" not in refused.headers
    assert refused.data == plain.data


@pytest.mark.parametrize("attempt", [1, 2])
def test_head_has_the_headers_of_get_and_no_body(seeds_client: FlaskClient, attempt: int) -> None:
    get = fetch(seeds_client, "/feeds/all.json")
    head = fetch(seeds_client, "/feeds/all.json", method="HEAD")
    assert head.status_code == 200
    assert head.data == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Cache-Control"):
        assert head.headers[name] == get.headers[name], name


def test_cors_on_feeds_and_preflight(seeds_client: FlaskClient) -> None:
    response = fetch(seeds_client, Origin="https://elsewhere.example")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    preflight = seeds_client.options(
        FEED,
        headers={
            "Origin": "https://elsewhere.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "If-None-Match",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert "If-None-Match" in preflight.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("path", ["/feeds/all.rss", "/feeds/topics/ai.atom", "/feeds/all.json"])
def test_every_client_gets_one_representation(seeds_client: FlaskClient, path: str) -> None:
    """Readers, a browser and curl get the same bytes and type: caches keep one copy."""
    seen = set()
    for name, headers in CLIENTS.items():
        for _ in range(2):  # through Flask, then through the fast path
            response = seeds_client.get(path, headers=headers)
            assert response.status_code == 200, name
            assert response.headers["Vary"] == "Accept-Encoding", name
            seen.add((decoded(response), response.headers["Content-Type"]))
    assert len(seen) == 1
    content_type = seen.pop()[1]
    assert content_type == (
        "application/feed+json; charset=utf-8"
        if path.endswith(".json")
        else "application/xml; charset=utf-8"
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/page", 404),
        ("GET", "/feeds/topics/unknown.rss", 404),
        ("GET", "/feeds/providers/unknown.example.json", 404),
        ("GET", "/feeds/all.html", 404),
        ("GET", "/feeds/all.rss?limit=zero", 400),
        ("POST", "/feeds/all.rss", 405),
        ("DELETE", "/feeds/topics/ai.atom", 405),
    ],
)
def test_errors_are_short_and_specific(
    seeds_client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = fetch(seeds_client, path, method=method)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text.startswith(f"{status} ")
    assert len(response.text) < 300
    if status == 405:
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_a_changed_corpus_gives_a_new_etag(server_factory, corpus) -> None:
    first = server_factory(FEEDS_CORPUS_DIR=str(corpus))
    before = fetch_from(first, "/feeds/all.rss")
    first.stop()  # a restart: the new server's indexer becomes the index's writer
    (corpus / "new.txt").write_text(
        document(title='"Written while stopped"', publishedDateTime="2025-01-01T00:00:00Z")
    )
    after_server = server_factory(FEEDS_CORPUS_DIR=str(corpus))
    # Served from the existing index at once; the directory is reconciled in the background.
    after = wait_for(
        lambda: fetch_from(after_server, "/feeds/all.rss"),
        lambda response: "Written while stopped" in response.text,
    )
    assert after.headers["ETag"] != before.headers["ETag"]
    assert parse_date(after.headers["Last-Modified"]) > parse_date(before.headers["Last-Modified"])
    stale = fetch_from(after_server, "/feeds/all.rss", **{"If-None-Match": before.headers["ETag"]})
    assert stale.status_code == 200


def test_validators_are_stable_across_instances(server_factory) -> None:
    settings = {"FEEDS_BASE_URL": "https://feeds.example.org"}
    one, two = server_factory(**settings), server_factory(**settings)
    for path in ("/feeds/all.rss", "/feeds/providers/wbur.org.json"):
        assert fetch_from(one, path).headers["ETag"] == fetch_from(two, path).headers["ETag"]

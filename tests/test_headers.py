"""Security headers on every answer of the real server, fast path included: the policy on
pages, `nosniff` on everything."""

from __future__ import annotations

import json

import pytest
import requests

from feeds.http.responses import PAGE_POLICY
from tests.support import Server, wait_for

PAGES = ["/", "/topics/ai", "/providers/nypost.com", "/custom?topic=ai", "/stats"]
OTHERS = ["/feeds/all.rss", "/feeds/topics/ai.json", "/feeds.opml", "/feed.xsl", "/feeds.css"]
OTHERS += ["/feeds/topics/missing.rss", "/healthz"]


def fast_answers(server: Server) -> set[str]:
    """Paths the fast path answered, from the JSON access log."""
    lines = [line for line in server.log().splitlines() if line.startswith('{"time"')]
    return {entry["path"] for entry in map(json.loads, lines) if entry["cache"] == "fast"}


@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_the_policy(seeds_server: Server, path: str) -> None:
    with requests.Session() as session:  # one connection, one worker: the second is cached
        for _ in range(2):
            response = session.get(seeds_server.url + path, timeout=5)
            assert response.status_code == 200
            assert response.headers["Content-Security-Policy"] == PAGE_POLICY
            assert "frame-ancestors 'none'" in PAGE_POLICY
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize("path", OTHERS)
def test_everything_else_is_nosniff(seeds_server: Server, path: str) -> None:
    with requests.Session() as session:
        for _ in range(2):
            response = session.get(seeds_server.url + path, timeout=5)
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "Content-Security-Policy" not in response.headers


def test_the_fast_path_answers_carry_them_too(seeds_server: Server) -> None:
    with requests.Session() as session:
        for path in ("/", "/feeds/all.atom"):
            for _ in range(3):
                session.get(seeds_server.url + path, timeout=5)
            answer = session.get(seeds_server.url + path, headers={"If-None-Match": "x"})
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
    wait_for(lambda: fast_answers(seeds_server), lambda fast: {"/", "/feeds/all.atom"} <= fast)

"""Security headers on every answer of the app's whole WSGI stack (Flask's test client),
fast path included: the policy on pages, `nosniff` on everything."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from feeds.http.responses import PAGE_POLICY
from feeds.http.served import served_by

PAGES = ["/", "/topics/ai", "/providers/nypost.com", "/custom?topic=ai", "/stats"]
OTHERS = ["/feeds/all.rss", "/feeds/topics/ai.json", "/feeds.opml", "/feed.xsl", "/feeds.css"]
OTHERS += ["/feeds/topics/missing.rss", "/healthz"]


def fast_answers(log: str) -> set[str]:
    """Paths the fast path answered, from the JSON access log."""
    lines = [line for line in log.splitlines() if line.startswith('{"time"')]
    return {entry["path"] for entry in map(json.loads, lines) if entry["cache"] == "fast"}


@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_the_policy(seeds_client: FlaskClient, path: str) -> None:
    for _ in range(2):  # the second is cached
        response = seeds_client.get(path)
        assert response.status_code == 200
        assert response.headers["Content-Security-Policy"] == PAGE_POLICY
        assert "frame-ancestors 'none'" in PAGE_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize("path", OTHERS)
def test_everything_else_is_nosniff(seeds_client: FlaskClient, path: str) -> None:
    for _ in range(2):
        response = seeds_client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in response.headers


def test_the_fast_path_answers_carry_them_too(
    seeds_client: FlaskClient, capfd: pytest.CaptureFixture[str]
) -> None:
    for path in ("/", "/feeds/all.atom"):
        for _ in range(3):
            seeds_client.get(path)
        answer = seeds_client.get(path, headers={"If-None-Match": "x"})
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    served = served_by(seeds_client.application)
    assert served is not None
    served.observer.flush()  # what each second does
    assert {"/", "/feeds/all.atom"} <= fast_answers(capfd.readouterr().out)

"""The `Cache-Control` of current feeds and pages (archive pages that are sealed say
`immutable` instead: `feeds.publish.archive`)."""

from __future__ import annotations


def cache_control(max_age: int) -> str:
    """Fresh for max_age; a CDN may serve stale briefly while refetching, and long on errors."""
    return f"public, max-age={max_age}, stale-while-revalidate={max_age}, stale-if-error=86400"

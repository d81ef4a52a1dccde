"""What the HTTP layer serves with, under one `app.extensions` key: the runtime
(`feeds.runtime`) and the layer's own two parts, the fast path and the observer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from feeds.http.fastpath import FastPath
from feeds.http.observe import Observer
from feeds.runtime import Runtime
from feeds.site import Site

EXTENSION = "feeds"


@dataclass(frozen=True, slots=True)
class Served:
    runtime: Runtime
    fast_path: FastPath
    observer: Observer


def served_by(app: Any) -> Served | None:
    """What an app made by `create_app` serves with; None for another app (the benchmark's
    baseline runs under the same gunicorn hooks)."""
    found = getattr(app, "extensions", {}).get(EXTENSION)
    return found if isinstance(found, Served) else None


def served(app: Flask) -> Served:
    """What an app made by `create_app` serves with."""
    found: Served = app.extensions[EXTENSION]
    return found


def current() -> Served:
    """What the current request's app serves with."""
    return served(current_app)


def current_site() -> Site:
    return current().runtime.site

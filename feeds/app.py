"""`create_app()`: read settings, open the corpus index, wire the parts together.

Under gunicorn (feeds/server/gunicorn_config.py) a supervised indexer process keeps the index
current and the app only reads it, so the port opens at once whatever the corpus size.
Anywhere else (tests, `feeds render`, `feeds export`) the index is brought up to date
here first, incrementally, so the app serves the directory as it is now.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from feeds import metrics
from feeds.corpus import CorpusError
from feeds.http import edge, queries
from feeds.http.custom import blueprint as custom_blueprint
from feeds.http.fastpath import FastPath
from feeds.http.hub import blueprint as websub_blueprint
from feeds.http.observe import AccessLog, Observer, observe_middleware
from feeds.http.origin import pinned_script_name
from feeds.http.pages import blueprint as pages_blueprint
from feeds.http.routes import blueprint
from feeds.http.served import EXTENSION, Served
from feeds.http.stats import blueprint as stats_blueprint
from feeds.index.indexer import Target, update
from feeds.index.reader import NotReady
from feeds.runtime import Runtime
from feeds.settings import load_settings

log = logging.getLogger("feeds.app")

BACKGROUND_INDEX_ENV = "FEEDS_BACKGROUND_INDEX"  # set by feeds/server/gunicorn_config.py
WAIT_FOR_OTHER_WRITER_SECONDS = 120.0


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    settings = load_settings(overrides)
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.json = _InOrderJSON(app)
    runtime = Runtime(settings)
    site = runtime.site
    if not os.environ.get(BACKGROUND_INDEX_ENV):
        index_now(Target.from_settings(settings), site.reader)
        if settings.strict and (skipped := site.catalog.counts()["skipped"]):
            raise CorpusError(f"strict mode: {skipped} documents were skipped")
    local_bytes = settings.cache_local_mb * 1024 * 1024
    fast_path = FastPath(
        site.reader.view,
        settings.cache_threshold,
        local_bytes,
        site.cache.gate,
        by_origin=not settings.base_url,  # with it, links follow no request header
    )
    site.cache.on_render = metrics.RENDER_SECONDS.observe
    app.register_blueprint(custom_blueprint)
    app.register_blueprint(blueprint)
    app.register_blueprint(pages_blueprint)
    app.register_blueprint(websub_blueprint)
    app.register_blueprint(stats_blueprint)
    app.before_request(queries.redirect_unknown_parameters)
    app.after_request(edge.add_security_headers)
    access_log = AccessLog() if settings.access_log == "json" else None
    observer = Observer(runtime.recorder, access_log)
    app.extensions[EXTENSION] = Served(runtime, fast_path, observer)
    names = edge.served_names(settings.allowed_hosts, settings.base_url)
    app.wsgi_app = pinned_script_name(  # type: ignore[method-assign,assignment]  # Flask's way
        observe_middleware(
            app.wsgi_app,
            observer,
            edge.checking_hosts(names, not settings.base_url, fast_path.lookup),
        ),
        lambda: settings.base_url,
    )
    return app


class _InOrderJSON(DefaultJSONProvider):
    """Keys in the order written: /healthz and /stats.json read as documented."""

    sort_keys = False


def index_now(target: Target, reader: Any) -> None:
    """Update the index here, or wait while another process that writes it finishes."""
    if not target.root.is_dir():
        raise CorpusError(f"corpus directory {target.root} does not exist or is not a directory")
    if update(target) is not None:
        return
    deadline = time.monotonic() + WAIT_FOR_OTHER_WRITER_SECONDS
    while True:
        try:
            reader.view()
            return
        except NotReady:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def configure_logging(level: str) -> None:
    logger = logging.getLogger("feeds")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)

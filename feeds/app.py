"""`create_app()`: read settings, load the corpus, wire the parts together."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from feeds.fastpath import fast_path_middleware
from feeds.settings import load_settings
from feeds.site import load_site
from feeds.web import blueprint


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    settings = load_settings(overrides)
    configure_logging(settings["LOG_LEVEL"])
    app = Flask(__name__)
    app.json.sort_keys = False
    app.extensions["feeds"] = load_site(settings)
    app.register_blueprint(blueprint)
    app.wsgi_app = fast_path_middleware(app.wsgi_app, lambda: app.extensions["feeds"].fast_path)
    return app


def configure_logging(level: str) -> None:
    logger = logging.getLogger("feeds")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)

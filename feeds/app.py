"""`create_app()`: read settings, load the corpus, wire the parts together."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from feeds.fastpath import fast_path_middleware
from feeds.origin import pinned_script_name
from feeds.pages import blueprint as pages_blueprint
from feeds.settings import load_settings
from feeds.site import Site, load_site
from feeds.web import blueprint
from feeds.websub.delivery import notify
from feeds.websub.hub import blueprint as websub_blueprint

log = logging.getLogger("feeds.app")


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    settings = load_settings(overrides)
    configure_logging(settings["LOG_LEVEL"])
    app = Flask(__name__)
    app.json.sort_keys = False
    app.config["FEEDS_OVERRIDES"] = dict(overrides or {})
    app.extensions["feeds"] = load_site(settings)
    app.register_blueprint(blueprint)
    app.register_blueprint(pages_blueprint)
    app.register_blueprint(websub_blueprint)
    app.wsgi_app = pinned_script_name(
        fast_path_middleware(app.wsgi_app, lambda: app.extensions["feeds"].fast_path),
        lambda: app.extensions["feeds"].settings["BASE_URL"],
    )
    return app


def reload_site(app: Flask) -> bool:
    """Load the corpus again beside the one being served, then swap the reference.

    Requests in flight keep the site they started with. If the new corpus cannot be
    loaded, or holds no servable document, the old one stays and the failure is logged.
    """
    old: Site = app.extensions["feeds"]
    try:
        new = load_site(load_settings(app.config["FEEDS_OVERRIDES"]))
    except Exception:  # whatever went wrong, keep serving what we have
        log.exception("reload failed; still serving corpus %s", old.catalog.version[:12])
        return False
    if not new.catalog.articles:
        log.error(
            "reload refused: the new corpus has no servable document (%s); still serving corpus %s",
            new.report.as_dict(),
            old.catalog.version[:12],
        )
        return False
    app.extensions["feeds"] = new
    log.info(
        "reloaded: corpus %s -> %s, %d articles",
        old.catalog.version[:12],
        new.catalog.version[:12],
        len(new.catalog.articles),
    )
    try:  # push changed feeds; WebSub trouble must never undo a reload
        notify(old, new)
    except Exception:
        log.exception("websub: could not queue deliveries for this reload")
    return True


def configure_logging(level: str) -> None:
    logger = logging.getLogger("feeds")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)

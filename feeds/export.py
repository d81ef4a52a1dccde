"""A static copy of the whole site, laid out by URL path, for nginx, a CDN or object storage.

Every file holds the exact bytes the server sends for that URL (it is fetched through
the app itself), so a feed read from the export is byte-identical to the live one.
Each file gets a precompressed `.gz` sibling for nginx's `gzip_static`.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

from flask import Flask

from feeds.pages import ASSETS
from feeds.render import FORMATS
from feeds.selection import all_selections
from feeds.site import Site

# Query strings cannot be files: OPML variants go to their own paths, which the nginx
# configuration in config/nginx-export.conf maps `/feeds.opml?format=X` onto.
OPML_FILES = {"rss": "/opml/rss.opml", "atom": "/opml/atom.opml", "json": "/opml/json.opml"}


def export_paths(site: Site) -> Iterator[tuple[str, str]]:
    """(URL to fetch, file path to write) for everything the site serves."""
    yield "/", "/index.html"
    for name in ASSETS:
        yield f"/{name}", f"/{name}"
    yield "/feeds.opml", "/feeds.opml"
    for extension, path in OPML_FILES.items():
        yield f"/feeds.opml?format={extension}", path
    titles = (site.settings["SITE_TITLE"], site.settings["SITE_DESCRIPTION"])
    for selection in all_selections(site.catalog, *titles):
        if selection.kind != "all":
            yield selection.page_path, f"{selection.page_path}/index.html"
        pages = site.archive(selection).pages
        for extension in FORMATS:
            for page in (None, *range(1, pages + 1)):
                path = selection.feed_path(extension, page)
                yield path, path


def export_site(app: Flask, directory: Path) -> int:
    """Write every URL's bytes (and a .gz sibling) under directory; returns the file count."""
    site: Site = app.extensions["feeds"]
    if not site.settings["BASE_URL"]:
        raise ValueError("set FEEDS_BASE_URL: an export has no request to take its origin from")
    client = app.test_client()
    written = 0
    for url, file_path in export_paths(site):
        response = client.get(url, headers={"Accept-Encoding": "identity"})
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        target = directory / file_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        body = response.get_data()
        target.write_bytes(body)
        target.with_name(target.name + ".gz").write_bytes(gzip.compress(body, 9, mtime=0))
        written += 1
    return written

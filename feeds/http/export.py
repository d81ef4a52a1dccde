"""A static copy of the whole site, laid out by URL path, for nginx, a CDN or object storage.

Every file holds the exact bytes the server sends for that URL (it is fetched through
the app itself), so a feed read from the export is byte-identical to the live one.
Each file gets a precompressed `.gz` sibling for nginx's `gzip_static`.

The tree is built in a new private folder beside the target and renamed into place only
when complete: a failed export leaves the old tree as it was and removes the half-built
one, no stale file of an older export survives, and no file is written through a link,
since every file is created, never opened for writing if something is already there.
"""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from flask import Flask

from feeds.http.pages import ASSETS
from feeds.http.served import served
from feeds.publish.selection import all_selections
from feeds.render import FORMATS
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
    titles = (site.settings.site_title, site.settings.site_description)
    for selection in all_selections(site.catalog, *titles):
        if selection.kind != "all":
            yield selection.page_path, f"{selection.page_path}/index.html"
        pages = site.archive(selection).pages
        for extension in FORMATS:
            for page in (None, *range(1, pages + 1)):
                path = selection.feed_path(extension, page)
                yield path, path


def export_site(app: Flask, directory: Path) -> int:
    """Build every URL's bytes (and a .gz sibling) beside directory, then swap it in.

    Returns the file count. Whatever fails, the old tree stays and the new one is removed.
    """
    site = served(app).runtime.site
    if not site.settings.base_url:
        raise ValueError("set FEEDS_BASE_URL: an export has no request to take its origin from")
    target = Path(os.path.abspath(directory))
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ValueError(f"{target} is not a directory; an export only replaces a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the export from the web server
        written = write_tree(app, site, staging)
        swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def write_tree(app: Flask, site: Site, root: Path) -> int:
    """Write every URL's bytes under root, a new empty folder; returns the file count."""
    client = app.test_client()
    written = 0
    for url, file_path in export_paths(site):
        response = client.get(url, headers={"Accept-Encoding": "identity"})
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        target = root / file_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        body = response.get_data()
        create_file(target, body)
        create_file(target.with_name(target.name + ".gz"), gzip.compress(body, 9, mtime=0))
        written += 1
    return written


def create_file(path: Path, data: bytes) -> None:
    """Create path with data; anything already there (a file, a folder, a link) is an error.

    Two URLs mapped to one file would otherwise overwrite each other without a word.
    """
    try:
        with path.open("xb") as handle:
            handle.write(data)
    except FileExistsError:
        raise RuntimeError(f"two exported URLs need the same file {path}") from None


def swap_in(new: Path, target: Path) -> None:
    """Rename the finished tree to target; an existing target is moved aside, then deleted.

    Two renames in one folder: a reader sees the old tree or the new one, apart from the
    instant between them when there is none. A failed second rename puts the old back.
    """
    if not target.exists():
        new.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old)  # removes links inside, never what they point to

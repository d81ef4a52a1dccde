"""The `feeds` command: serve, check a corpus, list feed URLs, render one feed.

Built on click, which Flask already brings, so `--help` works the Flask way.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click
import psycopg

from feeds.app import configure_logging, create_app
from feeds.corpus import LoadOptions, LoadReport, load_corpus, scan
from feeds.http.export import export_site
from feeds.http.served import served
from feeds.index import indexer
from feeds.index.indexer import Target, building_progress, served_file
from feeds.index.reader import index_report
from feeds.index.schema import open_reader
from feeds.postgres.database import Database, NewerSchema
from feeds.publish.selection import all_selections
from feeds.render import FORMATS
from feeds.server.follow import follow as follow_corpus
from feeds.settings import Settings, SettingsError, deployment_key, load_settings

REBUILD_POLL_SECONDS = 1.0


@click.group(help="A feed server for a corpus of article documents.")
def main() -> None:
    """The command group; each subcommand documents itself."""


@main.command(help="Run the development server (use the Procfile's gunicorn in production).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    create_app().run(host=host, port=port)


@main.command(help="Bring this deployment's PostgreSQL schema (FEEDS_DATABASE_URL) forward.")
def migrate() -> None:
    """What a host also does when it first opens the database: for a deploy's own step."""
    # Alembic and SQLAlchemy take seconds to import: only this command loads them.
    from feeds.postgres.migrate import upgrade  # noqa: PLC0415

    settings = _settings()
    if not settings.database_url:
        raise click.ClickException("FEEDS_DATABASE_URL is not set: nothing to migrate")
    key = deployment_key(settings)
    database = Database(settings.database_url, key, settings.database_timeout)
    try:
        revisions = upgrade(database)
    except (psycopg.Error, NewerSchema) as error:
        raise click.ClickException(str(error)) from error
    print(f"schema {database.schema}: revision {', '.join(revisions)}")


@main.command(help="Load a corpus and print what was skipped and why; exit 1 if anything was.")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def check(directory: Path | None) -> None:
    settings = _settings()
    root = directory or Path(settings.corpus_dir)
    if not root.is_dir():
        raise click.ClickException(f"{root} is not a directory")
    options = LoadOptions.from_settings(settings)
    total = sum(1 for _ in scan(root))
    with _progress("checking") as advance:
        report = load_corpus(root, options, lambda done: advance(done, total)).report
        advance(report.files, total)
    print_report(report)
    sys.exit(1 if report.skipped else 0)


@main.command("index", help="Build or update the corpus index without serving, then report.")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--follow", is_flag=True, help="Keep it current (the server's indexer process).")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Build the index anew beside the served one, which serves until the new one does.",
)
def index(directory: Path | None, follow: bool, rebuild: bool) -> None:
    settings = _settings()
    if directory is not None:
        settings = replace(settings, corpus_dir=str(directory))
    configure_logging(settings.log_level)
    if follow:
        follow_corpus(settings)
        return
    target = Target.from_settings(settings)
    if not target.root.is_dir():
        raise click.ClickException(f"{target.root} is not a directory")
    try:
        with _progress("rebuilding" if rebuild else "indexing") as advance:
            changes = indexer.update(target, advance, rebuild=rebuild)
            if changes is None and rebuild:
                _ask_the_writer_to_rebuild(target, advance)
                return
    except (OSError, sqlite3.Error) as error:  # a read-only or full data directory
        raise click.ClickException(indexer.write_failure(target.path, error)) from None
    if changes is None:
        raise click.ClickException(f"{target.path} is being written by another process")
    db = open_reader(target.path)
    try:
        report = index_report(db)
    finally:
        db.close()
    report.seconds = changes.seconds
    print_report(report)
    click.echo(f"index: {served_file(target)} ({changes.parsed} parsed, {changes.removed} removed)")


def _ask_the_writer_to_rebuild(target: Target, advance: Callable[[int, int], None]) -> None:
    """A server's indexer writes the index: it builds the new one; follow its progress."""
    before = served_file(target)
    target.rebuild_request.touch()
    click.echo(f"asked the running indexer to rebuild {target.path}", err=True)
    while served_file(target) == before:
        indexed, files = building_progress(target)
        if files:
            advance(indexed, files)
        time.sleep(REBUILD_POLL_SECONDS)
    click.echo(f"index: {served_file(target)} (rebuilt and served)")


@main.command("list", help="Print the URL of every feed, in every format.")
def list_feeds() -> None:
    site = served(create_app()).runtime.site
    origin = site.settings.base_url or "http://127.0.0.1:8000"
    titles = (site.settings.site_title, site.settings.site_description)
    for selection in all_selections(site.catalog, *titles):
        for extension in FORMATS:
            click.echo(f"{origin}{selection.feed_path(extension)}")


@main.command(help="Print one feed, exactly as the server sends it, e.g. /feeds/all.rss.")
@click.argument("url_path")
def render(url_path: str) -> None:
    response = create_app().test_client().get(url_path)
    if response.status_code != 200:
        raise click.ClickException(response.get_data(as_text=True).strip())
    sys.stdout.buffer.write(response.get_data())


@main.command("export", help="Write every feed, archive, page and the OPML as static files.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export(directory: Path) -> None:
    try:
        written = export_site(create_app(), directory)
    except (ValueError, RuntimeError, OSError) as error:  # the old export is still in place
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {written} files (and their .gz siblings) to {directory}")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """`advance(done, total)`: a progress bar on a terminal, plain lines when piped."""
    if not sys.stderr.isatty():
        yield lambda done, total: click.echo(f"{label}: {done} of {total}", err=True)
        return
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:
        seen = [0]

        def advance(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - seen[0])
            seen[0] = done

        yield advance


def print_report(report: LoadReport) -> None:
    for skip in report.skipped:
        click.echo(f"skipped  {skip.path}: {skip.reason}")
    for skip in report.filtered:
        click.echo(f"filtered {skip.path}: {skip.reason}")
    for path, note in report.repairs:
        click.echo(f"repaired {path}: {note}")
    summary = report.as_dict()
    click.echo(
        f"{summary['files']} files: {summary['loaded']} loaded, {summary['skipped']} skipped, "
        f"{summary['filtered']} filtered, {summary['repaired']} repairs, "
        f"in {summary['seconds']}s"
    )


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        raise click.ClickException(str(error)) from error

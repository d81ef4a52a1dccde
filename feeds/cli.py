"""The `feeds` command: serve, check a corpus, list feed URLs, render one feed.

Built on click, which Flask already brings, so `--help` works the Flask way.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from feeds.app import create_app
from feeds.corpus import LoadOptions, LoadReport, find_documents, load_corpus
from feeds.export import export_site
from feeds.render import FORMATS
from feeds.selection import all_selections
from feeds.settings import SettingsError, load_settings


@click.group(help="A feed server for a corpus of article documents.")
def main() -> None:
    """The command group; each subcommand documents itself."""


@main.command(help="Run the development server (use the Procfile's gunicorn in production).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    create_app().run(host=host, port=port)


@main.command(help="Load a corpus and print what was skipped and why; exit 1 if anything was.")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def check(directory: Path | None) -> None:
    settings = _settings()
    root = directory or Path(settings["CORPUS_DIR"])
    if not root.is_dir():
        raise click.ClickException(f"{root} is not a directory")
    # A check reads every file: a snapshot would only repeat what an earlier load said.
    options = replace(LoadOptions.from_settings(settings), snapshot_dir=None)
    total = sum(1 for _ in find_documents(root))
    if sys.stderr.isatty():
        with click.progressbar(length=total, label="checking", file=sys.stderr) as bar:
            seen = [0]

            def advance(done: int) -> None:
                bar.update(done - seen[0])
                seen[0] = done

            report = load_corpus(root, options, advance).report
            advance(report.files)
    else:
        report = load_corpus(
            root, options, lambda done: click.echo(f"checked {done} of {total}", err=True)
        ).report
    print_report(report)
    sys.exit(1 if report.skipped else 0)


@main.command("list", help="Print the URL of every feed, in every format.")
def list_feeds() -> None:
    site = create_app().extensions["feeds"]
    origin = site.settings["BASE_URL"] or "http://127.0.0.1:8000"
    titles = (site.settings["SITE_TITLE"], site.settings["SITE_DESCRIPTION"])
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


def _settings() -> dict:
    try:
        return load_settings()
    except SettingsError as error:
        raise click.ClickException(str(error)) from error

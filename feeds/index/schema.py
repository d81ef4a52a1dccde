"""Where an index lives, its tables, and how writers and readers open it.

An index holds two kinds of rows. *Derived* rows (documents, articles, topics, words,
feeds, names) can be rebuilt from the files at any time. *History* (which sealed archive
page holds which copy of which article, when each page was sealed, each feed's clock,
edit times, retired copies) was served and promised: it is never rebuilt, only carried
into every new index (`feeds.index.history`).

Workers read the index through a link, `index-<corpus key>.sqlite`, that names the
served file, `index-<corpus key>-<identity>-<build>.sqlite`. The identity is the corpus
directory, the load options, `PARSER_VERSION` and `SCHEMA_VERSION`: explicit numbers
bumped when what a file becomes or how it is stored changes (the golden parse test
guards the first), so a release that changes neither opens the same index, and one that
does builds the next one beside the served one, which serves meanwhile. A file that
SQLite cannot read, or whose schema holds anything this one does not create
(`feeds.sqlite.verify_schema`), is set aside.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

from feeds.corpus import PARSER_VERSION
from feeds.settings import corpus_key
from feeds.sqlite import open_file, transaction

log = logging.getLogger("feeds.index")

SCHEMA_VERSION = "4"
BUSY_TIMEOUT_MS = 5000
WAL_LIMIT_BYTES = 16 * 1024 * 1024
COMPANIONS = ("-wal", "-shm")  # the files SQLite keeps beside a database in WAL mode
READER_CACHE_KIB = 16 * 1024  # per worker; the OS page cache is shared on top of it
ALL = ("all", "")  # the (kind, slug) of the feed of every article
OPEN = 2**31 - 1  # the `page` of a feed entry not yet sealed into an archive page

ENTRIES_BY_VERSION = "CREATE INDEX IF NOT EXISTS entries_by_version ON entries (version)"
TABLES = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    read_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('article', 'skipped', 'filtered', 'scheduled')),
    reason TEXT,
    repairs TEXT NOT NULL DEFAULT '[]',
    article_id TEXT,
    quality REAL,
    due INTEGER  -- a scheduled document's publication time (epoch microseconds)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_due ON documents (due) WHERE due IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_by_article ON documents (article_id)
    WHERE article_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_by_outcome ON documents (outcome);
-- `version` numbers each served copy of an article and is never reused, so an archive
-- entry names the exact copy it was sealed with.
CREATE TABLE IF NOT EXISTS articles (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    digest TEXT NOT NULL,
    quality REAL NOT NULL,
    published INTEGER NOT NULL,
    provider TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_newest ON articles (published DESC, id);
CREATE INDEX IF NOT EXISTS articles_by_provider ON articles (provider, published DESC, id);
CREATE TABLE IF NOT EXISTS article_topics (
    topic TEXT NOT NULL,
    published INTEGER NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (topic, published DESC, id)
) WITHOUT ROWID;
-- Words of each served article's title and excerpt, by the article's rowid; contentless,
-- so the text is stored once (in articles.data) and a withdrawal names the words it removes.
CREATE VIRTUAL TABLE IF NOT EXISTS article_words USING fts5 (
    title, excerpt, content = '', tokenize = 'unicode61 remove_diacritics 2'
);
-- Each feed's entries in the order its documents show them (RFC 5005): the current
-- document holds the OPEN entries, archive page n those sealed into it (1 is the oldest).
-- Sealed entries never change: an article withdrawn later keeps its sealed entries, which
-- then read its copy in `retired`, and leaves the current document (`retired` = 1).
CREATE TABLE IF NOT EXISTS entries (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    page INTEGER NOT NULL,
    published INTEGER NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, slug, page DESC, published DESC, id)
) WITHOUT ROWID;
{ENTRIES_BY_VERSION};
CREATE TABLE IF NOT EXISTS retired (version INTEGER PRIMARY KEY, data TEXT NOT NULL);
-- The last copy served of each withdrawn article: served again, it is an edit if its
-- content differs, and keeps its edit time if not (a rename, a file moved away and back).
CREATE TABLE IF NOT EXISTS withdrawn (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    updated INTEGER
) WITHOUT ROWID;
-- When each archive page was sealed (epoch seconds): its Last-Modified, forever.
CREATE TABLE IF NOT EXISTS archive_pages (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    page INTEGER NOT NULL,
    sealed INTEGER NOT NULL,
    PRIMARY KEY (kind, slug, page)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feeds (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    domain TEXT,
    count INTEGER NOT NULL,
    open INTEGER NOT NULL DEFAULT 0,  -- entries in the current document only (not sealed)
    newest INTEGER,
    digest TEXT NOT NULL,
    PRIMARY KEY (kind, slug)
) WITHOUT ROWID;
-- When each feed last changed (epoch seconds) and how many archive pages it has sealed:
-- never move back, never deleted, so a feed that empties and fills again keeps moving its
-- Last-Modified forward and numbering its pages on.
CREATE TABLE IF NOT EXISTS feed_clock (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    changed INTEGER NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, slug)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS names (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    uses INTEGER NOT NULL,
    PRIMARY KEY (kind, slug, name)
) WITHOUT ROWID;
"""

# The writer's scratch: each feed a transaction touched, with its digest before it.
WRITER_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS touched (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    before TEXT NOT NULL,
    PRIMARY KEY (kind, slug)
) WITHOUT ROWID;
"""

# An index file: its corpus, its identity and its build number (none before builds were
# numbered, when the identity hashed the source code).
BUILT = re.compile(
    r"index-(?P<corpus>[0-9a-f]{16})-(?P<identity>[0-9a-f]{16})(?:-(?P<build>[0-9]+))?\.sqlite"
)


class DamagedIndex(RuntimeError):
    """The file is not a usable index of this corpus; it is set aside."""


class RefusedIndex(sqlite3.DatabaseError):
    """The served index is not this release's to write (a newer release's, another
    corpus's): never touched, never discarded; the writer says why and tries again later."""


class NewerIndex(RefusedIndex):
    """Written by a newer release."""


class ForeignIndex(RefusedIndex):
    """Written for another corpus directory."""


def served_link(data_dir: Path, corpus: Path) -> Path:
    """The name workers open: a link to the served index file of this corpus."""
    return data_dir / f"index-{corpus_key(corpus)}.sqlite"


def identity_key(corpus: Path, options_key: str) -> str:
    """16 hex digits: what decides the derived rows of an index, and nothing else."""
    identity = "\0".join(
        (os.path.realpath(corpus), options_key, str(PARSER_VERSION), SCHEMA_VERSION)
    )
    return hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def build_path(data_dir: Path, corpus: Path, options_key: str, build: int) -> Path:
    """Build number `build` of this corpus's index under these options."""
    key = f"{corpus_key(corpus)}-{identity_key(corpus, options_key)}"
    return data_dir / f"index-{key}-{build}.sqlite"


def identity(corpus: Path, options_key: str) -> dict[str, str]:
    """The meta rows that say whose index a file is."""
    return {
        "schema": SCHEMA_VERSION,
        "parser": str(PARSER_VERSION),
        "corpus": os.path.realpath(corpus),
        "options": options_key,
    }


def newer_release(found: dict[str, str]) -> bool:
    """Whether meta rows were written by a release with a newer schema than this one."""
    schema = found.get("schema", "")
    return schema.isdigit() and int(schema) > int(SCHEMA_VERSION)


def open_writer(path: Path, expected: dict[str, str]) -> sqlite3.Connection:
    """The writer's connection; a damaged or foreign file is moved aside and a new one made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _writer(path, expected)
    except RefusedIndex:
        raise
    except (sqlite3.DatabaseError, DamagedIndex) as error:
        aside = set_aside(path)
        reason = getattr(error, "reason", error)
        log.error("index %s is unusable (%s); moved to %s and rebuilding", path, reason, aside)
        return _writer(path, expected)


def open_existing(path: Path, expected: dict[str, str] | None = None) -> sqlite3.Connection:
    """A writer's connection to the served index (of any identity without `expected`):
    raises sqlite3.DatabaseError or DamagedIndex, and leaves the file where it is."""
    return _writer(path, expected)


def _writer(path: Path, expected: dict[str, str] | None) -> sqlite3.Connection:
    connection = open_file(path, TABLES, BUSY_TIMEOUT_MS / 1000)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        # A checkpointed WAL shrinks back to this: a served index and a build beside it
        # stay near twice one index on disk, not twice plus each WAL's high-water mark.
        connection.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        found = _meta_rows(connection)
        if newer_release(found):
            raise NewerIndex(
                f"{path} was written by a newer release (schema {found['schema']}, this"
                f" release reads {SCHEMA_VERSION}): left as it is; run that release"
            )
        connection.executescript(TABLES)
        connection.executescript(WRITER_TABLES)
        if expected is None:
            if found.get("state") != "ready":
                raise DamagedIndex("not a complete index")
        elif not found:
            with transaction(connection):
                connection.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [*expected.items(), ("state", "building")],
                )
        elif any(found.get(key) != value for key, value in expected.items()):
            raise DamagedIndex("written for another corpus, options or parser")
        return connection
    except BaseException:
        connection.close()
        raise


def _meta_rows(connection: sqlite3.Connection) -> dict[str, str]:
    """The meta rows, none in a file just made."""
    listed = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    return dict(connection.execute("SELECT key, value FROM meta")) if listed else {}


def open_reader(path: Path) -> sqlite3.Connection:
    """A worker's read-only connection (raises sqlite3.Error while no index exists yet)."""
    if not path.is_file():
        raise sqlite3.OperationalError("no index yet")
    connection = open_file(path, TABLES, BUSY_TIMEOUT_MS / 1000, read_only=True)
    connection.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
    return connection


def set_aside(path: Path) -> Path:
    """Move a damaged index (and its WAL files) out of the way under a name no other copy
    has (`<name>.damaged-<ns>`): evidence is never overwritten, and the older copies are
    pruned by `feeds.index.retention`. The WAL files go first: a crash halfway leaves the
    database without its WAL (an older, whole state), never a new database beside a WAL
    that is not its own."""
    stamp = time.time_ns()
    while any(Path(f"{path}.damaged-{stamp}{suffix}").exists() for suffix in ("", *COMPANIONS)):
        stamp += 1
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in (*COMPANIONS, ""):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{aside}{suffix}")
    return aside

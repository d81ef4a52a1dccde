"""Custom selections: any topics and providers, words and a quality floor, as one query.

A `Filter` holds slugs and plain search text, never SQL: every value is a bound
parameter, and the search text is cut into words and quoted phrases that are each
passed to FTS5 as a quoted string, so `NEAR`, `*`, `-`, `:` or parentheses are only
text to it. Only the first `limit` articles are read; their ids and content hashes are
the selection's digest, so the digest changes exactly when the document would.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from feeds.index.records import EPOCH, article_from_json
from feeds.model import Article

# A quoted phrase, or a run of anything but spaces and quotes; an unclosed quote is dropped.
_TERM = re.compile(r'"([^"]*)"|([^\s"]+)')
_WORD_CHARACTER = re.compile(r"[^\W_]")


@dataclass(frozen=True, slots=True)
class Filter:
    """Which articles a custom feed holds; each part that is set must hold (AND)."""

    topics: tuple[str, ...] = ()  # any of them
    providers: tuple[str, ...] = ()  # any of them
    exclude_topics: tuple[str, ...] = ()
    exclude_providers: tuple[str, ...] = ()
    words: str = ""  # every word and "quoted phrase" in the title or excerpt
    min_quality: float | None = None

    def __bool__(self) -> bool:
        return any(
            (
                self.topics,
                self.providers,
                self.exclude_topics,
                self.exclude_providers,
                self.words,
                self.min_quality is not None,
            )
        )


def terms(words: str) -> list[str]:
    """The words and quoted phrases of a search that hold something to search for."""
    found = (m[1] if m[1] is not None else m[2] for m in _TERM.finditer(words))
    return [term for term in found if _WORD_CHARACTER.search(term)]


def match_expression(words: str) -> str:
    """An FTS5 query where every term must match: each is a quoted string, never syntax."""
    return " ".join(f'"{term}"' for term in terms(words))


# The most rows of a topic or provider whose words are checked one row at a time (a
# check is 0.25 ms at 1,000,000 documents).
_WORD_CHECKS = 300
# Fewer matches than this, and the words lead: their matches are read and sorted by date
# (listing the 65,000 matches of two common words at 1,000,000 took 80 ms, sorting them
# 160 ms more); more, and the words are a list each row of the lead is looked up in.
_FEW_MATCHES = 5_000


# How long a custom feed's query may run. SQLite holds a gevent worker for as long as a
# query runs, so every other request of the worker waits: some filters read a whole
# topic to find few or none (`topic=ai&min_quality=100.1`: 3.5-4.3 s at 1,000,000).
QUERY_SECONDS = 1.0
_CHECK_STEPS = 10_000  # SQLite instructions between looks at the clock


class CostlyFilter(RuntimeError):
    """A filter whose query ran past `QUERY_SECONDS`, and was stopped."""


@contextmanager
def _bounded(db: sqlite3.Connection, seconds: float) -> Iterator[None]:
    """Queries on `db` that stop with CostlyFilter once `seconds` have passed."""
    deadline = time.monotonic() + seconds
    db.set_progress_handler(lambda: time.monotonic() > deadline, _CHECK_STEPS)
    try:
        yield
    except sqlite3.OperationalError as error:
        if str(error) != "interrupted":
            raise
        raise CostlyFilter(f"selecting its articles took over {seconds:g} s") from None
    finally:
        db.set_progress_handler(None, 0)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which part of a filter a query reads first, and how it checks the words."""

    lead: str  # "topics", "providers", "words" or "newest" (every article by date)
    words: str  # "lead", "each" (a full-text lookup per row), "listed", or "" for none


def _plan(db: sqlite3.Connection, selected: Filter, expression: str) -> _Plan:
    """The smaller of the selected topics and providers (counted by their feeds) leads,
    in its own date order, unless the words match fewer articles; with neither, every
    article by date. SQLite's own choice (any index on an equality) read every row of a
    topic of 270,000 to keep a small provider's few: 1.5 s at 1,000,000 documents."""
    sizes: dict[str, int] = {}
    for kind, slugs in (("topics", selected.topics), ("providers", selected.providers)):
        if slugs:
            marks = ", ".join("?" * len(slugs))
            (size,) = db.execute(
                f"SELECT coalesce(sum(count), 0) FROM feeds WHERE kind = ? AND slug IN ({marks})",
                (kind, *slugs),
            ).fetchone()
            sizes[kind] = int(size)
    lead = min(sizes, key=lambda kind: (sizes[kind], kind)) if sizes else "newest"
    if not expression:
        return _Plan(lead, "")
    if sizes and sizes[lead] <= _WORD_CHECKS:
        return _Plan(lead, "each")
    (matches,) = db.execute(
        "SELECT count(*) FROM (SELECT 1 FROM article_words WHERE article_words MATCH ? LIMIT ?)",
        (expression, _FEW_MATCHES),
    ).fetchone()
    return _Plan("words", "lead") if matches < _FEW_MATCHES else _Plan(lead, "listed")


def _excludes_all(wanted: tuple[str, ...], excluded: tuple[str, ...]) -> bool:
    return bool(wanted) and set(wanted) <= set(excluded)


_MATCHES = "a.rowid IN (SELECT rowid FROM article_words WHERE article_words MATCH ?)"
_WORDS = {
    "lead": _MATCHES,
    "each": "EXISTS (SELECT 1 FROM article_words w"
    " WHERE article_words MATCH ? AND w.rowid = a.rowid)",
    "listed": f"+{_MATCHES}",  # the same list, but SQLite may not lead with it
}


def _newest(db: sqlite3.Connection, selected: Filter, limit: int, columns: str) -> list[tuple]:
    """`columns` of the first `limit` articles of the filter, newest first (ties by id).

    The part `_plan` chooses leads (one topic, or the providers, in the order their rows
    are kept, so the query stops at `limit`); every other part is checked per row through
    a primary key or a list made once (`+` keeps SQLite from leading with its index)."""
    expression = match_expression(selected.words)
    if selected.words and not expression:
        return []  # nothing to search for matches nothing (FTS5 refuses "")
    if _excludes_all(selected.topics, selected.exclude_topics) or _excludes_all(
        selected.providers, selected.exclude_providers
    ):
        return []  # answered at once: the query would read the whole topic to find none
    plan = _plan(db, selected, expression)
    clauses: list[str] = []
    parameters: list[object] = []

    def marks(values: tuple[str, ...]) -> str:
        parameters.extend(values)
        return ", ".join("?" * len(values))

    def in_topics(values: tuple[str, ...]) -> str:
        return (
            "EXISTS (SELECT 1 FROM article_topics t WHERE t.topic IN"
            f" ({marks(values)}) AND t.published = a.published AND t.id = a.id)"
        )

    source = "articles a"
    order = "a.published DESC, a.id ASC"
    if plan.lead == "topics" and len(selected.topics) == 1:
        # One topic's rows are kept newest first: read in that order, stop at `limit`.
        source = "article_topics d JOIN articles a ON a.id = d.id"
        clauses.append(f"d.topic = {marks(selected.topics)}")
        order = "d.published DESC, d.id ASC"
    elif plan.lead == "topics":
        topics = marks(selected.topics)
        clauses.append(f"a.id IN (SELECT id FROM article_topics WHERE topic IN ({topics}))")
    elif selected.topics:
        clauses.append(in_topics(selected.topics))
    if selected.providers:
        lead = "" if plan.lead == "providers" else "+"
        clauses.append(f"{lead}a.provider IN ({marks(selected.providers)})")
    if selected.exclude_topics:
        clauses.append(f"NOT {in_topics(selected.exclude_topics)}")
    if selected.exclude_providers:
        clauses.append(f"+a.provider NOT IN ({marks(selected.exclude_providers)})")
    if plan.words:
        clauses.append(_WORDS[plan.words])
        parameters.append(expression)
    if selected.min_quality is not None:
        clauses.append("a.quality >= ?")
        parameters.append(selected.min_quality)
    where = " AND ".join(clauses) or "1"
    return db.execute(
        f"SELECT {columns} FROM {source} WHERE {where} ORDER BY {order} LIMIT ?",
        (*parameters, limit),
    ).fetchall()


class CustomArticles(tuple[Article, ...]):
    """The newest articles of a filter, as many as one document shows, with their digest.

    `changed` (its Last-Modified) is when any article last changed: a custom document can
    only change then, and that time only moves forward.
    """

    digest: str
    changed: datetime

    def __new__(
        cls, articles: tuple[Article, ...], digest: str, changed: datetime = EPOCH
    ) -> CustomArticles:
        made = super().__new__(cls, articles)
        made.digest = digest
        made.changed = changed
        return made


@dataclass(frozen=True, slots=True)
class Ranked:
    """One article of a filter's document: what orders it and what its digest covers."""

    version: int
    id: str
    digest: str
    published: int  # epoch microseconds


def newest_first(row: Ranked) -> tuple[int, str]:
    """Every feed's order as a sort key: newest first, ties by id."""
    return (-row.published, row.id)


def ranked(db: sqlite3.Connection, selected: Filter, limit: int) -> list[Ranked]:
    """The first `limit` articles of the filter, newest first, without their data."""
    rows = _newest(db, selected, limit, "a.version, a.id, a.digest, a.published")
    return [Ranked(*row) for row in rows]


def digest_of(rows: Iterable[tuple[str, str]]) -> str:
    """A document's digest from its articles' (id, content digest), in order."""
    digest = hashlib.sha256()
    for article_id, content in rows:
        digest.update(f"{article_id}\0{content}\n".encode())
    return digest.hexdigest()


def matching(db: sqlite3.Connection, selected: Filter, limit: int) -> CustomArticles:
    """The first `limit` articles of the filter, newest first (ties by id, as every feed);
    CostlyFilter if selecting them takes over `QUERY_SECONDS`."""
    # Only the shown rows' data is read: sorting thousands of matches with their JSON
    # took twice as long.
    with _bounded(db, QUERY_SECONDS):
        order = [rowid for (rowid,) in _newest(db, selected, limit, "a.rowid")]
    marks = ", ".join("?" * len(order))
    found = {
        rowid: (article_id, content, data)
        for rowid, article_id, content, data in db.execute(
            f"SELECT rowid, id, digest, data FROM articles WHERE rowid IN ({marks})", order
        )
    }
    rows = [found[rowid] for rowid in order]
    digest = digest_of((article_id, content) for article_id, content, _data in rows)
    return CustomArticles(tuple(article_from_json(data) for _, _, data in rows), digest)


@dataclass(frozen=True, slots=True)
class Seen:
    """An article as an in-memory match sees it (`provider` and `quality` are its row's
    values, as `_newest` reads them)."""

    topics: frozenset[str]
    provider: str
    quality: float
    words: frozenset[str]

    @classmethod
    def of(cls, article: Article, provider: str, quality: float) -> Seen:
        words = _folded(f"{article.title} {article.excerpt}")
        return cls(frozenset(topic.slug for topic in article.topics), provider, quality, words)


_TOKEN = re.compile(r"[^\W_]+")


def _folded(text: str) -> frozenset[str]:
    """The words of `text` as FTS5's unicode61 tokenizer (remove_diacritics 2) roughly
    sees them: case and diacritics folded, split at anything but letters and digits."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return frozenset(_TOKEN.findall(plain))


@lru_cache(maxsize=65_536)
def _wanted(words: str) -> frozenset[str]:
    return _folded(" ".join(terms(words)))


def may_select(selected: Filter, seen: Seen) -> bool:
    """Whether the filter may hold the article, judged in memory: exact for topics,
    providers and quality; for words, every word of every term must be among the
    article's (a phrase's order is not checked), so it holds whenever FTS5 would match."""
    if selected.topics and seen.topics.isdisjoint(selected.topics):
        return False
    if selected.providers and seen.provider not in selected.providers:
        return False
    if not seen.topics.isdisjoint(selected.exclude_topics):
        return False
    if seen.provider in selected.exclude_providers:
        return False
    if selected.min_quality is not None and seen.quality < selected.min_quality:
        return False
    if not selected.words:
        return True
    wanted = _wanted(selected.words)
    return bool(wanted) and wanted <= seen.words

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
import unicodedata
from collections.abc import Iterable
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


def _where(selected: Filter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    parameters: list[object] = []

    def marks(values: tuple[str, ...]) -> str:
        parameters.extend(values)
        return ", ".join("?" * len(values))

    topic_ids = "SELECT id FROM article_topics WHERE topic IN ({})"
    if selected.topics:
        clauses.append(f"a.id IN ({topic_ids.format(marks(selected.topics))})")
    if selected.providers:
        clauses.append(f"a.provider IN ({marks(selected.providers)})")
    if selected.exclude_topics:
        clauses.append(f"a.id NOT IN ({topic_ids.format(marks(selected.exclude_topics))})")
    if selected.exclude_providers:
        clauses.append(f"a.provider NOT IN ({marks(selected.exclude_providers)})")
    if selected.words:
        expression = match_expression(selected.words)
        if not expression:
            return "0", []  # nothing to search for matches nothing (FTS5 refuses "")
        clauses.append("a.rowid IN (SELECT rowid FROM article_words WHERE article_words MATCH ?)")
        parameters.append(expression)
    if selected.min_quality is not None:
        clauses.append("a.quality >= ?")
        parameters.append(selected.min_quality)
    return " AND ".join(clauses) or "1", parameters


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
    where, parameters = _where(selected)
    rows = db.execute(
        "SELECT a.version, a.id, a.digest, a.published FROM articles a"
        f" WHERE {where} ORDER BY a.published DESC, a.id ASC LIMIT ?",
        (*parameters, limit),
    ).fetchall()
    return [Ranked(*row) for row in rows]


def digest_of(rows: Iterable[tuple[str, str]]) -> str:
    """A document's digest from its articles' (id, content digest), in order."""
    digest = hashlib.sha256()
    for article_id, content in rows:
        digest.update(f"{article_id}\0{content}\n".encode())
    return digest.hexdigest()


def matching(db: sqlite3.Connection, selected: Filter, limit: int) -> CustomArticles:
    """The first `limit` articles of the filter, newest first (ties by id, as every feed)."""
    where, parameters = _where(selected)
    # The matches are ordered by rowid alone and only the shown rows' data is read:
    # sorting thousands of matches with their JSON took twice as long.
    rows = db.execute(
        "SELECT id, digest, data FROM articles WHERE rowid IN ("
        f" SELECT a.rowid FROM articles a WHERE {where}"
        " ORDER BY a.published DESC, a.id ASC LIMIT ?"
        ") ORDER BY published DESC, id ASC",
        (*parameters, limit),
    ).fetchall()
    digest = digest_of((article_id, content) for article_id, content, _data in rows)
    return CustomArticles(tuple(article_from_json(data) for _, _, data in rows), digest)


@dataclass(frozen=True, slots=True)
class Seen:
    """An article as an in-memory match sees it (`provider` and `quality` are its row's
    values, as `_where` reads them)."""

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

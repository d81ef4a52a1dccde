"""Custom feeds: each kind of filter against the articles computed from the documents,
canonical URLs, 4xx for bad input, valid feeds with validators, and bounded memory."""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
import requests
from flask.testing import FlaskClient

from feeds.app import create_app
from feeds.corpus import LoadOptions, load_corpus
from feeds.index import search
from feeds.index.indexer import Target, update
from feeds.index.reader import View
from feeds.index.search import Filter
from feeds.model import Article
from feeds.publish.custom import BadFilter, canonical_query, parse_filter
from feeds.settings import load_settings
from tests.support import CLIENT_ORIGIN, document, index_view, reloaded

EVERYTHING = 100_000
_TOKEN = re.compile(r"[^\W_]+")


@pytest.fixture(scope="module")
def view(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> View:
    return index_view(generated, tmp_path_factory.mktemp("index"))


@pytest.fixture(scope="module")
def newest_first(generated: Path) -> list[Article]:
    loaded = load_corpus(generated, LoadOptions())
    return sorted(loaded.articles, key=lambda a: (-a.published.timestamp(), a.id))


def tokens(text: str) -> list[str]:
    """Words as the index's tokenizer cuts them: letters and digits, no case, no accents."""
    folded = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return _TOKEN.findall(plain)


def holds(article: Article, term: str) -> bool:
    """A word (or a phrase, its words in a row) in the title or in the excerpt."""
    wanted = tokens(term)
    for text in (article.title, article.excerpt):
        words = tokens(text)
        if any(words[i : i + len(wanted)] == wanted for i in range(len(words))):
            return True
    return False


def common_words(articles: list[Article]) -> list[str]:
    counts = Counter(w for a in articles for w in set(tokens(a.title)) if w.isascii())
    return [word for word, count in counts.most_common() if len(word) > 3 and count < 200]


# (search._WORD_CHECKS, search._FEW_MATCHES): which way each filter's words are checked.
WORD_CHECKS = {"listed": (0, 0), "leading": (0, EVERYTHING), "each": (EVERYTHING, 0)}


@pytest.mark.parametrize("words", WORD_CHECKS)
def test_each_kind_of_filter_selects_exactly_the_matching_articles_newest_first(
    generated: Path,
    view: View,
    newest_first: list[Article],
    words: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whichever part leads the query (one topic in its own order, several, providers,
    the words' matches, or every article by date) and however the words are checked
    (see `search._plan`), the same articles."""
    checks, few = WORD_CHECKS[words]
    monkeypatch.setattr(search, "_WORD_CHECKS", checks)
    monkeypatch.setattr(search, "_FEW_MATCHES", few)
    topics = Counter(t.slug for a in newest_first for t in a.topics)
    providers = Counter(a.provider.slug for a in newest_first)
    (t1, _), (t2, _), (t3, _) = topics.most_common(3)
    (p1, _), (p2, _) = providers.most_common(2)
    w1, w2 = common_words(newest_first)[:2]
    title = next(a.title for a in newest_first if len(tokens(a.title)) >= 4)
    phrase = " ".join(tokens(title)[1:3])
    good = {a.id for a in load_corpus(generated, LoadOptions(min_quality=60)).articles}

    def topic_slugs(article: Article) -> set[str]:
        return {t.slug for t in article.topics}

    cases: list[tuple[Filter, Callable[[Article], bool]]] = [
        (Filter(topics=(t2,)), lambda a: t2 in topic_slugs(a)),
        (Filter(providers=(p2,)), lambda a: a.provider.slug == p2),
        (
            Filter(topics=(t1,), providers=(p1,)),
            lambda a: t1 in topic_slugs(a) and a.provider.slug == p1,
        ),
        (
            Filter(topics=(t2,), words=w1, exclude_providers=(p1,)),
            lambda a: t2 in topic_slugs(a) and holds(a, w1) and a.provider.slug != p1,
        ),
        (Filter(topics=(t1, t2)), lambda a: bool(topic_slugs(a) & {t1, t2})),
        (Filter(providers=(p1, p2)), lambda a: a.provider.slug in {p1, p2}),
        (Filter(exclude_topics=(t1,)), lambda a: t1 not in topic_slugs(a)),
        (Filter(exclude_providers=(p1,)), lambda a: a.provider.slug != p1),
        (Filter(words=f"{w1} {w2}"), lambda a: holds(a, w1) and holds(a, w2)),
        (Filter(words=w1), lambda a: holds(a, w1)),
        (Filter(words=f'"{phrase}"'), lambda a: holds(a, phrase)),
        (Filter(min_quality=60), lambda a: a.id in good),
        (
            Filter(topics=(t3,), providers=(p1,), words=w1, min_quality=60),
            lambda a: (
                t3 in topic_slugs(a) and a.provider.slug == p1 and holds(a, w1) and a.id in good
            ),
        ),
        (
            Filter(topics=(t1, t3), exclude_topics=(t2,), exclude_providers=(p2,), words=w2),
            lambda a: (
                bool(topic_slugs(a) & {t1, t3})
                and t2 not in topic_slugs(a)
                and a.provider.slug != p2
                and holds(a, w2)
            ),
        ),
    ]
    for selected, wanted in cases:
        expected = [a for a in newest_first if wanted(a)]
        assert list(view.custom(selected, EVERYTHING)) == expected, selected
        assert 0 < len(expected) < len(newest_first) or selected.topics == (t3,), selected
        assert list(view.custom(selected, 5)) == expected[:5]


@pytest.mark.parametrize(
    "selected",
    [
        Filter(topics=("ai",), exclude_topics=("ai", "robotics")),
        Filter(providers=("nypost.com",), exclude_providers=("nypost.com",), words="robot"),
    ],
)
def test_a_filter_that_excludes_all_it_selects_is_answered_without_a_query(
    tmp_path: Path, corpus: Path, selected: Filter
) -> None:
    """Its query would read every row of the topic (seconds at a million documents, the
    worker frozen meanwhile) to find nothing."""
    settings = load_settings({"CORPUS_DIR": str(corpus), "DATA_DIR": str(tmp_path)})
    target = Target.from_settings(settings)
    update(target)
    db = sqlite3.connect(target.path)
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    assert search.matching(db, selected, 50) == ()
    assert not [sql for sql in statements if "LIMIT" in sql], statements  # no led query


def test_the_digest_follows_the_documents_rows(view: View, newest_first: list[Article]) -> None:
    ((topic, count),) = Counter(t.slug for a in newest_first for t in a.topics).most_common(1)
    assert count > 11
    assert view.custom(Filter(topics=(topic,)), 10).digest == (
        view.custom(Filter(topics=(topic,)), 10).digest
    )
    assert view.custom(Filter(topics=(topic,)), 10).digest != (
        view.custom(Filter(topics=(topic,)), 11).digest
    )
    assert view.custom(Filter(words="zzzzqqq"), 10).digest == (
        view.custom(Filter(words="yyyyqqq"), 10).digest
    )  # both empty: the same document
    assert view.custom(Filter(topics=(topic,), min_quality=101), 10).digest == (
        view.custom(Filter(words="zzzzqqq"), 10).digest
    )


HOSTILE_WORDS = [
    '"',
    '"unbalanced phrase',
    "a * b",
    "NEAR(a b, 2)",
    "-a OR b AND NOT c",
    "(((a)))",
    "title:a",
    "^a",
    "a'); DROP TABLE articles; --",
    '\\"',
    '""',
    "x" * 200,
]


@pytest.mark.parametrize("words", HOSTILE_WORDS)
def test_search_syntax_in_q_is_only_text(view: View, words: str) -> None:
    found = list(view.custom(Filter(words=words), EVERYTHING))
    terms = re.findall(r'"([^"]*)"|([^\s"]+)', words)
    if not any(tokens(phrase or word) for phrase, word in terms):
        assert found == []


def test_the_canonical_query_is_one_spelling_per_filter() -> None:
    spellings = [
        b"q=Court%20%20Ruling&provider=b.com&topic=z&topic=a&topic=z&min_quality=50.0",
        b"topic=a&topic=z&provider=b.com&q=court+ruling&min_quality=50",
        b"min_quality=050&q=%20court%09ruling%20&topic=z&provider=b.com&topic=a&exclude_topic=",
    ]
    queries = {canonical_query(parse_filter(raw)) for raw in spellings}
    assert queries == {"topic=a&topic=z&provider=b.com&q=court%20ruling&min_quality=50"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"q=%ff%fe", "not UTF-8"),
        ("q=caf\xe9".encode("latin-1"), "not UTF-8"),
        (b"&".join([b"topic=a"] * 65), "at most"),
        (b"tpoic=a", "unknown parameter"),
        (b"q=a&q=b", "more than once"),
        (b"q=" + b"a" * 201, "longer than"),
        (b"q=%00a", "control"),
        (b"q=" + b"+".join([b"w"] * 17), "more than 16"),
        (b"q=***", "no letters"),
        (b"min_quality=nan", "min_quality"),
        (b"min_quality=1e3", "min_quality"),
    ],
)
def test_bad_queries_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadFilter, match=reason):
        parse_filter(raw)


# Over HTTP through the app's whole WSGI stack (Flask's test client), bundled seeds.

FEED = "/feeds/custom.{}?topic=ai&exclude_provider=nypost.com"


def test_feeds_over_http_are_valid_with_self_links_and_validators(
    seeds_client: FlaskClient,
) -> None:
    for extension in ("rss", "atom"):
        response = seeds_client.get(FEED.format(extension))
        assert response.status_code == 200
        parsed = feedparser.parse(response.data)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert [link.href for link in parsed.feed.links if link.rel == "self"] == [
            CLIENT_ORIGIN + FEED.format(extension)
        ]
        assert parsed.feed.title == "AI, not from New York Post · feeds"
        assert [e.title for e in parsed.entries] == [
            "Boston Bans Use Of Facial Recognition Technology. It's The 2nd-Largest City To Do So"
        ]
        etag = response.headers["ETag"]
        again = seeds_client.get(FEED.format(extension), headers={"If-None-Match": etag})
        assert again.status_code == 304
    feed = seeds_client.get(FEED.format("json")).get_json()
    assert feed["feed_url"] == CLIENT_ORIGIN + FEED.format("json")
    page = "/custom?topic=ai&exclude_provider=nypost.com"
    assert feed["home_page_url"] == CLIENT_ORIGIN + page


def test_a_filter_that_matches_nothing_is_an_empty_valid_feed(seeds_client: FlaskClient) -> None:
    response = seeds_client.get("/feeds/custom.atom?q=zebra%20crossing")
    assert response.status_code == 200
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0 and parsed.entries == []
    assert parsed.feed.title == "Matching “zebra crossing” · feeds"
    # The W3C validator calls a date before 1990 implausible (a warning): an empty feed has
    # no entry to take its date from, so it must still carry a plausible, fixed one.
    for extension in ("atom", "rss"):
        empty = feedparser.parse(
            seeds_client.get(f"/feeds/custom.{extension}?q=zebra%20crossing").data
        )
        stamp = empty.feed.get("updated_parsed") or empty.feed.get("published_parsed")
        assert stamp is not None and stamp.tm_year >= 1990, extension


@pytest.mark.parametrize(
    ("path", "location"),
    [
        (
            "/feeds/custom.rss?exclude_provider=nypost.com&topic=ai&topic=ai",
            "/feeds/custom.rss?topic=ai&exclude_provider=nypost.com",
        ),
        ("/feeds/custom.json?q=Facial++RECOGNITION", "/feeds/custom.json?q=facial%20recognition"),
        ("/feeds/custom.rss?limit=5&topic=ai", "/feeds/custom.rss?topic=ai&limit=5"),
        ("/feeds/custom.rss?topic=ai&limit=50", "/feeds/custom.rss?topic=ai"),
        ("/feeds/custom.rss?min_quality=7.50", "/feeds/custom.rss?min_quality=7.5"),
        ("/feeds/custom.atom", "/feeds/all.atom"),
        ("/feeds/custom.rss?q=&limit=3", "/feeds/all.rss?limit=3"),
        ("/custom?topic=ai&provider=&q=&min_quality=", "/custom?topic=ai"),
        ("/custom?q=", "/"),
    ],
)
def test_other_spellings_redirect_to_the_canonical_url(
    seeds_client: FlaskClient, path: str, location: str
) -> None:
    response = seeds_client.get(path)
    assert response.status_code == 301
    assert response.headers["Location"] == location


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/feeds/custom.rss?topic=no-such-topic", 404),
        ("/feeds/custom.rss?provider=ai", 404),
        ("/feeds/custom.rss?exclude_topic=%27%20OR%201%3D1%20--", 404),
        ("/feeds/custom.xml?topic=ai", 404),
        ("/feeds/custom.rss?topics=ai", 400),
        ("/feeds/custom.rss?topic=ai&limit=0", 400),
        ("/feeds/custom.rss?q=%ff", 400),
        ("/feeds/custom.rss?q=" + "a%20" * 300, 400),
        ("/feeds/custom.rss?" + "&".join(f"topic=t{i}" for i in range(200)), 400),
        ("/custom?topic=nope", 404),
    ],
)
def test_unknown_slugs_are_404_and_bad_queries_400(
    seeds_client: FlaskClient, path: str, status: int
) -> None:
    response = seeds_client.get(path)
    assert response.status_code == status, response.text
    assert "sql" not in response.text.lower() or "sql" in path.lower()


@pytest.mark.parametrize("words", HOSTILE_WORDS)
def test_hostile_search_text_over_http_is_never_a_server_error(
    seeds_client: FlaskClient, words: str
) -> None:
    path = "/feeds/custom.rss?q=" + requests.utils.quote(words, safe="")
    response = seeds_client.get(path, follow_redirects=True)  # to the canonical spelling
    assert response.status_code in (200, 400), response.text
    assert "sqlite" not in response.text.lower()
    assert "syntax error" not in response.text.lower()


def test_memory_stays_bounded_however_many_filters_are_asked() -> None:
    server = create_app({"CACHE_THRESHOLD": 20}).test_client()  # one worker's caches
    for number in range(120):
        response = server.get(f"/feeds/custom.rss?q=word{number}")
        assert response.status_code == 200
        assert server.get(f"/feeds/custom.rss?q=word{number}").status_code == 200  # fast path
    stats = server.get("/healthz").get_json()["cache"]
    assert stats["entries"] <= 20 and stats["fast_path_entries"] <= 20, stats


def test_a_new_document_changes_the_custom_feed_that_selects_it(
    server_factory, corpus: Path
) -> None:
    server = server_factory(FEEDS_CORPUS_DIR=str(corpus))
    path = "/feeds/custom.rss?q=lighthouse"
    first = server.get(path)
    assert feedparser.parse(first.content).entries == []
    with reloaded(server):
        (corpus / "light.md").write_text(
            document(title='"A lighthouse keeper"', webUrl='"https://example.com/lighthouse"')
        )
    second = server.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200
    assert [e.title for e in feedparser.parse(second.content).entries] == ["A lighthouse keeper"]


def test_custom_feeds_have_no_archive_links(generated: Path, tmp_path: Path) -> None:
    """Archives exist only for fixed feeds: a custom feed must not lead to pages that 404."""
    app = create_app({"CORPUS_DIR": str(generated), "DATA_DIR": str(tmp_path)})
    client = app.test_client()
    assert b'rel="prev-archive"' in client.get("/feeds/all.atom?limit=500").data
    custom = client.get("/feeds/custom.atom?min_quality=0&limit=500")
    assert custom.status_code == 200
    assert len(feedparser.parse(custom.data).entries) == 500
    assert b"archive" not in custom.data


def test_a_filter_whose_query_runs_past_its_bound_is_a_quick_503_and_the_worker_goes_on(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite holds a gevent worker while a query runs: a filter that reads a whole topic
    to find few articles (seconds at a million documents) is stopped at its bound."""
    client = create_app({"CORPUS_DIR": str(generated), "DATA_DIR": str(tmp_path)}).test_client()
    path = "/feeds/custom.rss?min_quality=999"  # matches nothing: every article is read
    monkeypatch.setattr(search, "QUERY_SECONDS", 0.0)
    monkeypatch.setattr(search, "_CHECK_STEPS", 100)
    for asked in (path, "/custom?min_quality=999"):  # the feed and its page
        stopped = client.get(asked)
        assert stopped.status_code == 503, asked
        assert stopped.headers["Retry-After"] == "5"
        assert stopped.headers["Cache-Control"] == "no-store"
        assert b"too costly now (selecting its articles took over 0 s)" in stopped.data
    monkeypatch.setattr(search, "QUERY_SECONDS", 1.0)
    answered = client.get(path)  # the connection lost its bound with the query
    assert answered.status_code == 200
    assert feedparser.parse(answered.data).entries == []

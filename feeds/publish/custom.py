"""Custom feeds: a filter from a URL's query, its one canonical spelling, and its name.

`/feeds/custom.rss?topic=ai&provider=wbur.org&q=court%20ruling` names a filter. The
query is read strictly (UTF-8, a bounded number of fields, known names only) and
written back in one canonical form: names in `PARAMETERS` order, slugs sorted and
unique, search text NFC, lower-cased, single-spaced. Any other spelling is redirected
there, so each filter has one URL for caches, subscribers and the hub.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote

from feeds.index.reader import View
from feeds.index.search import Filter, terms
from feeds.publish.selection import Selection, UnknownFeed

PARAMETERS = ("topic", "provider", "exclude_topic", "exclude_provider", "q", "min_quality")
SLUG_PARAMETERS = {
    "topic": "topics",
    "provider": "providers",
    "exclude_topic": "exclude_topics",
    "exclude_provider": "exclude_providers",
}
PASSED_ON = ("limit",)  # read by the feed route, as on every feed
MAX_FIELDS = 64
MAX_QUERY_CHARACTERS = 200
MAX_TERMS = 16
_QUALITY = re.compile(r"-?[0-9]{1,3}(?:\.[0-9]{1,3})?")
_UNPRINTABLE = {"Cc", "Cs", "Co", "Cn"}  # control, surrogate, private and unassigned


class BadFilter(ValueError):
    """The query cannot name a filter; the HTTP layer answers 400 with this message."""


def parse_filter(raw_query: bytes) -> Filter:
    """The filter a raw query string names; raises BadFilter saying what is wrong."""
    try:
        fields = parse_qsl(
            raw_query.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeError:
        raise BadFilter("the query is not UTF-8") from None
    except ValueError:
        raise BadFilter(f"a custom feed takes at most {MAX_FIELDS} parameters") from None
    values: dict[str, list[str]] = {name: [] for name in PARAMETERS}
    for name, value in fields:
        if name in PASSED_ON:
            continue
        if name not in values:
            raise BadFilter(f"unknown parameter {name[:40]!r}; known: {', '.join(PARAMETERS)}")
        if value.strip():
            values[name].append(value)
    slugs = {SLUG_PARAMETERS[name]: tuple(sorted(set(values[name]))) for name in SLUG_PARAMETERS}
    return Filter(
        **slugs,
        words=_words(_single(values, "q")),
        min_quality=_quality(_single(values, "min_quality")),
    )


def _single(values: dict[str, list[str]], name: str) -> str:
    found = values[name]
    if len(found) > 1:
        raise BadFilter(f"{name} is given more than once")
    return found[0] if found else ""


def _words(text: str) -> str:
    """The search text's canonical form; too long, unprintable or wordless text is refused."""
    if len(text) > MAX_QUERY_CHARACTERS:
        raise BadFilter(f"q is longer than {MAX_QUERY_CHARACTERS} characters")
    if any(unicodedata.category(c) in _UNPRINTABLE for c in text if not c.isspace()):
        raise BadFilter("q holds control or unassigned characters")
    words = " ".join(unicodedata.normalize("NFC", text).lower().split())
    found = terms(words)
    if words and not found:
        raise BadFilter("q has no letters or digits to search for")
    if len(found) > MAX_TERMS:
        raise BadFilter(f"q has more than {MAX_TERMS} words and phrases")
    return words


def _quality(text: str) -> float | None:
    if not text:
        return None
    if not _QUALITY.fullmatch(text):
        raise BadFilter("min_quality must be a number like 50 or 62.5 (up to 3 decimals)")
    return float(text) + 0.0  # -0 is 0


def quality_text(value: float) -> str:
    """A quality as written in canonical URLs and titles: `50`, `62.5`."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def canonical_query(selected: Filter) -> str:
    """The one query string that names this filter (without `limit`)."""
    pairs = [
        (name, slug) for name, field in SLUG_PARAMETERS.items() for slug in getattr(selected, field)
    ]
    if selected.words:
        pairs.append(("q", selected.words))
    if selected.min_quality is not None:
        pairs.append(("min_quality", quality_text(selected.min_quality)))
    return "&".join(f"{name}={quote(value, safe='')}" for name, value in pairs)


def describe(view: View, selected: Filter) -> str:
    """What the feed holds, in words: `AI or Robotics, not from WBUR, matching “court”`.

    Raises UnknownFeed for a slug the index does not have.
    """
    topics = _names(view, "topics", selected.topics + selected.exclude_topics)
    providers = _names(view, "providers", selected.providers + selected.exclude_providers)
    parts = []
    if selected.topics:
        parts.append(_either(topics[slug] for slug in selected.topics))
    if selected.providers:
        parts.append("from " + _either(providers[slug] for slug in selected.providers))
    if selected.exclude_topics:
        parts.append("not about " + _either(topics[s] for s in selected.exclude_topics))
    if selected.exclude_providers:
        parts.append("not from " + _either(providers[s] for s in selected.exclude_providers))
    if selected.words:
        parts.append(f"matching “{selected.words}”")
    if selected.min_quality is not None:
        parts.append(f"quality {quality_text(selected.min_quality)} or more")
    text = ", ".join(parts)
    return text[:1].upper() + text[1:]


def _names(view: View, kind: str, slugs: tuple[str, ...]) -> dict[str, str]:
    known = view.topics if kind == "topics" else view.providers
    for slug in slugs:
        if slug not in known:
            raise UnknownFeed(f"no {kind[:-1]} '{slug[:80]}'")
    return {slug: known[slug].name for slug in slugs}


def _either(names: Iterable[str]) -> str:
    listed = list(names)
    return listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"


def custom_selection(view: View, selected: Filter, limit: int, site_title: str) -> Selection:
    """The selection of a non-empty filter, holding its newest `limit` articles."""
    summary = describe(view, selected)
    return Selection(
        "custom",
        canonical_query(selected),
        f"{summary} · {site_title}",
        f"{summary}; newest first.",
        view.custom(selected, limit),
    )

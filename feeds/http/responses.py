"""The status, headers and body for a rendered feed, given the request's WSGI environ.

Kept free of Flask so the Flask view and the WSGI fast path answer alike: one place
(`Answers`) decides encodings, validators, 304s and cache headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from werkzeug.http import http_date, is_resource_modified, parse_accept_header

from feeds.cache.rendered import Rendered

CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "ETag, Last-Modified, Link, Content-Encoding"),
)

NOSNIFF = ("X-Content-Type-Options", "nosniff")
# Pages have no script, one stylesheet of their own and images from article hosts; their
# only form goes to this site. Only the origin leaves in a Referer, never a path or query.
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src http: https: data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = (
    ("Content-Security-Policy", PAGE_POLICY),
    NOSNIFF,
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
OTHER_HEADERS = (NOSNIFF,)


def security_headers(content_type: str) -> tuple[tuple[str, str], ...]:
    """The headers an answer of this type carries (the fast path's and Flask's alike)."""
    return PAGE_HEADERS if content_type.startswith("text/html") else OTHER_HEADERS


# Each coding's strong ETag is the body's with a suffix: the same whichever is made first.
ETAG_SUFFIXES = {"": "", "gzip": "-gz", "br": "-br"}


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@lru_cache(maxsize=512)
def choose_encoding(accept_encoding: str) -> str:
    """`br`, `gzip` or `` (identity): the client's best-rated coding, brotli on a tie."""
    if not accept_encoding:
        return ""
    accept = parse_accept_header(accept_encoding)
    best, best_quality = "", 0.0
    for coding in ("br", "gzip"):
        quality = accept.quality(coding)
        if quality > best_quality:
            best, best_quality = coding, quality
    return best


class Answers:
    """A rendered document's answers: 200 with the best encoding, or 304 when the client's
    validators still match.

    Every client gets the same representation whatever its `Accept`, so only the coding
    varies and a cache keeps one copy per URL and coding; a coding's body is compressed
    the first time a client asks for it (`Rendered.encoded`). This runs for every cached
    request, so both answers of each coding (200 and 304, headers included) are built once
    and handed out as they are, and the common revalidation (the exact ETag we sent last
    time) is matched without parsing. The fast path keeps these, not the bare document.
    """

    __slots__ = ("_variants", "rendered")

    def __init__(self, rendered: Rendered) -> None:
        self.rendered = rendered
        self._variants: dict[str, Variant] = {}

    @property
    def size(self) -> int:
        """As the document's (`LocalLRU`'s bound): the answers share its bytes."""
        return self.rendered.size

    def answer(self, environ: dict) -> Answer:
        encoding = choose_encoding(environ.get("HTTP_ACCEPT_ENCODING", ""))
        variant = self._variants.get(encoding)
        if variant is None:
            variant = self._variants[encoding] = _variant(self.rendered, encoding)
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match is None and "HTTP_IF_MODIFIED_SINCE" not in environ:
            return variant.ok
        if if_none_match == variant.quoted_etag or not is_resource_modified(
            environ, etag=variant.etag, last_modified=self.rendered.last_modified
        ):
            return variant.not_modified
        return variant.ok


@dataclass(frozen=True, slots=True)
class Variant:
    """One content coding of a rendered document: its validator and both its answers.

    The answers are shared by every request for this coding: nobody may change them.
    """

    etag: str
    quoted_etag: str
    ok: Answer
    not_modified: Answer


def _variant(rendered: Rendered, encoding: str) -> Variant:
    """The answers of one representation; each coding has its own strong ETag."""
    body = rendered.encoded(encoding)
    etag = rendered.etag + ETAG_SUFFIXES[encoding]
    headers = [
        ("Content-Type", rendered.content_type),
        ("ETag", f'"{etag}"'),
        *(
            [("Last-Modified", http_date(rendered.last_modified))]
            if rendered.last_modified is not None
            else []
        ),
        ("Cache-Control", rendered.cache_control),
        ("Vary", "Accept-Encoding"),
        *CORS_HEADERS,
        *security_headers(rendered.content_type),
    ]
    if rendered.link_header:
        headers.append(("Link", rendered.link_header))
    if encoding:
        headers.append(("Content-Encoding", encoding))
    return Variant(
        etag,
        f'"{etag}"',
        Answer(200, [*headers, ("Content-Length", str(len(body)))], body),
        Answer(304, headers, b""),
    )

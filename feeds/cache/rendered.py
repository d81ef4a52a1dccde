"""One document ready to send: its bytes, validators and headers, compressed on demand."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import brotli

from feeds.renders import pause

# How each content coding is made. Levels are chosen for the first request's latency:
# gzip 6 and brotli 5 take a few milliseconds for a 50-entry feed and get within a few
# percent of their maximum ratio.
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda body: gzip.compress(body, compresslevel=6, mtime=0),
    "br": lambda body: brotli.compress(body, quality=5),
}
# Compressions done by this process, per coding (reported by /healthz).
COMPRESSIONS: dict[str, int] = dict.fromkeys(COMPRESSORS, 0)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One document ready to send; each compressed form is made when first asked for.

    A client that takes identity costs no compression, and each coding is made once per
    document and kept for the next client that asks for it. Both forms are deterministic
    (gzip without a time stamp), so the validators of every coding follow from `body`
    alone, whichever coding was served first and on whichever host.
    """

    body: bytes
    etag: str  # strong validator of `body`, without quotes
    last_modified: datetime | None  # None: a document whose ETag is its only validator
    content_type: str
    cache_control: str
    link_header: str = ""
    # Compressed forms made so far, by coding ("gzip", "br"): only `encoded` adds to it.
    encodings: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def encoded(self, coding: str) -> bytes:
        """The body in `coding` ("" is identity), compressed now if nobody asked before."""
        if not coding:
            return self.body
        found = self.encodings.get(coding)
        if found is None:
            pause()  # a big body's compression is CPU work: let waiting clients in first
            found = self.encodings[coding] = COMPRESSORS[coding](self.body)
            COMPRESSIONS[coding] += 1
        return found

    @property
    def size(self) -> int:
        """Bytes held, for the memory bound of the in-process caches: the body and room for
        its compressed forms (together at most about the body's size), so the figure does
        not change while a cache holds it."""
        return 2 * len(self.body)


def prepare(
    body: bytes,
    last_modified: datetime | None,
    content_type: str,
    cache_control: str,
    link_header: str = "",
) -> Rendered:
    """A document ready to send; nothing is compressed until a client asks for a coding."""
    return Rendered(
        body=body,
        etag=strong_etag(body),
        last_modified=last_modified,
        content_type=content_type,
        cache_control=cache_control,
        link_header=link_header,
    )


def strong_etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]

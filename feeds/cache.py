"""Rendered feeds: bytes, compressed bytes and validators, cached in two tiers.

The first tier is a bounded in-process LRU of ready objects: bytes rendered for one corpus
version never change, so a worker never needs to ask again. The second tier is a
cachelib backend (file system or Redis) shared by workers and hosts. The shared tier is
optional at run time: when it fails, the failure is logged, the tier is left alone for a
while, and feeds are rendered locally.

Whoever can write the shared store must not be able to run code here, so nothing read
from it is ever unpickled: values are frames of plain bytes (see `encode_frame`) checked
field by field, with a checksum or, given a secret, an HMAC. Anything that does not check
out is a miss. Every shared key expires, and keys carry a hash of the rendering code.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import logging
import re
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

import brotli
import redis
from cachelib import BaseCache, FileSystemCache, RedisCache

from feeds.fingerprint import files_hash
from feeds.renders import WAIT_SECONDS, Busy, RenderGate, pause
from feeds.scratch import scratch_directory
from feeds.settings import Settings

log = logging.getLogger("feeds.cache")

# Which tier answered the current request's document ("fast", "local", "shared" or
# "render"); each greenlet has its own, and the access log and metrics read it.
TIER: ContextVar[str] = ContextVar("feeds_cache_tier", default="")

RETRY_AFTER_FAILURE_SECONDS = 5.0
REDIS_SOCKET_TIMEOUT_SECONDS = 0.25


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
    last_modified: datetime
    content_type: str
    cache_control: str
    link_header: str = ""
    # Compressed forms made so far, by coding ("gzip", "br").
    encodings: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    # Both answers (200, 304) per content coding, filled by responses.feed_answer.
    variants: dict = field(default_factory=dict, compare=False, repr=False)

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
    last_modified: datetime,
    content_type: str,
    cache_control: str,
    link_header: str = "",
) -> Rendered:
    """A document ready to send; nothing is compressed until a client asks for a coding."""
    return Rendered(
        body=body,
        etag=_etag(body),
        last_modified=last_modified,
        content_type=content_type,
        cache_control=cache_control,
        link_header=link_header,
    )


def _etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


class LocalLRU:
    """A thread-safe mapping of ready objects, bounded in count and in bytes.

    The byte bound matters: clients choose `?limit=` and hosts, and each choice is its
    own entry, so a count alone would let them fill a worker's memory with big feeds.
    """

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Any:
        """Without the lock: each step is one atomic dict operation, and a read costs no
        lock on the path of every cached answer. A key another thread drops or replaces
        meanwhile reads as absent or is not moved: a miss at worst."""
        value = self._items.get(key)
        if value is not None:
            with suppress(KeyError):
                self._items.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += _size(value) - _size(old)
            self._items[key] = value
            while len(self._items) > 1 and (
                len(self._items) > self._capacity or self._bytes > self._max_bytes
            ):
                self._bytes -= _size(self._items.popitem(last=False)[1])


def _size(value: Any) -> int:
    return value.size if isinstance(value, Rendered) else 0


class FeedCache:
    """Get a rendered feed by key, rendering it at most once per process and key.

    Renders go through `gate` (`feeds.renders`): bounded per worker and per client, and
    refused with `Busy` beyond; what is cached is answered without asking the gate.
    """

    def __init__(
        self, shared: SharedStore | None, capacity: int, max_bytes: int, gate: RenderGate
    ) -> None:
        self.shared = shared
        self.local = LocalLRU(capacity, max_bytes)
        self.gate = gate
        self._shared_down_until = 0.0
        self.stats = {
            "local_hits": 0,
            "shared_hits": 0,
            "renders": 0,
            "shared_errors": 0,
            "busy": 0,
        }
        self.on_render: Callable[[float], object] = lambda seconds: None  # the metrics' hook
        # Keys being rendered in this process now; each Event is made by the request that
        # renders (in a worker, after gevent patched threading), never in the master.
        self._rendering: dict[str, threading.Event] = {}

    def get_or_render(
        self, key: str, render: Callable[[], Rendered], shared: bool = True
    ) -> Rendered:
        """No lock is held across the shared cache's I/O: under gevent that would deadlock.

        Requests missing a key that this process is rendering now wait for that render
        (no CPU, no render slot) instead of rendering it again: after a release or a change,
        every poller of a feed asks at once. `shared=False` keeps the answer in this process
        only (answers cheap to make again whose keys clients choose without bound).
        """
        found = self._local_get(key)
        if found is not None:
            return found
        pending = self._rendering.get(key)
        if pending is not None and pending.wait(WAIT_SECONDS):
            found = self._local_get(key)
            if found is not None:
                return found  # else its render was refused or failed: try ours
        found = self._shared_get(key) if shared else None
        if found is not None:
            self.stats["shared_hits"] += 1
            TIER.set("shared")
            self.local.put(key, found)
            return found
        done = threading.Event()
        mine = self._rendering.setdefault(key, done) is done  # else one that waited too long
        try:
            found = self._render(render)
            if shared:
                self._shared_set(key, found)
            self.local.put(key, found)
        finally:
            if mine:
                del self._rendering[key]
                done.set()
        return found

    def _local_get(self, key: str) -> Rendered | None:
        found = self.local.get(key)
        if found is not None:
            self.stats["local_hits"] += 1
            TIER.set("local")
        return found

    def _render(self, render: Callable[[], Rendered]) -> Rendered:
        try:
            with self.gate.admit():
                started = time.perf_counter()
                found = render()
                self.on_render(time.perf_counter() - started)
        except Busy:
            self.stats["busy"] += 1
            raise
        self.stats["renders"] += 1
        TIER.set("render")
        return found

    def _usable_shared(self) -> SharedStore | None:
        """The shared store, unless there is none or it failed a moment ago."""
        if time.monotonic() < self._shared_down_until:
            return None
        return self.shared

    def _shared_get(self, key: str) -> Rendered | None:
        shared = self._usable_shared()
        if shared is None:
            return None
        try:
            return shared.get(key)
        except Exception as error:  # any backend failure degrades to local rendering
            self._shared_failed("read", error)
            return None

    def _shared_set(self, key: str, value: Rendered) -> None:
        shared = self._usable_shared()
        if shared is None:
            return
        try:
            shared.set(key, value)
        except Exception as error:  # any backend failure degrades to local rendering
            self._shared_failed("write", error)

    def _shared_failed(self, action: str, error: Exception) -> None:
        self.stats["shared_errors"] += 1
        self._shared_down_until = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
        log.warning(
            "shared cache %s failed (%s: %s); rendering locally for %.0fs",
            action,
            error.__class__.__name__,
            error,
            RETRY_AFTER_FAILURE_SECONDS,
        )


PACKAGE_DIR = Path(__file__).resolve().parent
# Distributions whose versions change the bytes we render, beside our own code.
RENDERING_DISTRIBUTIONS = ("feedgen", "lxml", "Jinja2", "MarkupSafe")


def code_hash(root: Path = PACKAGE_DIR) -> str:
    """A hash of every file of the package and of the rendering libraries' versions.

    A fix deployed without a version bump must not serve what the old code rendered, and
    old and new hosts of a rolling deploy must not share keys.
    """
    files = sorted(
        path for path in root.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    )
    return files_hash(root, files, "".join(map(_installed, RENDERING_DISTRIBUTIONS)))


def _installed(name: str) -> str:
    try:
        return f"\n{name}={version(name)}"
    except PackageNotFoundError:
        return f"\n{name}=none"


CODE_HASH = code_hash()


def cache_key(corpus_version: str, *parts: str) -> str:
    """Keys start with the code hash and the corpus version: neither code nor corpora share."""
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]
    return f"{CODE_HASH[:16]}:{corpus_version[:16]}:{digest}"


# The frame: MAGIC, then the byte length of each field (FIELDS order) as big-endian
# 32-bit numbers, then the fields, then a 32-byte tag over the key and all of the above.
MAGIC = b"feedsC\x00\x02"  # the last byte is the frame's version (2: compressed forms optional)
FIELDS = (
    "body",
    "gzip_body",
    "br_body",
    "etag",
    "last_modified",
    "content_type",
    "cache_control",
    "link_header",
)
FRAMED_CODINGS = {"gzip_body": "gzip", "br_body": "br"}  # frame field: content coding
HEADER = struct.Struct(">8s" + "I" * len(FIELDS))
TAG_BYTES = 32
HEADER_TEXT = re.compile(r"[\x20-\x7e]*")  # what may go into a response header


class FrameCodec:
    """Turns a `Rendered` into bytes and back, refusing anything it did not write itself.

    The tag binds the value to its key, so a valid frame copied under another key is refused
    too. Without a secret the tag is a SHA-256 checksum: it catches corruption and
    truncation, not a writer who knows the format. With a secret it is an HMAC-SHA256.
    """

    def __init__(self, secret: str = "") -> None:
        self._secret = secret.encode("utf-8")

    def encode(self, key: str, rendered: Rendered) -> bytes:
        fields = [_field_bytes(rendered, name) for name in FIELDS]
        framed = HEADER.pack(MAGIC, *map(len, fields)) + b"".join(fields)
        return framed + self._tag(key, framed)

    def decode(self, key: str, data: Any) -> Rendered | None:
        """The frame's `Rendered`, or None for a frame that is not whole, ours and coherent."""
        if not isinstance(data, bytes) or len(data) < HEADER.size + TAG_BYTES:
            return None
        magic, *lengths = HEADER.unpack_from(data)
        if magic != MAGIC or HEADER.size + sum(lengths) + TAG_BYTES != len(data):
            return None
        framed, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(key, framed)):
            return None
        values, offset = {}, HEADER.size
        for name, length in zip(FIELDS, lengths, strict=True):
            values[name] = data[offset : offset + length]
            offset += length
        return _coherent(values)

    def _tag(self, key: str, framed: bytes) -> bytes:
        message = key.encode("utf-8") + b"\x00" + framed
        if self._secret:
            return hmac.digest(self._secret, message, "sha256")
        return hashlib.sha256(message).digest()


def _field_bytes(rendered: Rendered, name: str) -> bytes:
    """A field's bytes; a compressed form not made yet is stored empty."""
    if name in FRAMED_CODINGS:
        return rendered.encodings.get(FRAMED_CODINGS[name], b"")
    value = getattr(rendered, name)
    if isinstance(value, datetime):
        value = value.isoformat()
    return value if isinstance(value, bytes) else value.encode("ascii")


def _coherent(values: dict[str, bytes]) -> Rendered | None:
    """A `Rendered` from the frame's fields, only when they agree with one another.

    The ETag must name the body and each compressed body held must give back the body (an
    empty one was not made yet), so every client gets the same document under one
    validator; header text must be safe to send; the date must say its time zone.
    """
    body = values["body"]
    try:
        texts = {name: values[name].decode("ascii") for name in FIELDS[3:]}
        last_modified = datetime.fromisoformat(texts.pop("last_modified"))
    except ValueError:
        return None
    held = {FRAMED_CODINGS[name]: values[name] for name in FRAMED_CODINGS if values[name]}
    if (
        last_modified.tzinfo is None
        or not all(HEADER_TEXT.fullmatch(text) for text in texts.values())
        or texts["etag"] != _etag(body)
        or any(DECOMPRESSORS[coding](data, len(body)) != body for coding, data in held.items())
    ):
        return None
    return Rendered(
        body=body,
        etag=texts["etag"],
        last_modified=last_modified,
        content_type=texts["content_type"],
        cache_control=texts["cache_control"],
        link_header=texts["link_header"],
        encodings=held,
    )


def _gunzip(data: bytes, size: int) -> bytes | None:
    """At most size + 1 bytes out, so a crafted bomb cannot fill memory; None if not gzip."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, size + 1)
    except zlib.error:
        return None
    return out if inflater.eof and not inflater.unused_data else None


def _unbrotli(data: bytes, size: int) -> bytes | None:
    """At most about size + 1 bytes out; None if not one whole brotli stream."""
    inflater = brotli.Decompressor()
    try:
        out = inflater.process(data, output_buffer_limit=size + 1)
    except brotli.error:
        return None
    return out if inflater.is_finished() else None


DECOMPRESSORS: dict[str, Callable[[bytes, int], bytes | None]] = {
    "gzip": _gunzip,
    "br": _unbrotli,
}


class BytesSerializer:
    """A cachelib serializer that stores bytes as they are and never unpickles.

    cachelib's own serializers pickle. Integers are kept as ASCII digits because the
    filesystem backend stores its file count through the serializer.
    """

    def dumps(self, value: bytes | int, protocol: int | None = None) -> bytes:
        if type(value) is int:
            return str(value).encode("ascii")
        if not isinstance(value, bytes):
            raise TypeError(f"only bytes are stored, not {type(value).__name__}")
        return value

    def loads(self, data: bytes | None) -> bytes | int | None:
        if data is not None and data.isdigit() and len(data) <= 20:
            return int(data)
        return data

    def dump(self, value: bytes | int, stream: IO[bytes], protocol: int | None = None) -> None:
        stream.write(self.dumps(value))

    def load(self, stream: IO[bytes]) -> bytes | int | None:
        return self.loads(stream.read())


class BytesRedisCache(RedisCache):
    serializer = BytesSerializer()  # type: ignore[assignment]  # same methods, bytes only


class BytesFileSystemCache(FileSystemCache):
    serializer = BytesSerializer()  # type: ignore[assignment]  # same methods, bytes only


class SharedStore:
    """The shared tier: frames in a cachelib backend, each stored for `ttl` seconds."""

    def __init__(self, backend: BaseCache, codec: FrameCodec, ttl: int) -> None:
        self.backend = backend
        self.codec = codec
        self.ttl = ttl

    def get(self, key: str) -> Rendered | None:
        data = self.backend.get(key)
        if data is None:
            return None
        found = self.codec.decode(key, data)
        if found is None:
            log.warning("shared cache value for %s failed its checks; rendering it again", key)
        return found

    def set(self, key: str, value: Rendered) -> None:
        self.backend.set(key, self.codec.encode(key, value), timeout=self.ttl)


def make_shared_backend(settings: Settings) -> SharedStore | None:
    """The shared tier the settings ask for; None for `simple`, where the LRU is the cache."""
    backend = _backend(settings)
    if backend is None:
        return None
    return SharedStore(backend, FrameCodec(settings.cache_secret), settings.cache_ttl)


def _backend(settings: Settings) -> BaseCache | None:
    kind, ttl = settings.cache_type, settings.cache_ttl
    if kind == "filesystem":
        directory = settings.cache_dir or scratch_directory("feeds-cache-")
        return BytesFileSystemCache(
            directory, threshold=settings.cache_threshold, default_timeout=ttl
        )
    if kind == "redis":
        if not settings.cache_secret:
            log.warning("FEEDS_CACHE_SECRET is empty: who can write to Redis can change feeds")
        client = redis.Redis.from_url(
            settings.cache_redis_url,
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        )
        return BytesRedisCache(client, key_prefix="feeds:", default_timeout=ttl)
    return None


def cache_control_value(max_age: int) -> str:
    """Fresh for max_age; a CDN may serve stale briefly while refetching, and long on errors."""
    return f"public, max-age={max_age}, stale-while-revalidate={max_age}, stale-if-error=86400"

"""The shared tier: rendered documents in a cachelib backend (a directory or Redis), shared
by workers and hosts.

Whoever can write the shared store must not be able to run code here, so nothing read
from it is ever unpickled (cachelib's Redis and filesystem backends pickle): values are
frames of plain bytes (`FrameCodec`) checked field by field, with a checksum or, given a
secret, an HMAC. Anything that does not check out is a miss. Every shared key expires.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import struct
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

import brotli
import redis
from cachelib import BaseCache, FileSystemCache, RedisCache

from feeds.cache.rendered import Rendered, strong_etag
from feeds.scratch import scratch_directory
from feeds.settings import Settings
from feeds.stores import PerProcess

log = logging.getLogger("feeds.cache")


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
    elif value is None:  # no Last-Modified
        value = ""

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
        dated = texts.pop("last_modified")
        last_modified = datetime.fromisoformat(dated) if dated else None
    except ValueError:
        return None
    held = {FRAMED_CODINGS[name]: values[name] for name in FRAMED_CODINGS if values[name]}
    if (
        (last_modified is not None and last_modified.tzinfo is None)
        or not all(HEADER_TEXT.fullmatch(text) for text in texts.values())
        or texts["etag"] != strong_etag(body)
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
    """The shared tier: frames in a cachelib backend (this process's), each stored for `ttl`
    seconds."""

    def __init__(self, backend: Callable[[], BaseCache], codec: FrameCodec, ttl: int) -> None:
        self.backend = backend
        self.codec = codec
        self.ttl = ttl

    def get(self, key: str) -> Rendered | None:
        data = self.backend().get(key)
        if data is None:
            return None
        found = self.codec.decode(key, data)
        if found is None:
            log.warning("shared cache value for %s failed its checks; rendering it again", key)
        return found

    def set(self, key: str, value: Rendered) -> None:
        self.backend().set(key, self.codec.encode(key, value), timeout=self.ttl)


def shared_tier(settings: Settings, client: Callable[[], redis.Redis]) -> SharedStore | None:
    """The tier `FEEDS_RENDER_CACHE` names; None for `simple`, where the LRU is the cache.

    A `filesystem` tier's directory is chosen here, once, so every worker forked from this
    process shares it; `redis` uses the client every store in Redis shares.
    """
    kind, ttl = settings.store_kinds.render_cache, settings.cache_ttl
    backend: PerProcess[BaseCache]
    if kind == "filesystem":
        directory = settings.cache_dir or scratch_directory("feeds-cache-")
        backend = PerProcess(
            lambda: BytesFileSystemCache(
                directory, threshold=settings.cache_threshold, default_timeout=ttl
            )
        )
    elif kind == "redis":
        if not settings.cache_secret:
            log.warning("FEEDS_CACHE_SECRET is empty: who can write to Redis can change feeds")
        backend = PerProcess(
            lambda: BytesRedisCache(client(), key_prefix="feeds:", default_timeout=ttl)
        )
    else:
        return None
    return SharedStore(backend.get, FrameCodec(settings.cache_secret), ttl)

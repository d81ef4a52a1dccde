"""The in-process caches stay within their bounds; shared frames are ours, whole and coherent."""

from __future__ import annotations

import gzip
import hmac
import io
import os
import pickle
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from hashlib import sha256
from pathlib import Path

import brotli
import pytest

from feeds.cache import identity
from feeds.cache.identity import cache_key, render_code_hash
from feeds.cache.lru import LocalLRU
from feeds.cache.rendered import COMPRESSIONS, Rendered, prepare
from feeds.cache.shared import FIELDS, HEADER, MAGIC, BytesSerializer, FrameCodec
from feeds.cache.tiers import FeedCache
from feeds.renders import CLIENT, RenderGate
from feeds.settings import SettingsError, load_settings


def rendered(size: int) -> Rendered:
    body = os.urandom(size)  # incompressible, so the compressed copies are as big
    return prepare(body, datetime(2024, 1, 1, tzinfo=UTC), "application/rss+xml", "public")


def test_the_byte_bound_evicts_the_least_recently_used() -> None:
    item = rendered(10_000)
    cache = LocalLRU(capacity=1000, max_bytes=5 * item.size)
    for index in range(50):
        cache.put(f"limit={index}", rendered(10_000))
        held = [key for key in (f"limit={n}" for n in range(50)) if cache.get(key) is not None]
        assert sum(cache.get(key).size for key in held) <= 5 * item.size
    assert cache.get("limit=49") is not None
    assert cache.get("limit=0") is None


def test_the_count_bound_and_a_single_oversized_entry() -> None:
    cache = LocalLRU(capacity=3, max_bytes=10**9)
    for index in range(10):
        cache.put(str(index), rendered(100))
    assert [k for k in map(str, range(10)) if cache.get(k) is not None] == ["7", "8", "9"]
    tiny = LocalLRU(capacity=3, max_bytes=10)
    tiny.put("big", rendered(1000))  # the newest entry is kept even when it alone is over
    assert tiny.get("big") is not None
    tiny.put("next", rendered(1000))
    assert tiny.get("big") is None and tiny.get("next") is not None


def test_replacing_a_key_does_not_count_it_twice() -> None:
    item = rendered(1000)
    cache = LocalLRU(capacity=10, max_bytes=2 * item.size + 10)
    cache.put("a", item)
    cache.put("a", item)
    cache.put("b", rendered(1000))
    assert cache.get("a") is not None and cache.get("b") is not None


# The shared tier's frames: what comes back is what was stored, or nothing.

KEY = "code:corpus:all.atom"
SECRET = "s" * 32


def feed(body: bytes = b"<feed>one</feed>" * 50) -> Rendered:
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    return prepare(body, when, "application/atom+xml", "public, max-age=300", '<a>; rel="hub"')


CODINGS = {"gzip_body": "gzip", "br_body": "br"}


def fields(rendered: Rendered) -> tuple:
    """Every field a frame holds, the compressed forms made now if they were not yet."""
    return tuple(
        rendered.encoded(CODINGS[name]) if name in CODINGS else getattr(rendered, name)
        for name in FIELDS
    )


def reframe(values: dict[str, bytes], key: str = KEY, secret: str = "") -> bytes:
    """A frame built by someone who knows the format (and maybe the secret) from raw fields."""
    framed = HEADER.pack(MAGIC, *(len(values[name]) for name in FIELDS)) + b"".join(
        values[name] for name in FIELDS
    )
    message = key.encode() + b"\x00" + framed
    tag = hmac.digest(secret.encode(), message, "sha256") if secret else sha256(message).digest()
    return framed + tag


def raw_fields(rendered: Rendered) -> dict[str, bytes]:
    """The fields as a frame holds them: bytes, text as ASCII, the date in ISO 8601."""
    values = dict(zip(FIELDS, fields(rendered), strict=True))
    assert rendered.last_modified is not None
    values["last_modified"] = rendered.last_modified.isoformat()
    return {name: v if isinstance(v, bytes) else v.encode() for name, v in values.items()}


@pytest.mark.parametrize("secret", ["", SECRET])
def test_a_frame_gives_back_every_field(secret: str) -> None:
    codec = FrameCodec(secret)
    original = feed()
    fields(original)  # both compressed forms made: the frame carries them
    found = codec.decode(KEY, codec.encode(KEY, original))
    assert found is not None and found.encodings == original.encodings
    assert fields(found) == fields(original)
    assert found.last_modified is not None
    assert found.last_modified.utcoffset() == timedelta(hours=2)


def test_a_frame_keeps_a_document_without_last_modified() -> None:
    """The newest archive page has no Last-Modified: the frame keeps it without one."""
    codec = FrameCodec(SECRET)
    undated = prepare(b"<feed/>", None, "application/atom+xml", "public, max-age=300")
    found = codec.decode(KEY, codec.encode(KEY, undated))
    assert found is not None and found.last_modified is None and found.body == undated.body


@pytest.mark.parametrize("secret", ["", SECRET])
def test_a_frame_holds_only_the_forms_made_and_the_others_come_out_alike(secret: str) -> None:
    codec = FrameCodec(secret)
    original = feed()
    original.encoded("gzip")
    found = codec.decode(KEY, codec.encode(KEY, original))
    assert found is not None and set(found.encodings) == {"gzip"}
    assert found.encoded("br") == feed().encoded("br")  # deterministic: the same validators
    untouched = codec.decode(KEY, codec.encode(KEY, feed()))
    assert untouched is not None and untouched.encodings == {}
    assert fields(untouched) == fields(original)


def test_a_document_is_compressed_only_in_the_codings_asked_for_and_once() -> None:
    document = feed()
    before = dict(COMPRESSIONS)
    assert document.encoded("") == document.body
    assert document.encodings == {}
    first = document.encoded("gzip")
    assert document.encoded("gzip") is first
    assert set(document.encodings) == {"gzip"}
    assert gzip.decompress(first) == document.body
    after = dict(COMPRESSIONS)
    assert after == {**before, "gzip": before["gzip"] + 1}


def tampered_frames(frame: bytes) -> dict[str, bytes]:
    body_at = HEADER.size + 3
    header_lengths = bytearray(frame)
    header_lengths[len(MAGIC) + 3] += 1  # body one byte longer, total unchanged
    return {
        "body byte": frame[:body_at] + bytes([frame[body_at] ^ 1]) + frame[body_at + 1 :],
        "header length": bytes(header_lengths),
        "truncated": frame[:-1],
        "extended": frame + b"\x00",
        "magic": b"X" + frame[1:],
        "tag": frame[:-1] + bytes([frame[-1] ^ 1]),
        "empty": b"",
        "not bytes": 12345,
    }


@pytest.mark.parametrize("secret", ["", SECRET])
def test_a_changed_truncated_or_foreign_frame_is_a_miss(secret: str) -> None:
    codec = FrameCodec(secret)
    frame = codec.encode(KEY, feed())
    for name, bad in tampered_frames(frame).items():
        assert codec.decode(KEY, bad) is None, name
    assert codec.decode("code:corpus:other.atom", frame) is None  # moved to another key


def test_with_a_secret_a_frame_with_a_right_checksum_is_refused() -> None:
    values = raw_fields(feed())
    spoof = prepare(b"<feed>spoof</feed>", feed().last_modified, "text/html", "immutable")
    values.update(raw_fields(spoof))
    assert FrameCodec("").decode(KEY, reframe(values)) is not None  # well formed: only the tag
    assert FrameCodec(SECRET).decode(KEY, reframe(values)) is None
    assert FrameCodec(SECRET).decode(KEY, reframe(values, secret="t" * 32)) is None
    assert FrameCodec(SECRET).decode(KEY, reframe(values, secret=SECRET)) is not None


def test_fields_that_disagree_are_a_miss_even_with_a_right_tag() -> None:
    good = raw_fields(feed())
    other = feed(b"<feed>two</feed>" * 50)
    changes = {
        "etag": {"etag": other.etag.encode()},
        "gzip": {"gzip_body": other.encoded("gzip")},
        "brotli": {"br_body": other.encoded("br")},
        "not gzip": {"gzip_body": b"plain"},
        "not brotli": {"br_body": b"\xff\xff"},
        "header injection": {"link_header": b"<a>\r\nSet-Cookie: x=1"},
        "not ascii": {"content_type": "text/\u00e9".encode()},
        "naive date": {"last_modified": b"2024-05-06T07:08:09"},
        "not a date": {"last_modified": b"yesterday"},
    }
    assert FrameCodec().decode(KEY, reframe(good)) is not None
    for name, change in changes.items():
        assert FrameCodec().decode(KEY, reframe({**good, **change})) is None, name


@pytest.mark.parametrize("field", ["gzip_body", "br_body"])
def test_a_compression_bomb_is_refused_without_inflating_it(field: str) -> None:
    zeros = b"\x00" * 64_000_000
    bomb = gzip.compress(zeros, 1) if field == "gzip_body" else brotli.compress(zeros, quality=1)
    values = {**raw_fields(feed()), field: bomb}
    tracemalloc.start()
    try:
        assert FrameCodec().decode(KEY, reframe(values)) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000


def test_the_serializer_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = pickle.dumps(MakesAFile(marker))
    serializer = BytesSerializer()
    assert serializer.loads(b"!" + payload) == b"!" + payload  # cachelib's Redis form
    assert serializer.load(io.BytesIO(payload)) == payload  # cachelib's file form
    assert not marker.exists()
    assert serializer.loads(serializer.dumps(17)) == 17  # the file backend's count
    with pytest.raises(TypeError):
        serializer.dumps(feed())


class MakesAFile:
    """A pickle that creates a file when loaded: the proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def test_keys_change_with_the_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = cache_key("corpus-version", "https://feeds.example.org/feeds/all.atom")
    monkeypatch.setattr(identity, "RENDER_CODE_HASH", "0" * 64)
    assert cache_key("corpus-version", "https://feeds.example.org/feeds/all.atom") != before
    package = tmp_path / "feeds"
    for folder in ("http/templates", "render", "corpus"):
        (package / folder).mkdir(parents=True)
    (package / "render" / "rss.py").write_text("x = 1\n")
    (package / "http" / "templates" / "feed.html").write_text("<p>{{ x }}</p>\n")
    (package / "corpus" / "fields.py").write_text("y = 1\n")
    first = render_code_hash(package)
    (package / "corpus" / "fields.py").write_text("y = 1  # a release that renders the same\n")
    assert render_code_hash(package) == first, "code that renders nothing keeps the keys"
    (package / "http" / "templates" / "feed.html").write_text("<p>{{ x }}!</p>\n")
    second = render_code_hash(package)
    assert second != first
    (package / "render" / "rss.py").write_text("x = 2\n")
    assert render_code_hash(package) != second
    for part in identity.RENDERING_CODE:  # every entry names something of the package
        assert (identity.PACKAGE_DIR / part).exists(), part


def test_the_cache_secret_must_be_long_enough() -> None:
    with pytest.raises(SettingsError):
        load_settings({"CACHE_SECRET": "short"}, environ={})
    assert load_settings({"CACHE_SECRET": SECRET}, environ={}).cache_secret == SECRET


def test_requests_missing_a_key_being_rendered_wait_for_that_render() -> None:
    """After a release every poller of a feed asks at once: one render, the rest wait."""
    gate = RenderGate(running=1, waiting=0, per_client=1)
    cache = FeedCache(None, 10, 10**6, gate)
    started, release = threading.Event(), threading.Event()
    renders: list[str] = []

    def slow() -> Rendered:
        renders.append("rendered")
        started.set()
        release.wait(5)
        return prepare(b"<rss/>", datetime(2024, 1, 1, tzinfo=UTC), "application/rss+xml", "public")

    def ask(client: str, results: list[Rendered]) -> None:
        CLIENT.set(client)
        results.append(cache.get_or_render("feed", slow))

    first: list[Rendered] = []
    second: list[Rendered] = []
    threads = [threading.Thread(target=ask, args=("10.0.0.1", first))]
    threads[0].start()
    assert started.wait(5)
    threads.append(threading.Thread(target=ask, args=("10.0.0.1", second)))
    threads[1].start()  # same client, no slot free: without waiting it would be refused
    time.sleep(0.1)
    release.set()
    for thread in threads:
        thread.join(5)
    assert renders == ["rendered"]
    assert first == second and len(second) == 1
    assert gate.refused == 0

"""The WSGI layer around Flask that sends the fast path's cached answers and counts each
answer once: Prometheus counters, the subscriber notes and the JSON access log.

It runs on the hot path, so it does only memory work: counters added up in a dict, a dict
and a set for the subscribers, a line appended to a buffer. Writing to stores and to the
log happens in batches (see `feeds.stats.subscribers.Recorder` and `AccessLog`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _string
from typing import Any

from prometheus_client import multiprocess

from feeds.cache.tiers import TIER
from feeds.http.fastpath import STATUS_LINES, StartResponse, WSGIApp
from feeds.http.responses import Answer
from feeds.metrics import MULTIPROC_ENV, STATS_SKIPPED, Requests
from feeds.publish.urls import HUB_PATH, parse_feed_path
from feeds.render import FORMATS
from feeds.stats.agents import classify
from feeds.stats.recorder import Recorder

log = logging.getLogger("feeds.http.observe")

FLUSH_SECONDS = 1.0
STOP_WAIT_SECONDS = 3.0
LOG_BUFFER_BYTES = 3500  # under PIPE_BUF: each write stays whole beside other workers'
LOG_BUFFER_ENTRIES = 200  # lines held before a request writes them (else the flush loop does)
POLL_METHODS = frozenset({"GET", "HEAD"})
POLLED_STATUSES = frozenset({200, 304})
FAST_TIER = "fast"  # the cache tier label of answers from the fast path
PAGE_KINDS = {
    "/": "page",
    "/healthz": "health",
    HUB_PATH: "websub",
    "/metrics": "stats",
    "/stats": "stats",
    "/stats.json": "stats",
    "/feeds.opml": "opml",
    "/feeds.css": "asset",
    "/feed.xsl": "asset",
}


@lru_cache(maxsize=2048)
def route(path: str) -> tuple[str, str, str]:
    """(kind, format, feed) of a path; `feed` ("/feeds/topics/ai") only for current feeds.

    Labels stay few whatever clients send: unknown paths are all "other".
    """
    address = parse_feed_path(path)
    if address is not None and address.extension in FORMATS:
        if address.page is not None:
            return "archive", address.extension, ""
        base = "/feeds/all" if address.kind == "all" else f"/feeds/{address.kind}/{address.slug}"
        return address.kind, address.extension, base
    if path.startswith(("/topics/", "/providers/")):
        return "page", "", ""
    return PAGE_KINDS.get(path, "other"), "", ""


class AccessLog:
    """One JSON object per line on standard output, written a buffer at a time.

    A request only appends its raw fields; turning them into JSON (the costly part) is
    done by `flush`, off the request's path.
    """

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._entries: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def write(self, *values: Any) -> None:
        """The fields of a `json_line` entry, in its order."""
        self._entries.append(values)
        if len(self._entries) >= LOG_BUFFER_ENTRIES:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            entries, self._entries = self._entries, []
        chunk: list[bytes] = []
        size = 0
        for values in entries:
            line = json_line(values)
            if chunk and size + len(line) > LOG_BUFFER_BYTES:
                os.write(self.fd, b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            os.write(self.fd, b"".join(chunk))


def json_line(entry: tuple[Any, ...]) -> bytes:
    """One access-log line, the object `json.dumps` would give, written out directly:
    `json.dumps` of a dict was most of what each answer cost this worker.

    `entry` is (time_ns, method, path, query, status, bytes, seconds, cache tier, agent).
    Strings go through `json`'s own escaping (ASCII only, as `json.dumps` does).
    """
    time_ns, method, path, query, status, size, seconds, cache, agent = entry
    if query:
        path = f"{path}?{query}"
    return (
        f'{{"time":"{_timestamp(time_ns)}","method":{_string(method)},"path":{_string(path)},'
        f'"status":{status},"bytes":{size},"duration_ms":{round(seconds * 1000, 3)!r},'
        f'"cache":{_string(cache) if cache else "null"},"agent":{_string(agent)}}}\n'
    ).encode("ascii")


def _timestamp(time_ns: int) -> str:
    """ISO 8601 in UTC to the millisecond, like `datetime.isoformat(timespec="milliseconds")`."""
    milliseconds = time_ns // 1_000_000
    return f"{_second(milliseconds // 1000)}.{milliseconds % 1000:03d}+00:00"


@lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    """A log's lines fall in a few seconds: each is formatted once."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Observer:
    """What is done once a response is complete."""

    def __init__(self, recorder: Recorder, access_log: AccessLog | None) -> None:
        self.recorder = recorder
        self.access_log = access_log
        self.requests = Requests()

    def done(self, environ: dict, status: int, size: int, started: float, tier: str) -> None:
        path = environ.get("PATH_INFO", "")
        kind, fmt, feed = route(path)
        self.requests.count(kind, fmt, status, size, tier)
        user_agent = environ.get("HTTP_USER_AGENT", "")
        method = environ.get("REQUEST_METHOD", "")
        if feed and status in POLLED_STATUSES and method in POLL_METHODS:
            client = self.recorder.observe(feed, environ.get("REMOTE_ADDR", ""), user_agent)
        else:
            client = classify(user_agent).kind
        if self.access_log is not None:
            self.access_log.write(
                time.time_ns(),
                method,
                path,
                environ.get("QUERY_STRING", ""),
                status,
                size,
                time.perf_counter() - started,
                tier,
                client,
            )

    def flush(self) -> None:
        self.requests.flush()
        self.recorder.flush()
        for reason, count in self.recorder.take_skips().items():
            STATS_SKIPPED.labels(reason).inc(count)
        if self.access_log is not None:
            self.access_log.flush()


class Flusher:
    """Each worker's loop (a greenlet under gevent) that writes the batches once a second."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stats-flush", daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(FLUSH_SECONDS):
            try:
                self.observer.flush()
            except Exception as error:  # the loop must outlive any one flush
                log.error("flush failed (%s); next in %.0f s", type(error).__name__, FLUSH_SECONDS)

    def stop(self) -> None:
        """Stop the loop and write what is left: a worker leaving loses nothing."""
        self.stopping.set()
        self.thread.join(STOP_WAIT_SECONDS)
        self.observer.flush()


class _Counted:
    """A response body that counts its bytes as it is sent and reports when closed."""

    def __init__(self, body: Iterable[bytes], finished: Callable[[int], None]) -> None:
        self._body = body
        self._finished = finished
        self._size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._size += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finished(self._size)


def observe_middleware(
    app: WSGIApp, observer: Observer, cached: Callable[[dict], Answer | None]
) -> WSGIApp:
    """Answers what `cached` has (the fast path), lets `app` answer the rest, counts both.

    A cached answer is sent and counted right here, in this one call: for a cached feed
    each further WSGI layer and closure was a visible share of the cost.
    """

    def serve(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        answer = cached(environ)
        if answer is not None:
            body = b"" if environ["REQUEST_METHOD"] == "HEAD" else answer.body
            start_response(STATUS_LINES[answer.status], answer.headers)
            observer.done(environ, answer.status, len(body), started, FAST_TIER)
            return [body]
        return _through(app, observer, environ, start_response, started)

    return serve


def _through(
    app: WSGIApp, observer: Observer, environ: dict, start_response: StartResponse, started: float
) -> Iterable[bytes]:
    """Any other request: the app answers, and the answer is counted once its body is sent."""
    TIER.set("")
    status: list[int] = []

    def capture(line: str, headers: list, exc_info: Any = None) -> Any:
        status[:] = [int(line[:3])]
        return start_response(line, headers, exc_info)

    body = app(environ, capture)
    if isinstance(body, list):  # the whole body is here
        observer.done(environ, status[0], sum(map(len, body)), started, TIER.get())
        return body
    return _Counted(body, lambda size: observer.done(environ, status[0], size, started, TIER.get()))


def start_flusher(observer: Observer) -> Flusher:
    """This worker's flush loop (gunicorn's post_worker_init)."""
    flusher = Flusher(observer)
    flusher.thread.start()
    return flusher


def worker_gone(pid: int) -> None:
    """Let prometheus_client forget a dead worker's live gauges (gunicorn's child_exit)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)

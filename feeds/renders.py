"""How many first renders a worker does at once, shared fairly between clients.

Under gevent a render (a query, a template or feedgen, a compression) is CPU work that
holds the whole worker: while it runs, no other greenlet, cached answers included, is
served. So each worker lets only a few renders run, a few more wait (without using CPU),
and each client address only its share (one by default); anything beyond is refused at once with
`Busy` (the HTTP layer answers 503 with Retry-After), never queued without bound.

Only requests are counted: the HTTP layer names the client (`CLIENT`) before a view
runs. Work with no client (commands, exports, WebSub pushes) is not held back. Cached
answers never come here: `FeedCache` asks for a slot only when it must render.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

# The client address of the current request ("" outside requests); each greenlet has its own.
CLIENT: ContextVar[str] = ContextVar("feeds_render_client", default="")
# Whether the current greenlet holds a slot: a render inside a render takes no second one.
_HOLDING: ContextVar[bool] = ContextVar("feeds_render_holding", default=False)

T = TypeVar("T")
RETRY_AFTER_SECONDS = 1
PAUSE_SECONDS = 0.0001
PAUSE_EVERY = 50  # entries of a feed built between pauses (about 5 ms of work)
WAIT_SECONDS = 5.0  # longest a render waits for a slot before it is refused


class Busy(Exception):
    """No render slot for this request now; the HTTP layer answers 503 with Retry-After."""

    retry_after = RETRY_AFTER_SECONDS


def pause() -> None:
    """Let the worker serve other connections between the stages of a render.

    gevent patches `time.sleep` in the workers. `sleep(0)` would not do: it resumes from
    the loop's callbacks before the loop polls sockets, so a render pausing that way still
    holds every waiting client (measured: a reader waited 2.4 s behind 50 ms stages). A
    timer, however short, lets the loop poll first. Without gevent this costs a few
    microseconds.
    """
    time.sleep(PAUSE_SECONDS)


def paced(items: Iterable[T]) -> Iterator[T]:
    """`items`, with a `pause` after every PAUSE_EVERY: a long feed's entries are CPU work
    that would otherwise hold the worker from the first to the last."""
    for index, item in enumerate(items, start=1):
        yield item
        if index % PAUSE_EVERY == 0:
            pause()


class RenderGate:
    """At most `running` renders at once and `waiting` more queued, per process; once no
    slot is free, at most `per_client` of those (running or waiting) for one client address.

    A free slot is anyone's: a reader whose feeds all need a first render (after a release)
    is not refused while the worker is idle. Under contention a client that already has its
    share is refused at once, and the queue is left to the others.

    The semaphore and the lock are made on first use in each process, never at import
    or in the gunicorn master: made there, before gevent patches `threading`, they would
    be real OS locks in the workers and a waiting greenlet would freeze its worker. The
    lock guards only the counters, never I/O or a render.
    """

    def __init__(self, running: int, waiting: int, per_client: int = 1) -> None:
        self.running = running
        self.waiting = waiting
        self.per_client = per_client
        self._pid = 0
        self._slots: threading.Semaphore | None = None
        self._lock: threading.Lock | None = None
        self._in_flight = 0
        self._by_client: dict[str, int] = {}
        self.refused = 0

    def _parts(self) -> tuple[threading.Semaphore, threading.Lock]:
        if self._pid != os.getpid() or self._slots is None or self._lock is None:
            self._slots = threading.Semaphore(self.running)
            self._lock = threading.Lock()
            self._in_flight, self._by_client, self._pid = 0, {}, os.getpid()
        return self._slots, self._lock

    @property
    def in_flight(self) -> int:
        """Renders running or waiting in this process now."""
        return self._in_flight

    def has_share(self, client: str) -> bool:
        """Whether `client` may start another render now (a read: no lock, no wait)."""
        return self._in_flight < self.running or self._by_client.get(client, 0) < self.per_client

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a render slot for the current client, or raise Busy at once (or after a
        bounded wait)."""
        client = CLIENT.get()
        if not client or _HOLDING.get():
            yield
            return
        slots, lock = self._parts()
        with lock:
            full = self._in_flight >= self.running + self.waiting
            if full or not self.has_share(client):
                self.refused += 1
                raise Busy
            self._in_flight += 1
            self._by_client[client] = self._by_client.get(client, 0) + 1
        try:
            if not slots.acquire(timeout=WAIT_SECONDS):
                self.refused += 1
                raise Busy
            holding = _HOLDING.set(True)
            try:
                pause()
                yield
            finally:
                _HOLDING.reset(holding)
                slots.release()
        finally:
            with lock:
                self._in_flight -= 1
                left = self._by_client.pop(client) - 1
                if left:
                    self._by_client[client] = left

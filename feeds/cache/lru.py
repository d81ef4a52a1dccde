"""The per-process tier: ready objects in a mapping bounded in count and in bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import suppress
from typing import Generic, Protocol, TypeVar


class Sized(Protocol):
    @property
    def size(self) -> int:
        """Bytes the value holds, the same for as long as a cache holds it."""
        ...


V = TypeVar("V", bound=Sized)


class LocalLRU(Generic[V]):
    """A thread-safe mapping of ready objects, bounded in count and in bytes.

    The byte bound matters: clients choose `?limit=` and hosts, and each choice is its
    own entry, so a count alone would let them fill a worker's memory with big feeds.
    """

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> V | None:
        """Without the lock: each step is one atomic dict operation, and a read costs no
        lock on the path of every cached answer. A key another thread drops or replaces
        meanwhile reads as absent or is not moved: a miss at worst."""
        value = self._items.get(key)
        if value is not None:
            with suppress(KeyError):
                self._items.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += value.size - (old.size if old is not None else 0)
            self._items[key] = value
            while len(self._items) > 1 and (
                len(self._items) > self._capacity or self._bytes > self._max_bytes
            ):
                self._bytes -= self._items.popitem(last=False)[1].size

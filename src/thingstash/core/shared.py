"""Work shared by the streams of a process: what a change costs (a value read, a query's answer)
is done once per change and key, by the first stream that asks, and taken by every other stream
that asks for the same key, meanwhile or after (issue #24: fan-out once per change, not once per
stream).

A key names the change it is for (its feed event id), so what is taken was made after that
change: at least as new as the change the stream sends it for; a later change has a key of its
own. Pure: stdlib only.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ENTRIES: Final = 1024  # the most recent keys a Shared keeps ...
MAX_AGE_SECONDS: Final = 2.0  # ... for at most this long (a stream further behind makes its own)


class _Entry(Generic[V]):
    __slots__ = ("born", "done", "made", "value")

    def __init__(self) -> None:
        self.born = time.monotonic()
        self.done = threading.Event()
        self.made = False  # False once done: the work failed
        self.value: V | None = None


class Shared(Generic[K, V]):
    """The first to ask for a key does the work; those asking meanwhile wait for it, later ones
    take it (the `size` most recent keys, for `max_age` seconds: what is kept is bounded by
    what a process makes in that while). Work that fails is not shared: each asker then does
    it itself (and meets the error itself)."""

    def __init__(self, size: int = ENTRIES, max_age: float = MAX_AGE_SECONDS) -> None:
        self._size = size
        self._max_age = max_age
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self.made = 0  # how many times the work was done (not taken from another's)

    def _forget_old(self) -> None:
        """Drop the entries older than max_age (the oldest first; under the lock)."""
        too_old = time.monotonic() - self._max_age
        while self._entries:
            key, oldest = next(iter(self._entries.items()))
            if oldest.born > too_old:
                break
            del self._entries[key]

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            self._forget_old()
            entry = self._entries.get(key)
            mine = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry()
                if len(self._entries) > self._size:
                    self._entries.popitem(last=False)
                self.made += 1
        if not mine:
            entry.done.wait()
            if not entry.made:
                return make()
            return cast(V, entry.value)  # made: a V
        try:
            entry.value = make()
            entry.made = True
            return entry.value
        except BaseException:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            raise
        finally:
            entry.done.set()


class SharedBy(Generic[K, V]):
    """A Shared for each owner (a store: what one store's streams share), forgotten with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: weakref.WeakKeyDictionary[object, Shared[K, V]] = weakref.WeakKeyDictionary()

    def of(self, owner: object) -> Shared[K, V]:
        with self._lock:
            found = self._by.get(owner)
            if found is None:
                found = self._by[owner] = Shared()
            return found

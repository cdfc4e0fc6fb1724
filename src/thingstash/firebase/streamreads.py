"""Reads (streams): what a Firebase stream reads for the `put`s it sends (docs/firebase.md,
"Streams").

A change of a thing at or below the stream's location L costs the value of that place. A change
of the thing at or above L (L lies in it) changes own(L), the part of L's value that thing holds,
not the folder below L: the stream keeps own(L) as it last sent it, reads it anew (one thing)
and sends a `put` for each place in it that changed (streaming.member_changes), leaving out a
member an entry of L's folder hides. Only when it does not know what the client holds (before
its first whole read, after a failed send) or own(L) is not an object does it read L's whole
value again. Every read has a fresh budget: past it the stream is cancelled.

A place's value read for a change is read once per process, not once per stream (SharedReads,
a core.shared.Shared of the store's, keyed by the place and the change), so a change watched by
many streams costs one read.

No Flask, no Redis: web/firebase/stream.py calls these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thingstash.core import documents
from thingstash.core.shared import Shared
from thingstash.core.store import Store
from thingstash.firebase import mapping, reading
from thingstash.firebase.mapping import Location
from thingstash.firebase.streaming import member_changes

UNKNOWN: Any = object()  # own(L) as the client holds it is not known
# A place's value (JSON) for a change, by (the place, the change's event id): one per store.
SharedReads = Shared[tuple[Location, str], bytes]


class StreamReads:
    """The reads of one stream at `location`, each within a fresh `budget()`."""

    def __init__(
        self,
        store: Store,
        location: Location,
        budget: Callable[[], reading.Budget],
        shared: SharedReads | None = None,
    ):
        self.store = store
        self.location = location
        self.budget = budget
        self.shared = shared
        self.own: Any = UNKNOWN

    def for_change(self, at: Location, event_id: str) -> bytes:
        """The JSON of the value at `at` for the change `event_id`: as __call__, read once per
        process for every stream that sends it (`shared`), but for the stream's own location
        (whose read notes own(L))."""
        if self.shared is None or at == self.location:
            return self(at)
        return self.shared.get(
            (at, event_id),
            lambda: documents.dumps(reading.read_parts(self.store, at, self.budget())[1]),
        )

    def __call__(self, at: Location) -> bytes:
        """The JSON of the value at `at` (a location), as stream.Read; a read of the stream's
        own location also notes own(L) as sent with it."""
        own, value = reading.read_parts(self.store, at, self.budget())
        if at == self.location:
            self.own = own
        return documents.dumps(value)

    def own_changes(self) -> list[tuple[Location, bytes]] | None:
        """For a change inside the thing at or above the location: each place of own(L) that
        changed since it was last sent (relative to L), with the JSON of its value now; `()`
        and the whole value when L's folder is empty (own(L) is then all of it); nothing when
        own(L) did not change. None when the caller must read and send L's whole value."""
        if self.own is UNKNOWN:
            return None
        now = reading.own_value(self.store, self.location)
        if now == self.own:
            return []
        folder = mapping.folder_path(self.location)
        if not self.store.list_names([(folder, None)], 1)[0][0]:
            self.own = now
            return [((), documents.dumps(now))]
        changes = member_changes(self.own, now)
        if changes is None:
            return None
        tops = sorted({at[0] for at, _ in changes})
        hidden = reading.entry_names(self.store, folder, tops)
        self.own = now
        return [(at, documents.dumps(value)) for at, value in changes if at[0] not in hidden]

    def forget(self) -> None:
        """What was read was not sent: the next change of own(L) sends L whole."""
        self.own = UNKNOWN

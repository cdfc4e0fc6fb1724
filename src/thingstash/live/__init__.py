"""The process's live parts, typed against core.store.Store and free of Flask: the feed reader
(hub.py), the expiry reaper and listener (expiry.py) and the index builder (indexer.py), started
and stopped together as `Live`. An app owns its process's Live and starts it (web/live.py).
"""

from __future__ import annotations

from thingstash.core.store import Store
from thingstash.live.expiry import ExpiryListener, ExpiryReaper
from thingstash.live.hub import Hub
from thingstash.live.indexer import IndexBuilder


class Background:
    """The process's background work: the expiry reaper and listener, the index builder."""

    def __init__(self, store: Store) -> None:
        self.reaper = ExpiryReaper(store)
        self.expiry = ExpiryListener(store)
        self.indexer = IndexBuilder(store)

    def start(self) -> None:
        self.reaper.start()
        self.expiry.start()
        self.indexer.start()

    def close(self, wait: bool = True) -> None:
        self.reaper.close(wait)
        self.expiry.close(wait)
        self.indexer.close(wait)


class Live:
    """The process's live parts: the feed reader (started by its first subscriber) and, unless
    `background` is False (the Firebase face's processes: the native face's do that work), the
    expiry reaper and listener and the index builder (started by `start`). `keepalive`: seconds
    between two keep-alives of a quiet stream."""

    def __init__(self, store: Store, keepalive: float, background: bool = True) -> None:
        self.hub = Hub(store)
        self.background = Background(store) if background else None
        self.keepalive = keepalive

    def start(self) -> None:
        if self.background is not None:
            self.background.start()

    def health(self) -> dict[str, object]:
        """For /_health: open watch streams in this process, and whether expiries are heard
        (False when Redis's keyspace notifications are off and could not be turned on)."""
        expiry_events = self.background is not None and self.background.expiry.enabled
        return {"watchers": self.hub.watchers, "expiry_events": expiry_events}

    def close(self) -> None:
        self.hub.close()
        if self.background is not None:
            self.background.close()

    def stop(self) -> None:
        """Like close, without waiting: safe in a signal handler."""
        self.hub.close()
        if self.background is not None:
            self.background.close(wait=False)

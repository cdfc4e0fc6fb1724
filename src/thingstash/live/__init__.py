"""The process's live parts, typed against model.Store and free of Flask: the feed reader
(hub.py), the expiry reaper and listener (expiry.py) and the index builder (indexer.py), started
and stopped together as `Live`.
"""

from __future__ import annotations

from thingstash.core.store import Store
from thingstash.live.expiry import ExpiryListener, ExpiryReaper
from thingstash.live.hub import Hub
from thingstash.live.indexer import IndexBuilder


class Live:
    """The process's live parts: the feed reader, the expiry reaper and listener."""

    def __init__(self, store: Store, keepalive: float) -> None:
        self.hub = Hub(store)
        self.reaper = ExpiryReaper(store)
        self.expiry = ExpiryListener(store)
        self.indexer = IndexBuilder(store)
        self.keepalive = keepalive

    def health(self) -> dict[str, object]:
        """For /_health: open watch streams in this process, and whether expiries are heard
        (False when Redis's keyspace notifications are off and could not be turned on)."""
        return {"watchers": self.hub.watchers, "expiry_events": self.expiry.enabled}

    def close(self) -> None:
        self.hub.close()
        self.reaper.close()
        self.expiry.close()
        self.indexer.close()

    def stop(self) -> None:
        """Like close, without waiting: safe in a signal handler."""
        self.hub.close()
        self.reaper.close(wait=False)
        self.expiry.close(wait=False)
        self.indexer.close(wait=False)

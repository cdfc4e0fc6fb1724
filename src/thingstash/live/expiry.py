"""The process's expiry threads.

The reaper: every REAP_EVERY_S it takes the things whose lifetime ended from the store's expiry
schedule, in bounded batches, and reaps them (gone from Redis and from their folders, an
`expire` event each), so expiries reach listings and watchers within about a second whatever the
store's size. Every process reaps; the scripts are idempotent, and a thing's folder index entry
is the guard that makes exactly one `expire` event.

The listener (keyspace notifications, `expired` events) stays as the backstop for things the
schedule does not hold: written before the schedule existed, or, on a cluster, by a write
interrupted between the thing and its schedule entry. Redis expires those at its own pace; each
process hears it and records it with the same guard.
"""

from __future__ import annotations

import logging
import threading
import uuid

from thingstash.core.model import StorageUnavailable
from thingstash.core.store import Expiry
from thingstash.live.periodic import Periodic

log = logging.getLogger(__name__)

REAP_EVERY_S = 0.5  # how often each process reaps what the expiry schedule says is due


class ExpiryListener:
    """Hears Redis expire a thing's key and records it as an `expire` event (idempotently)."""

    def __init__(self, store: Expiry) -> None:
        self.store = store
        self.enabled = store.enable_expiry_notifications()
        self._stop = False
        self._wake_channel = f"{store.prefix}:wake:{uuid.uuid4().hex}"
        self._thread = threading.Thread(target=self._run, name="expiry-listener", daemon=True)
        if not self.enabled:
            log.warning(
                "Redis keyspace notifications are off and CONFIG SET is not allowed: things "
                "the expiry schedule does not hold (written before it existed) leave listings "
                "only when listed, and watchers hear of them only then. Set "
                "notify-keyspace-events to include 'Ex' on the Redis server."
            )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.store.listen_expired(self._record, lambda: self._stop, self._wake_channel)
        except Exception:  # noqa: BLE001 - a dying listener must say so, not vanish
            if not self._stop:
                log.exception("expiry listener failed")

    def _record(self, paths: list[str]) -> None:
        try:
            self.store.record_expiries(paths)
        except StorageUnavailable as error:
            log.warning("could not record the expiry of %d things: %s", len(paths), error)

    def close(self, wait: bool = True) -> None:
        self._stop = True
        if self._thread.is_alive():
            self.store.wake(self._wake_channel)
            if wait:
                self._thread.join(2)


class ExpiryReaper(Periodic[Expiry]):
    """Reaps, every REAP_EVERY_S, what the store's expiry schedule says is due."""

    name = "expiry-reaper"
    doing = "reap expired things"

    def __init__(self, store: Expiry, every: float = REAP_EVERY_S) -> None:
        super().__init__(store, every)

    def tick(self) -> None:
        more = True
        while more and not self._stop.is_set():  # a burst: batch after batch
            _, more = self.store.reap()

"""The process's index builder: every BUILD_EVERY_S it asks the store to take what is stored
into the indexes still building (store.build_indexes): bounded batches, one process per index
(a lease in Redis), so a 1,000,000-thing folder is indexed beside the traffic, not instead of it.
Every write keeps an index current from the moment it is declared; the build only catches up
with what was stored before."""

from __future__ import annotations

import logging
import random
import threading

from thingstash.model import Store

log = logging.getLogger(__name__)

BUILD_EVERY_S = 1.0


class IndexBuilder:
    def __init__(self, store: Store, every: float = BUILD_EVERY_S) -> None:
        self.store = store
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-builder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        self._stop.wait(random.SystemRandom().uniform(0, self.every))
        troubled = False
        while not self._stop.is_set():
            try:
                self.store.build_indexes(self._stop)
                troubled = False
            except Exception as error:  # noqa: BLE001 - the builder must outlive any error
                if not troubled:
                    log.warning("could not build indexes, will retry: %s", error)
                troubled = True
            self._stop.wait(self.every)

    def close(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._thread.is_alive():
            self._thread.join(2)

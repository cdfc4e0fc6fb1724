"""A process's periodic background work (the expiry reaper, the index builder): one daemon
thread that runs a tick every so often, outlives any error, and stops when closed."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Generic, TypeVar

S = TypeVar("S")  # the store role(s) the work uses (core/store.py)


class Periodic(Generic[S]):
    """Calls `tick()` every `every` seconds on its own thread until `close()`."""

    name = "periodic"  # the thread's name
    doing = "do its work"  # what the warning says could not be done

    def __init__(self, store: S, every: float) -> None:
        self.store = store
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._log = logging.getLogger(type(self).__module__)

    def start(self) -> None:
        self._thread.start()

    def tick(self) -> None:
        raise NotImplementedError

    def rest(self, took: float) -> float:
        """How long to wait after a tick that took `took` seconds: the rest of the period."""
        return max(0.0, self.every - took)

    def _run(self) -> None:
        # Processes started together would work in step, each reading the same batch. (Not
        # the shared `random` state: a thread must not draw from it under a test's feet.)
        self._stop.wait(random.SystemRandom().uniform(0, self.every))
        troubled = False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
                troubled = False
            except Exception as error:  # noqa: BLE001 - the thread must outlive any error
                if not troubled:  # said once per outage, not at every tick
                    self._log.warning("could not %s, will retry: %s", self.doing, error)
                troubled = True
            self._stop.wait(self.rest(time.monotonic() - started))

    def close(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._thread.is_alive():
            self._thread.join(2)

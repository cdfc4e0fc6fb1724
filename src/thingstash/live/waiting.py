"""How thousands of stream coroutines wait on one event loop, cheaply (issue 24).

Profiled with 10,000 watchers of one folder, half the loop's time went to asyncio's own timers:
each wait made a timer (`asyncio.timeout`, `asyncio.sleep`), pushed on and cancelled from a
heap of thousands, and each event woke every coroutine twice (its delivery, then the end of its
rest after sending). So here:

- a `Bell` reaches a group's streams parked on one loop (its riders, live/riding.py, advanced
  in place) with one call into the loop per batch of deliveries, and rings at most every
  `SPACING` seconds, or 4 times as long as its last ring's riders took (up to MAX_SPACING): a
  burst reaches them as one ring, so a stream needs no rest timer of its own after it sends,
  and a group of thousands batches more deliveries into each write rather than fall behind;
- a `Ticker` gives coarse timers (keep-alives, gathering, retries) that share one loop timer per
  `RESOLUTION` seconds of deadline, however many coroutines wait for it.

No I/O here.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Callable
from typing import Protocol

SPACING = 0.1  # seconds between two rings of one bell (live/streamloop.MIN_INTERVAL)...
MAX_SPACING = 1.0  # ...or longer, 4 times as long as its last ring took, up to this
RESOLUTION = 0.05  # seconds: a Ticker's deadlines fall on this grid (at most this much late)
CLOCK_STEP = 0.001  # uvloop's clock counts milliseconds: a timer may fire this much "early"


class Ringable(Protocol):
    def rung(self) -> float | None:
        """Its bell rang (called on the bell's loop): the write time (epoch seconds) of the
        oldest change it sent, if it sent any."""


# Told of each ring that sent something: (seconds its riders took, seconds from the oldest
# change's write to the ring's end). web/live.py hands them to /_metrics.
RingObserver = Callable[[float, float], None]
_observers: list[RingObserver] = []


def observe_rings(observer: RingObserver) -> Callable[[], None]:
    """Tell `observer` of every ring from now on, in this process (once: a second is ignored);
    what stops it."""
    if observer not in _observers:
        _observers.append(observer)
    return lambda: _observers.remove(observer) if observer in _observers else None


class Bell:
    """Rings a group's riders (live/riding.py) parked on one event loop when deliveries come."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.riders: set[Ringable] = set()
        self._ringing = False
        self._last = -math.inf
        self.spacing = SPACING

    def ring(self) -> None:
        """From any thread. A ring while one is on its way adds nothing: that one rings all."""
        if self._ringing:
            return
        self._ringing = True
        try:
            self.loop.call_soon_threadsafe(self._ring)
        except RuntimeError:  # the loop is closed: nobody waits there any more
            pass

    def _ring(self) -> None:
        now = self.loop.time()
        if now < self._last + self.spacing - CLOCK_STEP:
            # Too soon after the last: rung then (rings meanwhile fold into this one).
            self.loop.call_at(self._last + self.spacing, self._ring)
            return
        self._ringing = False
        self._last = now
        started = time.perf_counter()
        oldest = math.inf
        try:
            for rider in list(self.riders):
                try:
                    sent = rider.rung()
                except Exception as error:  # noqa: BLE001 - one stream's fault: the others go on
                    self.loop.call_exception_handler(
                        {"message": "a stream failed at its ring", "exception": error}
                    )
                else:
                    if sent is not None and sent < oldest:
                        oldest = sent
        finally:
            took = time.perf_counter() - started
            self._rest_after(took)
        if oldest != math.inf:
            late = time.time() - oldest
            for observer in _observers:
                observer(took, late)

    def _rest_after(self, took: float) -> None:
        # A ring whose riders took long (thousands of streams) is followed by a longer rest:
        # the loop spends at most a quarter of its time sending one group's deliveries, whatever
        # comes; more of them go out in each write (fewer writes for the box and the clients
        # to carry) instead of falling behind. Measured with 10,000 watchers of one folder on
        # 2 cores: p99 8.0 s resting SPACING, 2.6 s resting twice as long as the ring took,
        # 1.1 s three times, 1.0 s four times (then the load generator was the busier).
        self.spacing = min(max(SPACING, 4 * took), MAX_SPACING)


class Ticker:
    """Coarse timers on one event loop: a deadline is rounded up to the next multiple of
    RESOLUTION, and one loop timer wakes every future due then."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # (weak: the table of tickers by loop lets go of both)
        self.slots: dict[int, set[asyncio.Future[None]]] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop()
        if loop is None:
            raise RuntimeError("the ticker's event loop is gone")
        return loop

    def add(self, future: asyncio.Future[None], delay: float) -> int:
        """Wake `future` in `delay` seconds (or up to RESOLUTION later); its slot, to `discard`."""
        slot = math.ceil((self.loop.time() + max(delay, 0.0)) / RESOLUTION)
        due = self.slots.get(slot)
        if due is None:
            due = self.slots[slot] = set()
            self.loop.call_at(slot * RESOLUTION, self._fire, slot)
        due.add(future)
        return slot

    def discard(self, future: asyncio.Future[None], slot: int) -> None:
        due = self.slots.get(slot)
        if due is not None:
            due.discard(future)

    def _fire(self, slot: int) -> None:
        for future in self.slots.pop(slot, ()):
            if not future.done():
                future.set_result(None)

    async def sleep(self, delay: float) -> None:
        await self.sleep_on(self.loop.create_future(), delay)

    async def sleep_on(self, future: asyncio.Future[None], delay: float) -> None:
        """Until `future` is done (by someone else) or `delay` seconds pass."""
        slot = self.add(future, delay)
        try:
            await future
        finally:
            self.discard(future, slot)


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker] = weakref.WeakKeyDictionary()


def ticker() -> Ticker:
    """The running loop's Ticker."""
    loop = asyncio.get_running_loop()
    found = _tickers.get(loop)
    if found is None:
        found = _tickers[loop] = Ticker(loop)
    return found

"""Fan-out without waking a coroutine per stream (issue 24).

Profiled with 10,000 watchers of one folder, a delivery cost ~50 µs of CPU, most of it not the
send: the coroutine woken (a future set, a task stepped), the take and its wait set up again.
So a stream coroutine that waits for deliveries parks as a `Rider` on its group's bell
(live/waiting.Bell), and the ring itself advances the stream's loop where it stands: takes its
deliveries, lets its face produce the frames (from memory), asks whether it is still allowed,
and sends, through `push` (the front's send, run to its end at once when it needs no waiting:
`finish_now`). The coroutine is woken only for what cannot be done there: a read of the store
(a catch-up, a Firebase value), a pause, a send that must wait, the end, or its take's timeout
(a keep-alive). What the loop does is unchanged: the same steps, answered by a second driver.
A face that can tell a take's frames from memory (a native watch in step with the feed) is
asked directly (a `Shortcut`), its loop left at its take: a delivery then costs a look, a check
that the stream is still allowed, the face's filter and the send. (Its keep-alives then go on
as if the stream were quiet: a comment line each keep-alive period.)

No I/O here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any

from thingstash.live.hub import Delivery, Subscription
from thingstash.live.steps import Pause, Step, Stepper, Take, Work
from thingstash.live.waiting import CLOCK_STEP, SPACING, Ticker

Push = Callable[[bytes], Awaitable[None] | None]
# A face's answer from memory for a take of deliveries (live/streamloop.shortcut): the bytes to
# send now, or None when the loop must take them (something else pending, a read needed, the
# stream no longer allowed).
Shortcut = Callable[[list[Delivery]], bytes | None]


class Rider:
    """A stream coroutine's loop, parked at a take on its group's bell (see the module's doc)."""

    def __init__(
        self,
        stepper: Stepper,
        subscription: Subscription,
        push: Push,
        clock: Ticker,
        shortcut: Shortcut | None = None,
    ):
        self.stepper = stepper
        self.subscription = subscription
        self.push = push
        self.clock = clock
        self.shortcut = shortcut
        self.parked = False
        self.deadline = 0.0
        self.handed: Handoff = None
        self._wake: asyncio.Future[None] | None = None

    async def ride(self, take: Take) -> Handoff:
        """Park at `take` until the bell's rings hand the coroutine a step it must do itself
        (returned), or the take times out (None: the stepper holds the take's reply)."""
        group = self.subscription.group
        loop = self.clock.loop
        with group.cond:
            taken = self.subscription.take_now()
            bell = group.bell(loop)
            if taken is None:
                # Looked at and parked under the reader's lock: a later delivery rings after.
                bell.riders.add(self)
                self.parked = True
        if taken is not None:
            self.stepper.reply = taken
            return None
        self.deadline = loop.time() + take.timeout
        self.handed = None
        try:
            while self.parked:
                left = self.deadline - loop.time()
                if left <= CLOCK_STEP:  # its take timed out: the loop goes on with what is there
                    self.stepper.reply = self.subscription.take_now()
                    return None
                self._wake = loop.create_future()
                await self.clock.sleep_on(self._wake, left)
            return self.handed
        finally:
            self.parked = False
            bell.riders.discard(self)

    def rung(self) -> float | None:
        """The bell rang (on the loop): advance the loop as far as it goes without waiting; the
        write time of the oldest change it sent then (for /_metrics), if it sent one."""
        if not self.parked:
            return None
        taken = self.subscription.take_now()
        if taken is None:
            return None
        deliveries, lagging, ended = taken
        oldest = deliveries[0].order[0] / 1000 if deliveries else None
        if self.shortcut is not None and not lagging and not ended:
            try:
                frames = self.shortcut(deliveries)
                if frames is not None:
                    # Sent as the loop would have (the loop stays at its take).
                    rest = self.push(frames) if frames else None
                    if rest is not None:
                        self._hand(Sending(rest, self._take_left()))
                    return oldest if frames else None
            except Exception as error:  # noqa: BLE001 - raised in the coroutine, which ends on it
                self._hand(Failed(error))
                return None
        self.stepper.reply = taken
        sent = None
        try:
            while True:
                step = self.stepper.next()
                if isinstance(step, bytes):
                    sent = oldest
                    rest = self.push(step)
                    if rest is not None:
                        self._hand(Sending(rest))
                        return sent
                elif isinstance(step, Work) and step.inline:
                    self.stepper.work(step.call)
                elif isinstance(step, Pause) and step.rest and step.seconds <= SPACING:
                    continue  # the bell rings no sooner than that
                elif isinstance(step, Take):
                    taken = self.subscription.take_now()
                    if taken is None:
                        self._park_on(step)
                        return sent
                    self.stepper.reply = taken
                else:
                    self._hand(step)  # the end (None), a read of the store, a pause
                    return sent
        except Exception as error:  # noqa: BLE001 - raised in the coroutine, which ends on it
            self._hand(Failed(error))
            return sent

    def _take_left(self) -> Take:
        """What is left of the take it is parked at."""
        return Take(max(self.deadline - self.clock.loop.time(), 0.0))

    def _park_on(self, take: Take) -> None:
        deadline = self.clock.loop.time() + take.timeout
        sooner, self.deadline = deadline < self.deadline, deadline
        if sooner:
            self._nudge()  # its coroutine waits for the later one: it sets its timer again

    def _hand(self, handed: Handoff) -> None:
        self.handed = handed
        self.parked = False
        self._nudge()

    def _nudge(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)


class Sending:
    """A send the rider began that must be waited for: the coroutine awaits `rest`, then goes
    on with the loop, or with `then` (a shortcut's send: the loop is still at its take)."""

    def __init__(self, rest: Awaitable[None], then: Take | None = None) -> None:
        self.rest = rest
        self.then = then


class Failed:
    """The loop (or a send) raised while the rider drove it: the coroutine raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def finish_now(awaitable: Awaitable[None]) -> Awaitable[None] | None:
    """Run `awaitable` as far as it goes without waiting: None when it is done, else what is left
    of it, to await. (Granian's ASGI send does its work when called: its awaitable is done at
    once. One that must wait for something yields it, and its rest is awaited as usual.)"""
    steps = awaitable.__await__()
    try:
        yielded = next(steps)
    except StopIteration:
        return None
    return _Rest(steps, yielded)


class _Rest:
    """The rest of an awaitable begun by finish_now: awaiting it hands what it waits on to the
    awaiting task, as awaiting the whole would have."""

    def __init__(self, steps: Iterator[Any], yielded: Any) -> None:
        self.steps = steps
        self.yielded = yielded

    def __await__(self) -> Generator[Any, None, None]:
        yielded = self.yielded
        while True:
            try:
                yield yielded
            except BaseException as error:  # cancelled: passed on, as to the whole
                throw = getattr(self.steps, "throw", None)
                if throw is None:
                    raise
                try:
                    yielded = throw(error)
                except StopIteration:
                    return
                continue
            try:
                yielded = next(self.steps)
            except StopIteration:
                return


# What a rider hands its coroutine: the step it stands at (None: the loop ended, or its take
# timed out), a send to wait for, or an error to raise.
Handoff = Step | Sending | Failed | None

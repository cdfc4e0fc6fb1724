"""One loop for every stream: native watches (web/watch.py), live queries (web/queries.py) and
Firebase streams (web/firebase/stream.py). Each kind is a `Face`, a small policy of what it
sends; the loop does the rest, the same for all: what is sent first, taking what the feed
reader (live.hub) delivers, gathering a burst, catching up when behind (the face's `produce`),
keep-alives when quiet, asking again before each send whether the stream is still allowed (a
revoked key, a rule that no longer lets its user read: the face's last words, then the end),
and waiting out an unavailable store (the stream stays open and misses nothing).

The loop does no I/O itself: it is a generator that yields the bytes to send and says what it
needs done (`Take` deliveries, `Pause`, `Work`: a blocking call such as a read of the store),
answered by whoever drives it. `run_blocking` drives it on the request's own thread; a driver on
an event loop answers the same steps with awaits (and `Work` from a small pool of threads).

No Flask, no Redis here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import Protocol, runtime_checkable

from thingstash.core.model import StorageUnavailable
from thingstash.live.hub import Delivery, Subscription
from thingstash.live.riding import Failed, Handoff, Push, Rider, Sending, Shortcut, finish_now
from thingstash.live.steps import Loop, Pause, Stepper, Take, Work
from thingstash.live.waiting import CLOCK_STEP, SPACING, ticker

log = logging.getLogger(__name__)

MIN_INTERVAL = SPACING  # seconds between two writes to one stream, when events keep coming
RETRY_S = 0.5  # how often a stream tries the store again while it is away


class Ended(Exception):  # noqa: N818 (not an error: how a face ends its stream)
    """Raised by a face's `produce`: the stream sends `frames` and ends (a Firebase `cancel`)."""

    def __init__(self, frames: bytes) -> None:
        super().__init__("the stream ends")
        self.frames = frames


class Face(Protocol):
    """What one kind of stream sends. The loop calls `note` with each take of deliveries (or a
    lag: the feed reader dropped some, the face must read the feed itself) and, once
    `pending` has been so for `gather_s`, `produce` for the frames to send now (through `Work`:
    it may read the store); after a send it pauses `rest_s`, so a burst goes out in one write."""

    name: str  # for the log: "watch of /a/b"
    keepalive_frame: bytes
    revoked_frame: bytes  # the last words of a stream no longer allowed
    waiting_frame: bytes | None  # sent at each try while the store is away (None: nothing)
    gather_s: float
    rest_s: float

    @property
    def pending(self) -> bool: ...

    @property
    def blocking(self) -> bool:
        """Whether `produce` may read the store now (else it answers from memory, and a driver
        on an event loop runs it there rather than hand it to a thread)."""
        ...

    def note(self, deliveries: list[Delivery], lagging: bool) -> None: ...

    def produce(self) -> list[bytes]:
        """The frames for what is pending; raises StorageUnavailable (tried again, nothing
        lost) or Ended."""
        ...


def stream_loop(
    face: Face,
    opening: list[bytes],
    allowed: Callable[[], bool],
    keepalive: float,
    closed: Callable[[], bool],
) -> Loop:
    """The stream of `face` after `opening` (sent first, at once), until the client goes (the
    driver closes the generator), `closed()` (the process stops), the subscription is closed,
    or `allowed()` says no (then `face.revoked_frame`)."""
    if opening:
        yield b"".join(opening)
    quiet_since = time.monotonic()
    dirty_since = quiet_since if face.pending else None
    waiting = False
    while not closed():
        now = time.monotonic()
        if dirty_since is not None and now - dirty_since >= face.gather_s - CLOCK_STEP:
            try:
                frames: list[bytes] = yield Work(face.produce, inline=not face.blocking)
            except StorageUnavailable as error:
                # Redis away (or a cluster failing over): stay open and try again.
                if not waiting:
                    log.warning("%s waits for the store: %s", face.name, error)
                waiting = True
                if face.waiting_frame is not None:
                    yield face.waiting_frame  # also tells whether the client is still there
                yield Pause(min(RETRY_S, keepalive))
                continue
            except Ended as end:
                yield end.frames
                return
            waiting = False
            dirty_since = time.monotonic() if face.pending else None
            if frames:
                if not (yield Work(lambda: still(allowed), inline=True)):
                    yield face.revoked_frame
                    return
                yield b"".join(frames)
                quiet_since = time.monotonic()
                if face.rest_s:
                    # Under a stream of events, wake at most every rest_s: what arrives
                    # meanwhile waits in the group's log and goes out in one write.
                    yield Pause(face.rest_s, rest=True)
            continue
        if dirty_since is None:
            wait = keepalive - (now - quiet_since)
        else:
            wait = dirty_since + face.gather_s - now
        taken = yield Take(max(wait, 0.0))
        if taken is None:
            if dirty_since is None:
                if not (yield Work(lambda: still(allowed), inline=True)):
                    yield face.revoked_frame
                    return
                yield face.keepalive_frame
                quiet_since = time.monotonic()
            continue
        deliveries, lagging, ended = taken
        if ended:
            return
        face.note(deliveries, lagging)
        if dirty_since is None and face.pending:
            dirty_since = time.monotonic()


@runtime_checkable
class Direct(Protocol):
    def at_once(self, deliveries: list[Delivery]) -> list[bytes] | None:
        """The frames for a take of `deliveries`, when the face can tell them from memory and
        has nothing else pending (its state moved on as a send of them moves it); else None,
        nothing changed (the loop takes them)."""
        ...


def shortcut(face: Face, allowed: Callable[[], bool]) -> Shortcut | None:
    """For a face that is Direct, its answer from memory (live/riding.py), checked as the loop
    checks each send: the stream still allowed (else None: the loop says its last words)."""
    if not isinstance(face, Direct):
        return None
    at_once = face.at_once

    def answer(deliveries: list[Delivery]) -> bytes | None:
        if not still(allowed):
            return None
        frames = at_once(deliveries)
        return None if frames is None else b"".join(frames)

    return answer


def still(allowed: Callable[[], bool]) -> bool:
    """Whether the stream is still allowed; True while the store can't tell (the next send or
    keep-alive asks again)."""
    try:
        return bool(allowed())
    except StorageUnavailable:
        return True


def run_blocking(steps: Loop, subscription: Subscription) -> Iterator[bytes]:
    """Drive a stream loop on this thread: its bytes, as a WSGI body."""
    stepper = Stepper(steps)
    try:
        while (step := stepper.next()) is not None:
            if isinstance(step, bytes):
                yield step
            elif isinstance(step, Take):
                stepper.reply = subscription.take(step.timeout)
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
            else:
                stepper.work(step.call)
    finally:
        steps.close()


async def run_async(
    steps: Loop,
    subscription: Subscription,
    send: Callable[[bytes], Awaitable[None]],
    pool: Executor | None,
    push: Push | None = None,
    shortcut: Shortcut | None = None,
) -> None:
    """Drive a stream loop as a coroutine on the running event loop: it holds no thread while it
    waits; `Work` that is not inline runs on `pool` (a few threads, so a few connections to the
    store serve every stream), the rest on the loop. `send` writes to the client. It waits for
    deliveries as a Rider (live/riding.py), whose bell sends them without waking it, through
    `push` (a send that does its work when called; by default `send`, run as far as it goes)."""
    loop = asyncio.get_running_loop()
    clock = ticker()
    stepper = Stepper(steps)
    if push is None:
        push = lambda data: finish_now(send(data))  # noqa: E731
    rider = Rider(stepper, subscription, push, clock, shortcut)
    rest_until = 0.0
    try:
        step: Handoff = stepper.next()
        while step is not None:
            if isinstance(step, bytes):
                await send(step)
            elif isinstance(step, Take):
                if rest_until > loop.time() and subscription.ready():
                    # Deliveries came while it produced and sent: they wait out the rest, so
                    # a burst still goes out in one write.
                    await clock.sleep(rest_until - loop.time())
                handed = await rider.ride(step)
                if handed is not None:
                    step = handed  # where the rider stopped: done here
                    continue
            elif isinstance(step, Pause):
                if step.rest and step.seconds <= SPACING:
                    # Kept at the next take, and only when it finds deliveries at once: a
                    # coroutine waiting on its bell is not woken within SPACING of the last.
                    rest_until = loop.time() + step.seconds
                else:
                    await clock.sleep(step.seconds)
            elif isinstance(step, Sending):
                await step.rest
                if step.then is not None:
                    step = step.then
                    continue
            elif isinstance(step, Failed):
                raise step.error
            elif step.inline or pool is None:
                stepper.work(step.call)
            else:
                await stepper.work_async(loop.run_in_executor(pool, step.call))
            step = stepper.next()
    finally:
        steps.close()


class LiveBody:
    """A stream's response body: iterated (a WSGI server's thread), it runs the loop there
    (run_blocking); an async front drives it as a coroutine instead (`drive`). `on_end` runs
    once, however it ends (the loop's end, the client gone, the server closing the body)."""

    def __init__(
        self,
        steps: Loop,
        subscription: Subscription,
        on_end: Callable[[], None],
        shortcut: Shortcut | None = None,
    ):
        self.steps = steps
        self.subscription = subscription
        self.shortcut = shortcut
        self._on_end: Callable[[], None] | None = on_end

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from run_blocking(self.steps, self.subscription)
        finally:
            self.close()

    async def drive(
        self,
        send: Callable[[bytes], Awaitable[None]],
        pool: Executor | None,
        push: Push | None = None,
    ) -> None:
        try:
            await run_async(self.steps, self.subscription, send, pool, push, self.shortcut)
        finally:
            self.close()

    def close(self) -> None:
        on_end, self._on_end = self._on_end, None
        try:
            self.steps.close()
        finally:
            if on_end is not None:
                on_end()

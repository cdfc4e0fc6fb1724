"""The steps of a stream loop (live/streamloop.py) and a driver's side of them: what the loop
asks its driver to do (`Take` deliveries, `Pause`, `Work`) or send (bytes), and `Stepper`, which
hands it the answers. No I/O here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Take:
    """Wait at most `timeout` seconds for deliveries: answered with Subscription.take's reply."""

    timeout: float


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait `seconds`. A `rest` (after a send, so a burst goes out in one write) of at most
    live/waiting.SPACING a driver on an event loop keeps only when its next take finds
    deliveries already there: else the bell it waits on rings no sooner than that."""

    seconds: float
    rest: bool = False


@dataclass(frozen=True, slots=True)
class Work:
    """A blocking call: answered with its result, or its exception raised at the step. An
    `inline` one answers from memory nearly always (a check cached for a second): a driver on
    an event loop runs it there rather than hand it to a thread."""

    call: Callable[[], Any]
    inline: bool = False


Step = bytes | Take | Pause | Work
Loop = Generator[Step, Any, None]


class Stepper:
    """A driver's side of a loop: the next step, given the answer to the last one (its result,
    or its exception raised in the loop, at the step)."""

    def __init__(self, steps: Loop) -> None:
        self.steps = steps
        self.reply: Any = None
        self.error: Exception | None = None

    def next(self) -> Step | None:
        """The next step; None once the loop ended."""
        try:
            if self.error is None:
                step = self.steps.send(self.reply)
            else:
                step = self.steps.throw(self.error)
        except StopIteration:
            return None
        self.reply = self.error = None
        return step

    def work(self, call: Callable[[], Any]) -> None:
        try:
            self.reply = call()
        except Exception as caught:  # raised in the loop, at its step
            self.error = caught

    async def work_async(self, outcome: Awaitable[Any]) -> None:
        try:
            self.reply = await outcome
        except Exception as caught:  # raised in the loop, at its step
            self.error = caught

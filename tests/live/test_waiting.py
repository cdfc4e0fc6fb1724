"""How stream coroutines wait (live/waiting.py): a bell wakes every waiter of its loop, from any
thread, never twice within SPACING; coarse timers wake each waiter no earlier than asked and
leave nothing behind; a wait ends at whichever comes first."""

from __future__ import annotations

import asyncio
import threading
import time

from thingstash.live.waiting import RESOLUTION, SPACING, Bell, observe_rings, ticker, wait


def test_a_ring_from_another_thread_wakes_every_waiter_at_once() -> None:
    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        bell = Bell(loop)
        clock = ticker()
        waits = [asyncio.create_task(wait(clock, bell, 60)) for _ in range(500)]
        await asyncio.sleep(0)  # each registered
        started = loop.time()
        threading.Thread(target=bell.ring).start()
        await asyncio.wait_for(asyncio.gather(*waits), 10)
        return len(bell.waiters), loop.time() - started

    left, took = asyncio.run(main())
    assert left == 0
    assert took < 30  # woken by the ring, not by their 60 s timeout


def test_rings_in_a_burst_wake_the_waiters_once_and_the_next_spacing_later() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        bell = Bell(loop)
        clock = ticker()
        woken: list[float] = []

        async def waiter() -> None:
            while len(woken) < 2:
                await wait(clock, bell, 60)
                woken.append(loop.time())

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        bell.ring()
        await asyncio.sleep(0.01)
        assert len(woken) == 1  # the first ring of a quiet bell: at once
        for _ in range(5):
            bell.ring()  # a burst: folded into one ring, SPACING after the first
            await asyncio.sleep(0.005)
        await asyncio.wait_for(task, 10)
        return woken

    first, second = asyncio.run(main())
    assert second - first >= SPACING - 0.001


def test_a_timer_wakes_no_earlier_than_asked_and_leaves_nothing_behind() -> None:
    async def main() -> tuple[list[float], int, int]:
        loop = asyncio.get_running_loop()
        clock = ticker()
        delays = [0.01 * (i % 12) for i in range(300)]

        async def sleeper(delay: float) -> float:
            started = loop.time()
            await clock.sleep(delay)
            return loop.time() - started - delay

        sleeping = [asyncio.create_task(sleeper(d)) for d in delays]
        await asyncio.sleep(0)
        shared = len(clock.slots)  # 300 sleeps, 12 deadlines within 0.11 s: a few slots
        early = await asyncio.gather(*sleeping)
        return list(early), shared, len(clock.slots)

    lateness, shared, left = asyncio.run(main())
    assert min(lateness) >= -0.001  # never early
    assert shared <= 0.11 / RESOLUTION + 2  # each slot one loop timer, not one per sleep
    assert left == 0


def test_a_wait_woken_by_its_bell_leaves_its_timer_slot_empty() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        bell = Bell(loop)
        clock = ticker()
        waits = [asyncio.create_task(wait(clock, bell, 30)) for _ in range(100)]
        await asyncio.sleep(0)
        bell.ring()
        await asyncio.gather(*waits)
        return sum(len(due) for due in clock.slots.values()), len(bell.waiters)

    assert asyncio.run(main()) == (0, 0)


def test_a_cancelled_wait_is_forgotten_by_its_bell_and_its_timer() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        bell = Bell(loop)
        clock = ticker()
        task = asyncio.create_task(wait(clock, bell, 30))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return sum(len(due) for due in clock.slots.values()), len(bell.waiters)

    assert asyncio.run(main()) == (0, 0)


def test_a_bell_whose_riders_took_long_rests_longer_before_it_rings_again() -> None:
    class Slow:
        def __init__(self) -> None:
            self.rung_at: list[float] = []

        def rung(self) -> None:
            self.rung_at.append(time.monotonic())
            time.sleep(0.05)  # thousands of streams' sends

    async def main() -> list[float]:
        bell = Bell(asyncio.get_running_loop())
        rider = Slow()
        bell.riders.add(rider)
        bell.ring()
        await asyncio.sleep(0.06)
        bell.ring()  # at once after the first: folded until its rest is over
        while len(rider.rung_at) < 2:
            await asyncio.sleep(0.01)
        return rider.rung_at

    first, second = asyncio.run(main())
    assert second - first >= 4 * 0.05 - 0.01  # rung 4 times as long as its riders took


def test_a_rider_that_fails_at_its_ring_does_not_keep_the_others_from_theirs() -> None:
    class Rider:
        def __init__(self, fails: bool) -> None:
            self.fails = fails
            self.rung_times = 0

        def rung(self) -> None:
            self.rung_times += 1
            if self.fails:
                raise RuntimeError("a broken stream")

    async def main() -> tuple[list[int], list[str]]:
        loop = asyncio.get_running_loop()
        reported: list[str] = []
        loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
        bell = Bell(loop)
        riders = [Rider(fails=i % 2 == 0) for i in range(6)]
        bell.riders.update(riders)
        bell.ring()
        await asyncio.sleep(0.05)
        return [r.rung_times for r in riders], reported

    rung, reported = asyncio.run(main())
    assert rung == [1] * 6
    assert reported == ["a stream failed at its ring"] * 3


def test_each_ring_that_sent_is_observed_with_its_oldest_change() -> None:
    class Rider:
        def __init__(self, sent: float | None) -> None:
            self.sent = sent

        def rung(self) -> float | None:
            return self.sent

    seen: list[tuple[float, float]] = []
    stop = observe_rings(lambda took, late: seen.append((took, late)))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        quiet = Bell(loop)
        quiet.riders.add(Rider(None))  # sent nothing: not observed
        quiet.ring()
        busy = Bell(loop)
        written = time.time()
        busy.riders.update([Rider(written - 2.0), Rider(written - 0.5), Rider(None)])
        busy.ring()
        await asyncio.sleep(0.05)

    try:
        asyncio.run(main())
    finally:
        stop()
    assert len(seen) == 1
    took, late = seen[0]
    assert 0 <= took < 1 and 2.0 <= late < 3.0  # from the oldest change the ring sent

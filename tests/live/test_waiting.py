"""How stream coroutines wait (live/waiting.py): a bell rings every rider of its loop, from any
thread, never twice within SPACING (longer after a long ring); coarse timers wake each waiter no
earlier than asked and leave nothing behind, whoever ends the wait."""

from __future__ import annotations

import asyncio
import threading
import time

from thingstash.live.waiting import RESOLUTION, SPACING, Bell, observe_rings, ticker


class Counting:
    """A rider that notes when it was rung."""

    def __init__(self) -> None:
        self.rung_at: list[float] = []

    def rung(self) -> None:
        self.rung_at.append(time.monotonic())


def test_a_ring_from_another_thread_rings_every_rider_at_once() -> None:
    async def main() -> list[int]:
        bell = Bell(asyncio.get_running_loop())
        riders = [Counting() for _ in range(500)]
        bell.riders.update(riders)
        threading.Thread(target=bell.ring).start()
        await asyncio.sleep(0.05)
        return [len(r.rung_at) for r in riders]

    assert asyncio.run(main()) == [1] * 500


def test_rings_in_a_burst_ring_once_and_the_next_spacing_later() -> None:
    async def main() -> list[float]:
        bell = Bell(asyncio.get_running_loop())
        rider = Counting()
        bell.riders.add(rider)
        bell.ring()
        await asyncio.sleep(0.01)
        assert len(rider.rung_at) == 1  # the first ring of a quiet bell: at once
        for _ in range(5):
            bell.ring()  # a burst: folded into one ring, SPACING after the first
            await asyncio.sleep(0.005)
        while len(rider.rung_at) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(SPACING * 2)
        return rider.rung_at

    rung = asyncio.run(main())
    assert len(rung) == 2 and rung[1] - rung[0] >= SPACING - 0.001


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


def test_a_wait_ended_by_another_leaves_its_timer_slot_empty() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        clock = ticker()
        wakes = [loop.create_future() for _ in range(100)]
        waits = [asyncio.create_task(clock.sleep_on(wake, 30)) for wake in wakes]
        await asyncio.sleep(0)
        for wake in wakes:
            wake.set_result(None)  # (a rider handing its coroutine a step)
        await asyncio.wait_for(asyncio.gather(*waits), 10)
        return sum(len(due) for due in clock.slots.values())

    assert asyncio.run(main()) == 0


def test_a_cancelled_wait_is_forgotten_by_its_timer() -> None:
    async def main() -> int:
        clock = ticker()
        task = asyncio.create_task(clock.sleep(30))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return sum(len(due) for due in clock.slots.values())

    assert asyncio.run(main()) == 0


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

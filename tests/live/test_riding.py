"""Streams whose deliveries their bell sends without waking them (live/riding.py, run_async with
a `push`), over a real store (one Redis and the cluster): what each client is sent is what the
coroutine path sends — every change, keep-alives, a revoked stream's last word, a catch-up that
reads the store, a send that must wait, a send that fails — while a change wakes no coroutine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from thingstash.core.store import Store
from thingstash.live.hub import Delivery, Hub
from thingstash.live.riding import Rider, finish_now
from thingstash.live.streamloop import run_async, shortcut, stream_loop

from ..firebase.test_stream_feed_reader import hub, store  # noqa: F401 (fixtures)
from .test_streamloop import KEEPALIVE, REVOKED, PathsFace

pytestmark = pytest.mark.cluster


class Client:
    """One stream's client: what it was sent, through the coroutine's `send` or the bell's
    `push` (counted apart); `waits` pushes must be waited for, `broken` ones fail."""

    def __init__(self, waits: bool = False, broken: bool = False) -> None:
        self.sent: list[bytes] = []
        self.pushed = 0
        self.waits = waits
        self.broken = broken

    async def send(self, data: bytes) -> None:
        self.sent.append(data)

    def push(self, data: bytes) -> Awaitable[None] | None:
        if self.broken:
            raise ConnectionResetError("the client went away")
        self.pushed += 1
        if self.waits:
            return finish_now(self._slow(data))
        return finish_now(self.send(data))

    async def _slow(self, data: bytes) -> None:
        await asyncio.sleep(0.01)
        self.sent.append(data)


@dataclass
class DirectFace(PathsFace):
    """A PathsFace that tells a take's frames from memory (live/streamloop.Direct): the bell
    sends them with the loop left at its take (live/riding.py's shortcut)."""

    at_once_calls: int = 0

    def at_once(self, deliveries: list[Delivery]) -> list[bytes] | None:
        if self.pending:
            return None
        self.at_once_calls += 1
        return [b"data: " + d.event.path.encode() + b"\n\n" for d in deliveries]


def face(direct: bool, **settings: Any) -> PathsFace:
    return DirectFace(**settings) if direct else PathsFace(**settings)


DIRECT = pytest.mark.parametrize("direct", [False, True], ids=["stepped", "direct"])


def put(into: Store, path: str) -> Awaitable[object]:
    return asyncio.to_thread(into.put, path, orjson.dumps({"n": 1}), 60)


async def until(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def ride(
    hub: Hub,  # noqa: F811
    client: Client,
    paths: PathsFace,
    allowed: Callable[[], bool] = lambda: True,
    keepalive: float = 15,
    pool: ThreadPoolExecutor | None = None,
) -> asyncio.Task[None]:
    subscription = hub.subscribe("room/", True)
    steps = stream_loop(paths, [b": open\n\n"], allowed, keepalive, lambda: hub.closed)
    direct = shortcut(paths, allowed)
    return asyncio.create_task(
        run_async(steps, subscription, client.send, pool, client.push, direct)
    )


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@DIRECT
def test_every_change_reaches_every_stream_and_wakes_no_coroutine(
    hub: Hub,  # noqa: F811
    store: Store,  # noqa: F811
    direct: bool,
) -> None:
    async def main() -> tuple[list[Client], int, int]:
        clients = [Client() for _ in range(300)]
        # (resting 0.1 s after a send, as a native watch does)
        faces = [face(direct, blocking=False, rest_s=0.1) for _ in clients]
        tasks = [ride(hub, c, f) for c, f in zip(clients, faces, strict=True)]
        await until(lambda: all(c.sent for c in clients))  # each one open, parked
        wakes = _count_wakes()
        await put(store, "room/a")
        await until(lambda: all(len(c.sent) == 2 for c in clients))
        await asyncio.sleep(0.15)  # (the bell's spacing)
        await put(store, "room/b")
        await until(lambda: all(len(c.sent) == 3 for c in clients))
        woken = wakes()
        await stop(tasks)
        told = sum(
            isinstance(f, DirectFace) and f.at_once_calls == 2 and not f.noted for f in faces
        )
        return clients, woken, told

    clients, woken, told = asyncio.run(main())
    assert told == (300 if direct else 0)  # (the loop itself never stepped: no `note` either)
    assert all(c.sent == [b": open\n\n", b"data: room/a\n\n", b"data: room/b\n\n"] for c in clients)
    assert all(c.pushed == 2 for c in clients)  # sent by the bell, not by the coroutine
    assert woken == 0


def _count_wakes() -> Callable[[], int]:
    """How many parked coroutines are woken from now on (their rider's wake future set)."""
    woken = [0]
    original = Rider._nudge

    def counted(self: Rider) -> None:
        if self._wake is not None and not self._wake.done():
            woken[0] += 1
        original(self)

    Rider._nudge = counted  # type: ignore[method-assign]

    def read() -> int:
        Rider._nudge = original  # type: ignore[method-assign]
        return woken[0]

    return read


@DIRECT
def test_a_quiet_stream_still_gets_its_keepalives(hub: Hub, direct: bool) -> None:  # noqa: F811
    async def main() -> Client:
        client = Client()
        task = ride(hub, client, face(direct, blocking=False), keepalive=0.1)
        await asyncio.sleep(0.45)
        await stop([task])
        return client

    client = asyncio.run(main())
    assert client.sent[0] == b": open\n\n"
    assert 2 <= client.sent.count(KEEPALIVE) <= 5 and len(client.sent) == 1 + client.sent.count(
        KEEPALIVE
    )


@DIRECT
def test_a_stream_no_longer_allowed_gets_its_last_word_and_ends(
    hub: Hub,  # noqa: F811
    store: Store,  # noqa: F811
    direct: bool,
) -> None:
    async def main() -> tuple[Client, bool]:
        client = Client()
        allowed = [True]
        task = ride(hub, client, face(direct, blocking=False), allowed=lambda: allowed[0])
        await until(lambda: bool(client.sent))
        allowed[0] = False
        await put(store, "room/a")
        await asyncio.wait_for(task, 10)  # ended by itself
        return client, task.exception() is None

    client, clean = asyncio.run(main())
    assert client.sent == [b": open\n\n", REVOKED] and clean


def test_a_change_that_needs_a_read_is_handed_to_the_coroutine(
    hub: Hub,  # noqa: F811
    store: Store,  # noqa: F811
) -> None:
    """A face whose produce reads the store (blocking) is answered on the pool, as before."""

    async def main() -> Client:
        client = Client()
        pool = ThreadPoolExecutor(1)
        task = ride(hub, client, PathsFace(blocking=True), pool=pool)
        await until(lambda: bool(client.sent))
        await put(store, "room/a")
        await until(lambda: len(client.sent) == 2)
        await stop([task])
        pool.shutdown()
        return client

    client = asyncio.run(main())
    assert client.sent == [b": open\n\n", b"data: room/a\n\n"]
    assert client.pushed == 0  # read on the pool, then sent by the coroutine itself


@DIRECT
def test_a_send_that_must_wait_is_waited_for_in_order(
    hub: Hub,  # noqa: F811
    store: Store,  # noqa: F811
    direct: bool,
) -> None:
    async def main() -> Client:
        client = Client(waits=True)
        task = ride(hub, client, face(direct, blocking=False))
        await until(lambda: bool(client.sent))
        for name in "abc":
            await put(store, f"room/{name}")
            await asyncio.sleep(0.15)
        await until(lambda: len(client.sent) == 4)
        await stop([task])
        return client

    client = asyncio.run(main())
    assert client.sent == [
        b": open\n\n",
        b"data: room/a\n\n",
        b"data: room/b\n\n",
        b"data: room/c\n\n",
    ]


@DIRECT
def test_a_send_that_fails_ends_the_stream_with_its_error(
    hub: Hub,  # noqa: F811
    store: Store,  # noqa: F811
    direct: bool,
) -> None:
    async def main() -> BaseException | None:
        client = Client(broken=True)
        task = ride(hub, client, face(direct, blocking=False))
        await until(lambda: bool(client.sent))
        await put(store, "room/a")
        await asyncio.wait([task], timeout=10)
        return task.exception() if task.done() else None

    assert isinstance(asyncio.run(main()), ConnectionResetError)


def test_a_gathering_stream_sends_after_its_gather_not_at_its_keepalive(
    hub: Hub,  # noqa: F811
    store: Store,  # noqa: F811
) -> None:
    """A face that gathers a burst (a live query's) waits gather_s after a change, then sends:
    the bell parks it on that shorter take and its coroutine's timer is set again."""

    async def main() -> tuple[Client, float]:
        client = Client()
        task = ride(hub, client, PathsFace(blocking=False, gather_s=0.1), keepalive=30)
        await until(lambda: bool(client.sent))
        started = time.monotonic()
        await put(store, "room/a")
        await until(lambda: len(client.sent) == 2, seconds=20)
        took = time.monotonic() - started
        await stop([task])
        return client, took

    client, took = asyncio.run(main())
    assert client.sent == [b": open\n\n", b"data: room/a\n\n"]
    assert took < 15  # not its 30 s keep-alive


def test_a_send_finished_later_is_cancelled_with_its_stream() -> None:
    """What finish_now leaves of a send that must wait is awaited as the whole send would be:
    cancelling the stream's coroutine cancels the send too (its cleanup runs at once)."""

    async def main() -> list[str]:
        happened: list[str] = []
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def send() -> None:
            happened.append("sending")
            try:
                await gate
            finally:
                happened.append("cleaned up")

        rest = finish_now(send())
        assert rest is not None

        async def stream() -> None:
            await rest

        task = asyncio.create_task(stream())
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return list(happened)  # (as it stands while the send is still referenced)

    assert asyncio.run(main()) == ["sending", "cleaned up"]

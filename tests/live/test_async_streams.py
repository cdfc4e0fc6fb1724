"""Streams as coroutines (live/streamloop.run_async, parked on their bells) over a real store:
what a writer stores reaches every coroutine watching, with no thread held per stream, and the
reads a stream needs run on a small pool. On one Redis and on the cluster."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from thingstash.core.store import Store
from thingstash.live.hub import Hub
from thingstash.live.streamloop import run_async, stream_loop

from ..firebase.test_stream_feed_reader import hub, store  # noqa: F401 (fixtures)
from .test_streamloop import PathsFace

pytestmark = pytest.mark.cluster


def test_a_change_reaches_every_coroutine_watching_and_no_thread_waits(
    hub: Hub,  # noqa: F811
    store: Store,  # noqa: F811
) -> None:
    watchers = 200
    threads_before = threading.active_count()

    async def main() -> tuple[list[list[bytes]], int]:
        received: list[list[bytes]] = [[] for _ in range(watchers)]
        pool = ThreadPoolExecutor(2)
        tasks = []
        for i in range(watchers):
            subscription = hub.subscribe("room/", True)

            async def send(data: bytes, into: list[bytes] = received[i]) -> None:
                into.append(data)

            steps = stream_loop(PathsFace(), [b": open\n\n"], lambda: True, 15, lambda: hub.closed)
            tasks.append(asyncio.create_task(run_async(steps, subscription, send, pool)))
        await asyncio.sleep(0.2)  # every coroutine waits on its take
        waiting_threads = threading.active_count()
        await asyncio.to_thread(store.put, "room/a", orjson.dumps({"n": 1}), 60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(len(r) == 2 for r in received):
            await asyncio.sleep(0.02)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pool.shutdown()
        return received, waiting_threads

    received, waiting_threads = asyncio.run(main())
    assert all(r == [b": open\n\n", b"data: room/a\n\n"] for r in received)
    # The feed reader's thread, not one per stream.
    assert waiting_threads - threads_before <= 3
    assert hub.watchers == 200  # (unsubscribing is the caller's: web/live.body)


def test_a_coroutine_stream_is_closed_with_its_subscription(hub: Hub) -> None:  # noqa: F811
    async def main() -> list[bytes]:
        sent: list[bytes] = []
        subscription = hub.subscribe("gone/", True)

        async def send(data: bytes) -> None:
            sent.append(data)

        steps = stream_loop(PathsFace(), [b": open\n\n"], lambda: True, 15, lambda: hub.closed)
        task = asyncio.create_task(run_async(steps, subscription, send, None))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(hub.close)
        await asyncio.wait_for(task, 5)  # ended by itself
        return sent

    assert asyncio.run(main()) == [b": open\n\n"]


def test_a_quiet_coroutine_stream_gets_its_keepalives(hub: Hub) -> None:  # noqa: F811
    async def main() -> list[bytes]:
        sent: list[bytes] = []
        subscription = hub.subscribe("quiet/", True)

        async def send(data: bytes) -> None:
            sent.append(data)

        steps = stream_loop(PathsFace(), [], lambda: True, 0.1, lambda: hub.closed)
        task = asyncio.create_task(run_async(steps, subscription, send, None))
        await asyncio.sleep(0.35)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        hub.unsubscribe(subscription)
        return sent

    sent = asyncio.run(main())
    assert 2 <= len(sent) <= 4 and set(sent) == {b": keep-alive\n\n"}

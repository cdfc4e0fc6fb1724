"""The load generator of bench/realtime.py: many Server-Sent Events readers on one asyncio loop,
a paced writer and sequential GET/PUT probes.

Each stream is raw HTTP/1.1 over `asyncio.open_connection`, bound to a loopback source address
of its own group (127.0.a.b, `per_address` streams each), since the server caps the streams of one
client address. It de-chunks the body, splits it into events (`id:`, `event:`, `data:` lines) and
finds in each event's JSON every object with a write's sequence number `n` and the writer's
`time.time()` `t` (a native event's thing, a Firebase event's data, a live query's answer): the
first time a stream sees a write, arrival minus `t` is one delay sample. Marks with `n < 0` are
the state before the run (a thing watch's or a Firebase stream's opening event) and not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvloop

REFUSED, HUNG, FAILED, OPEN, ENDED = "refused", "hung", "failed", "open", "ended"
WARM_UP = 20  # requests of each kind a probe sends before it measures


def source_address(index: int) -> str:
    """The `index`-th loopback source address: 127.0.0.2 ... 127.0.0.254, 127.0.1.2, ..."""
    return f"127.0.{index // 253}.{index % 253 + 2}"


def marks(value: Any) -> Iterator[tuple[int, float]]:
    """Every (n, t) of an object with both, at any depth of a decoded JSON value."""
    if isinstance(value, dict):
        n, t = value.get("n"), value.get("t")
        if isinstance(n, int) and isinstance(t, float):
            yield n, t
            return
        for item in value.values():
            yield from marks(item)
    elif isinstance(value, list):
        for item in value:
            yield from marks(item)


@dataclass
class Tally:
    """What every stream of one row received: a delay per (stream, write), first arrival only."""

    writes: int  # the writes the run will make (sequence numbers 0 .. writes-1)
    delays: array[float] = field(default_factory=lambda: array("d"))


class Stream:
    """One SSE reader: opens, then reads until closed, recording into the row's Tally."""

    def __init__(self, host: str, port: int, path: str, source: str, tally: Tally) -> None:
        self.host, self.port, self.path, self.source = host, port, path, source
        self.tally = tally
        self.state = ""
        self.status = 0
        self.seen = bytearray(tally.writes)
        self.received = 0
        self.task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, timeout: float, gate: asyncio.Semaphore) -> None:
        """Connect and read the response head: OPEN (200), REFUSED (another status), HUNG (no
        status line within `timeout`) or FAILED (no connection: refused, reset or not made
        within `timeout`). Only connecting and sending wait for the `gate`."""
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, local_addr=(self.source, 0)),
                    timeout,
                )
            except (TimeoutError, OSError):
                self.state = FAILED
                return
            self._writer = writer
            request = (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            )
            writer.write(request.encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except TimeoutError:
            self.state = HUNG
            return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.state = FAILED
            return
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        if self.status != 200:
            self.state = REFUSED
            writer.close()
            return
        self.state = OPEN
        chunked = any(
            line.lower().startswith("transfer-encoding:") and "chunked" in line.lower()
            for line in lines
        )
        self.task = asyncio.create_task(self._read(reader, chunked))

    async def _read(self, reader: asyncio.StreamReader, chunked: bool) -> None:
        buffer = b""
        try:
            while True:
                if chunked:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        break
                    data = (await reader.readexactly(size + 2))[:-2]
                else:
                    data = await reader.read(65536)
                    if not data:
                        break
                arrived = time.time()
                buffer += data
                if b"\n\n" in buffer:
                    *events, buffer = buffer.split(b"\n\n")
                    for event in events:
                        self._event(event, arrived)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        self.state = ENDED

    def _event(self, event: bytes, arrived: float) -> None:
        data = b"".join(
            line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")
        )
        if not data:
            return  # a comment (": keep-alive") or an event without data
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        tally = self.tally
        for n, t in marks(decoded):
            if 0 <= n < tally.writes and not self.seen[n]:
                self.seen[n] = 1
                self.received += 1
                tally.delays.append(arrived - t)

    def close(self) -> None:
        if self.task:
            self.task.cancel()
        if self._writer:
            self._writer.close()


async def open_streams(
    host: str,
    port: int,
    paths: Callable[[int], str],
    count: int,
    tally: Tally,
    per_address: int = 16,
    timeout: float = 10.0,
    concurrency: int = 100,
) -> list[Stream]:
    """Open `count` streams (the i-th of `paths(i)`), `concurrency` connecting at a time, all
    then waiting for their answers at once."""
    gate = asyncio.Semaphore(concurrency)
    streams = [
        Stream(host, port, paths(i), source_address(i // per_address), tally) for i in range(count)
    ]

    await asyncio.gather(*(stream.open(timeout, gate) for stream in streams))
    return streams


async def close_streams(streams: list[Stream]) -> None:
    """Close them all (on the loop that opened them)."""
    for stream in streams:
        stream.close()
    await asyncio.sleep(0.1)


def write_paced(
    base: str,
    paths: Callable[[int], str],
    body: Callable[[int], dict[str, Any]],
    count: int,
    rate: float,
) -> tuple[int, float]:
    """PUT `count` writes at `rate` a second from this thread, the n-th to `paths(n)` with
    `body(n)` plus {"n": n, "t": time.time()}; (writes that failed, seconds taken)."""
    failed = 0
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(count):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            document = {**body(n), "n": n, "t": time.time()}
            try:
                if client.put(paths(n), content=orjson.dumps(document)).status_code >= 300:
                    failed += 1
            except httpx.HTTPError:
                failed += 1
    return failed, time.monotonic() - started


def probe(base: str, requests: int) -> tuple[list[float], list[float]]:
    """`requests` sequential GETs of one thing, then as many PUTs of another (one keep-alive
    connection, paths nobody watches), after WARM_UP of each unmeasured; their latencies in
    seconds."""
    gets: list[float] = []
    puts: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        client.put("/probe/read", content=b'{"v": 1}').raise_for_status()

        def get(i: int) -> httpx.Response:
            return client.get("/probe/read")

        def put(i: int) -> httpx.Response:
            return client.put(f"/probe/w{i % 100}", content=b'{"v": 2}')

        for samples, send in ((gets, get), (puts, put)):
            for i in range(-WARM_UP, requests):
                started = time.perf_counter()
                send(i).raise_for_status()
                if i >= 0:
                    samples.append(time.perf_counter() - started)
    return gets, puts


def percentile(samples: list[float] | array[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def median(samples: list[float] | array[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


class Loop:
    """An asyncio loop in a thread of its own, for the streams, driven from synchronous code."""

    def __init__(self) -> None:
        # On uvloop, as the server: 10,000 streams' reads on asyncio's own loop cost this
        # process more CPU than the server's sends, on the same 2 cores.
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        with contextlib.suppress(Exception):
            self.loop.close()

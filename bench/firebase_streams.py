"""Benchmark (not a test): Firebase multi-path updates and streams.

1. Store.write_together of k things against k single puts, in process, on a scratch Redis
   (p50/p99 per update of k things).
2. `thingstash serve --firebase-port` on that Redis with N Firebase streams open on one
   location, each a thread with its own connection: the delay from a native PUT of a thing
   below the location to its `put` event on every stream (p50/p99 over the rounds, counted at the
   last stream to get it), changes 0.2 s apart.

    .venv/bin/python bench/firebase_streams.py [--streams 50] [--rounds 50] [--updates 300]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

# The repository root, for tests/support/ports.py (free ports, shared with the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fbserved import both_faces, put_paths  # noqa: E402 (bench/ is the script's own folder)
from listing import start_server  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

from thingstash.core.model import ThingWrite  # noqa: E402
from thingstash.store import open_store  # noqa: E402


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    return start_server(port, directory), f"redis://127.0.0.1:{port}/0"


def bench_write_together(url: str, updates: int) -> None:
    store = open_store(url, "benchwt")
    try:
        for k in (2, 10):
            paths = [f"wt/t{i}" for i in range(k)]
            together, apart = [], []
            for n in range(updates):
                body = orjson.dumps({"n": n})
                started = time.perf_counter()
                store.write_together([ThingWrite(path, body, 600) for path in paths])
                together.append(time.perf_counter() - started)
                started = time.perf_counter()
                for path in paths:
                    store.put(path, body, 600)
                apart.append(time.perf_counter() - started)
            print(f"{k} things: write_together {percentiles(together)}")
            print(f"{k} things: {k} puts one by one {percentiles(apart)}")
    finally:
        store.close()


class Listener(threading.Thread):
    """One Firebase stream of /room, recording when each event for /t<n> arrives."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        for path in put_paths(f"{self.url}/room.json", 60):
            if path == "/":
                self.ready.set()
            else:
                self.arrived[path] = time.perf_counter()


def bench_streams(url: str, directory: str, streams: int, rounds: int) -> None:
    with both_faces(url) as (_, native, fb):
        listeners = [Listener(fb) for _ in range(streams)]
        for listener in listeners:
            listener.start()
        for listener in listeners:
            assert listener.ready.wait(30), "a stream did not open"
        delays = []
        with httpx.Client(base_url=native, timeout=30) as client:
            for n in range(rounds):
                # Apart by more than a stream's MIN_INTERVAL: each change on its own, as a
                # change after a quiet spell (a burst is sent at most every MIN_INTERVAL).
                time.sleep(0.2)
                sent = time.perf_counter()
                client.put(f"/room/t{n}", json={"n": n})
                path = f"/t{n}"
                deadline = time.monotonic() + 30
                while not all(path in listener.arrived for listener in listeners):
                    assert time.monotonic() < deadline, "an event did not arrive"
                    time.sleep(0.001)
                delays.append(max(listener.arrived[path] for listener in listeners) - sent)
        print(f"{streams} Firebase streams, PUT to the last stream's event: {percentiles(delays)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--updates", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        process, url = start_redis(directory)
        try:
            bench_write_together(url, options.updates)
            bench_streams(url, directory, options.streams, options.rounds)
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()

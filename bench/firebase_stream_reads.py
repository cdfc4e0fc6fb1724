"""Benchmark (not a test): what Firebase streams cost the server when a large location changes.

A scratch Redis and `thingstash serve --firebase-port` (one worker); a location `loc` holding a
thing of its own and --folders sub-folders (`loc/f<i>/x`); --streams Firebase streams open on
it; then --puts tiny PUTs on the Firebase face, one at a time, each waited for on every stream:
- `below`: PUT /loc/f<i>/x.json, a thing below the location: each stream reads that place;
- `at`: PUT /loc/meta/n.json, inside the thing `loc` itself: each stream reads that thing and
  sends what changed in it (before: the location's whole value, all its sub-folders).
Printed: the server's CPU seconds (all its processes, psutil) over the PUTs, and the time.

    .venv/bin/python bench/firebase_stream_reads.py [--folders 2000] [--streams 10] [--puts 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fbserved import both_faces, put_paths  # noqa: E402 (bench/ is the script's own folder)
from listing import start_server  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

from thingstash.store import open_store  # noqa: E402


class Listener(threading.Thread):
    """One Firebase stream of /loc, counting the `put` events it gets by path."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[str, int] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        for path in put_paths(f"{self.url}/loc.json", 120):
            self.seen[path] = self.seen.get(path, 0) + 1
            self.ready.set()


def cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def wait_for(listeners: list[Listener], paths: tuple[str, ...], count: int) -> None:
    """Until every stream got `count` puts at these paths in all."""
    deadline = time.monotonic() + 120
    while not all(
        sum(listener.seen.get(path, 0) for path in paths) >= count for listener in listeners
    ):
        assert time.monotonic() < deadline, f"a stream did not get {paths} #{count}"
        time.sleep(0.002)


def run(url: str, redis_pid: int, folders: int, streams: int, puts: int) -> None:
    store = open_store(url)
    try:
        store.put("loc", orjson.dumps({"meta": {"n": 0}}), 3600)
        store.put_many([(f"loc/f{i:05}/x", orjson.dumps({"n": i}), 3600) for i in range(folders)])
    finally:
        store.close()  # type: ignore[attr-defined]
    with both_faces(url, workers=1) as (server_pid, _, fb):
        listeners = [Listener(fb) for _ in range(streams)]
        for listener in listeners:
            listener.start()
        for listener in listeners:
            assert listener.ready.wait(120), "a stream did not open"
        watched, redis_process = psutil.Process(server_pid), psutil.Process(redis_pid)
        with httpx.Client(base_url=fb, timeout=120) as client:
            for kind in ("below", "at"):
                time.sleep(0.5)
                cpu, redis_cpu = cpu_seconds(watched), cpu_seconds(redis_process)
                started = time.perf_counter()
                for n in range(puts):
                    if kind == "below":
                        client.put(f"/loc/f{n:05}/x.json", json=n + 1)
                        wait_for(listeners, (f"/f{n:05}/x",), 1)
                    else:
                        client.put("/loc/meta/n.json", json=n + 1)
                        # The opening put "/", then one each: "/meta/n" (or "/", the whole).
                        wait_for(listeners, ("/", "/meta/n"), n + 2)
                elapsed = time.perf_counter() - started
                used = cpu_seconds(watched) - cpu
                redis_used = cpu_seconds(redis_process) - redis_cpu
                print(
                    f"{kind:5}: {puts} PUTs, {streams} streams, {folders} sub-folders: "
                    f"server CPU {used:.2f} s, Redis CPU {redis_used:.2f} s, {elapsed:.2f} s"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folders", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--puts", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        process = start_server(port, directory)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            run(url, process.pid, options.folders, options.streams, options.puts)
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()

"""Benchmark (not a test): the chat pattern on the Firebase face, POSTs under
`rooms/r1/messages` while the room `rooms/r1` is a thing of its own (its title), at 100 / 1,000 /
10,000 / 100,000 messages. The messages up to each checkpoint are made with the store's
put_many (as the layout stores them: a thing per push id), then `--pushes` POSTs are timed over
one HTTP keep-alive connection: per-push p50/p99 at each size, and the ratio of the last to the
first p50 (docs/firebase.md, "Where things begin": the target is within 2x).

    .venv/bin/python bench/firebase_push.py [--sizes 100,1000,10000,100000] [--pushes 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

# The repository root, for tests/support/ports.py (free ports, shared with the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listing import start_server  # noqa: E402 (bench/ is the script's own folder)
from tests.support.ports import free_port  # noqa: E402

from thingstash.core.pushids import push_id  # noqa: E402
from thingstash.store import open_store  # noqa: E402

ROOM = "rooms/r1"
TTL = 3600


def start_face(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """`thingstash serve --firebase-port` on the Redis at `url`, one worker; (process, URL)."""
    native_port, firebase_port = free_port(), free_port()
    command = [sys.executable, "-m", "thingstash", "serve", "--port", str(native_port)]
    command += ["--firebase-port", str(firebase_port), "--redis-url", url]
    env = {**os.environ, "THINGSTASH_WORKERS": "1"}
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    face = f"http://127.0.0.1:{firebase_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{face}/.json?shallow=true", timeout=1)
            return server, face
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                server.terminate()
                raise
            time.sleep(0.1)


def fill(url: str, have: int, want: int) -> None:
    """Messages `have`..`want` as the layout stores them, with the store's put_many."""
    store = open_store(url)
    try:
        for start in range(have, want, 5000):
            batch = [
                (f"{ROOM}/messages/{push_id()}", orjson.dumps({"n": n, "text": "hello"}), TTL)
                for n in range(start, min(want, start + 5000))
            ]
            store.put_many(batch)
    finally:
        store.close()


def time_pushes(face: str, pushes: int) -> list[float]:
    samples = []
    with httpx.Client(base_url=face, timeout=30) as client:
        for n in range(pushes):
            started = time.perf_counter()
            answer = client.post(f"/{ROOM}/messages.json", json={"n": n, "text": "timed"})
            samples.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--pushes", type=int, default=300)
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        redis_process, url = start_server(port, directory), f"redis://127.0.0.1:{port}/0"
        server = None
        try:
            server, face = start_face(url)
            httpx.put(f"{face}/{ROOM}.json", json={"title": "general"}, timeout=30)
            time_pushes(face, 50)  # warm up (counted in the messages below)
            have, medians = 50, []
            for size in sizes:
                fill(url, have, max(have, size - options.pushes // 2))
                samples = sorted(time_pushes(face, options.pushes))
                have = max(have, size - options.pushes // 2) + options.pushes
                p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
                medians.append(statistics.median(samples))
                print(
                    f"chat push at {size:>7,} messages: p50 {medians[-1] * 1000:.2f} ms, "
                    f"p99 {p99 * 1000:.2f} ms"
                )
            print(f"p50 at {sizes[-1]:,} / p50 at {sizes[0]:,}: {medians[-1] / medians[0]:.2f}x")
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)
            redis_process.terminate()
            redis_process.wait(10)


if __name__ == "__main__":
    main()

"""Benchmark (not a test): what one Firebase GET of a wide location costs, and what it does to
a small read beside it.

A scratch Redis and `thingstash serve --firebase-port` (one worker); locations `wide<n>` of n
sub-folders each (`wide<n>/f<i>/x`, a tiny thing in each), loaded with the store directly.
Printed, for each n: the GET's status and time (past THINGSTASH_FIREBASE_MAX_FOLDERS, default
10,000, it is the 400), then with --concurrent such GETs of the widest location at once, the
time of a small GET made meanwhile.

    .venv/bin/python bench/firebase_reads.py [--sizes 2000,9000,200000] [--concurrent 16]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fbserved import both_faces  # noqa: E402 (bench/ is the script's own folder)
from listing import start_server  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

from thingstash.store import open_store  # noqa: E402


def load(url: str, sizes: list[int]) -> None:
    store = open_store(url)
    try:
        store.put("small", orjson.dumps({"n": 1}), 3600)
        for size in sizes:
            for start in range(0, size, 5000):
                store.put_many(
                    [
                        (f"wide{size}/f{i:06}/x", orjson.dumps({"n": i}), 3600)
                        for i in range(start, min(size, start + 5000))
                    ]
                )
    finally:
        store.close()  # type: ignore[attr-defined]


def run(url: str, sizes: list[int], concurrent: int) -> None:
    with both_faces(url, workers=1) as (_, _, fb):
        with httpx.Client(base_url=fb, timeout=120) as client:
            for size in sizes:
                started = time.perf_counter()
                status = client.get(f"/wide{size}.json").status_code
                took = time.perf_counter() - started
                print(f"GET of {size} sub-folders: {status} in {took * 1000:.0f} ms")
        widest = max(sizes)
        done: list[float] = []

        def wide_get() -> None:
            started = time.perf_counter()
            httpx.get(f"{fb}/wide{widest}.json", timeout=120)
            done.append(time.perf_counter() - started)

        threads = [threading.Thread(target=wide_get) for _ in range(concurrent)]
        for thread in threads:
            thread.start()
        time.sleep(0.05)
        started = time.perf_counter()
        small = httpx.get(f"{fb}/small.json", timeout=120).status_code
        small_took = time.perf_counter() - started
        for thread in threads:
            thread.join()
        print(
            f"{concurrent} GETs of {widest} sub-folders at once: the slowest "
            f"{max(done) * 1000:.0f} ms; a small GET meanwhile: {small} in "
            f"{small_took * 1000:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,9000,200000")
    parser.add_argument("--concurrent", type=int, default=16)
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        process = start_server(port, directory)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            load(url, sizes)
            run(url, sizes, options.concurrent)
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()

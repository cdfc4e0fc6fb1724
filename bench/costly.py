"""Plain GET latency while many queries without an index run (issue 21, item 7): against a
running `thingstash serve` (its URL as --url), one thread reads a small thing over and over
while --heavy threads each ask a query without an index, for --seconds. Prints the plain GETs'
p50/p99/max and how the heavy queries were answered. Bounded in time and in requests.

    python bench/costly.py --url http://127.0.0.1:8090 --fill heavy --per-thing 60000
    python bench/costly.py --url http://127.0.0.1:8090 --folder heavy --heavy 32 --seconds 10

--fill writes 1,000 things of --per-thing bytes of JSON into the folder (through /_import).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import threading
import time

import httpx
import orjson


def fill(url: str, folder: str, per_thing: int) -> None:
    pad = "x" * max(0, per_thing - 40)
    lines = [
        orjson.dumps({"path": f"{folder}/t{i:04}", "thing": {"score": i % 97, "pad": pad}})
        for i in range(1000)
    ]
    with httpx.Client(base_url=url, timeout=120) as client:
        batch: list[bytes] = []
        for line in [*lines, None]:
            if line is None or (batch and sum(map(len, batch)) + len(line) > 500_000):
                response = client.post(
                    "/_import",
                    content=b"\n".join(batch),
                    headers={"Content-Type": "application/jsonl"},
                )
                response.raise_for_status()
                batch = []
            if line is not None:
                batch.append(line)
        client.put("/plain/x", json={"small": True}).raise_for_status()


def load(url: str, folder: str, heavy: int, seconds: float) -> None:
    stop = time.monotonic() + seconds
    statuses: collections.Counter[int] = collections.Counter()
    heavy_times: list[float] = []
    plain_times: list[float] = []

    def heavy_loop() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.monotonic() < stop:
                started = time.monotonic()
                response = client.get(f"/{folder}/", params={"order_by": "score", "limit": 10})
                heavy_times.append(time.monotonic() - started)
                statuses[response.status_code] += 1
                if response.status_code == 503:
                    time.sleep(float(response.headers.get("Retry-After", "1")))

    def plain_loop() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.monotonic() < stop:
                started = time.monotonic()
                client.get("/plain/x").raise_for_status()
                plain_times.append(time.monotonic() - started)
                time.sleep(0.01)

    threads = [threading.Thread(target=heavy_loop) for _ in range(heavy)]
    threads.append(threading.Thread(target=plain_loop))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    plain_times.sort()
    p99 = plain_times[min(len(plain_times) - 1, int(len(plain_times) * 0.99))]
    print(
        f"heavy={heavy} plain GETs: n={len(plain_times)} "
        f"p50={statistics.median(plain_times) * 1000:.1f} ms p99={p99 * 1000:.1f} ms "
        f"max={plain_times[-1] * 1000:.1f} ms"
    )
    if heavy_times:
        print(
            f"heavy queries: n={len(heavy_times)} statuses={dict(statuses)} "
            f"median={statistics.median(heavy_times) * 1000:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--folder", default="heavy")
    parser.add_argument("--fill", metavar="FOLDER")
    parser.add_argument("--per-thing", type=int, default=60_000)
    parser.add_argument("--heavy", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    if args.fill:
        fill(args.url, args.fill, args.per_thing)
        return
    load(args.url, args.folder, args.heavy, min(args.seconds, 60))


if __name__ == "__main__":
    main()

"""Benchmark (not a test), part of `make bench`: ordered queries at 1,000 and 1,000,000 things,
the cost of indexes on writes, and the Redis memory an index takes per thing.

A fresh Redis-compatible server (the valkey-server the package uses, no persistence, so memory
is what the data takes), the app in process (the handler plus Redis, not a network):

- query page: GET /<folder>/?order_by=score&limit=100 on a folder of 1,000 things and on one of
  1,000,000 (loaded with put_many, the index declared first so that the writes keep it), the
  first page, the last (desc) and pages from random start_at values: p50/p99;
- query page by `$name` (no index: the folder's own name index and its sub-folder set), on
  the same two folders with a sub-folder among every 100 things: the first page, the last
  (desc), from a random start_at, around a random thing, count=true: p50/p99; then the
  one-time walk that builds the sub-folder sets of a store from before them;
- writes: PUT through the app, one at a time, to a folder with 0, 1 and 3 indexes;
- memory: used_memory before and after building an index over --memory-things things.

    .venv/bin/python bench/queries.py [--things 1000000] [--memory-things 100000]
        [--parts pages,names,writes,memory]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis

from thingstash.core.config import Settings
from thingstash.web.app import create_app

# The repository root, for tests/support/ports.py (free ports, shared with the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listing import start_server  # noqa: E402 (bench/ is the script's own folder)
from tests.support.ports import free_port  # noqa: E402

TTL = 3600


def body(i: int) -> bytes:
    return orjson.dumps({"score": (i * 7919) % 100_000, "stats": {"level": i % 50}, "n": i})


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"p50 {p50 * 1000:6.2f} ms, p99 {p99 * 1000:6.2f} ms"


def timed(client: Any, url: str, times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.data
    return samples


def load(store: Any, folder: str, count: int) -> float:
    started = time.monotonic()
    chunk = 20_000
    for first in range(0, count, chunk):
        store.put_many(
            [(f"{folder}t{i:07d}", body(i), TTL) for i in range(first, min(count, first + chunk))]
        )
    return time.monotonic() - started


def build(store: Any, index_id: str) -> float:
    started = time.monotonic()
    while not any(i.id == index_id and i.state == "ready" for i in store.indexes()):
        store.build_indexes()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--things", type=int, default=1_000_000)
    parser.add_argument("--memory-things", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="1 s of PUTs per index count")
    parser.add_argument("--parts", default="pages,names,writes,memory", help="which to run")
    options = parser.parse_args()
    parts = set(options.parts.split(","))
    logging.disable(logging.INFO)  # the access log's line per request: not what is measured
    directory = tempfile.mkdtemp(prefix="thingstash-bench-")
    port = free_port()
    server = start_server(port, directory)
    try:
        app = create_app(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
        app.extensions["thingstash.live"].close()  # no background threads: this process measures
        store = app.extensions["thingstash.store"]
        raw = redis.Redis(port=port)
        client = app.test_client()
        rng = random.Random(1)

        sizes = {1000: "q1k/", options.things: "qbig/"}
        if parts & {"pages", "names"}:
            for count, folder in sizes.items():
                if "pages" in parts:
                    index, _ = store.create_index(folder, "score")
                    build(store, index.id)  # empty: ready at once, then every write keeps it
                seconds = load(store, folder, count)
                print(f"{count:>9,} things: loaded with put_many in {seconds:.1f} s")
        if "pages" in parts:
            score_pages(client, sizes, options, rng)
        if "names" in parts:
            name_pages(client, store, raw, sizes, options, rng)
        if "writes" in parts:
            writes(client, store, options)
        if "memory" in parts:
            memory(store, raw, options)
        store.close()
    finally:
        server.terminate()
        server.wait(30)
        subprocess.run(["rm", "-rf", directory], check=False)


def score_pages(client: Any, sizes: dict[int, str], options: Any, rng: random.Random) -> None:
    print("\n## ordered query page (limit 100), index on score, in process")
    kinds = ("first page", "last page (desc)", "from a random start_at")
    pages = {(count, kind): [] for count in sizes for kind in kinds}
    # Interleaved in rounds, so that a busy moment of the machine hits both sizes alike.
    for _ in range(options.samples // 10):
        for count, folder in sizes.items():
            url = f"/{folder}?order_by=score&limit=100"
            pages[(count, kinds[0])] += timed(client, url, 10)
            pages[(count, kinds[1])] += timed(client, url + "&desc=true", 10)
            for _ in range(10):
                started = time.perf_counter()
                response = client.get(f"{url}&start_at={rng.randrange(100_000)}")
                pages[(count, kinds[2])].append(time.perf_counter() - started)
                assert response.status_code == 200
    for count in sizes:
        for kind in kinds:
            print(f"{count:>9,} things, {kind:<24} {percentiles(pages[(count, kind)])}")
    small, big = (statistics.median([x for kind in kinds for x in pages[(n, kind)]]) for n in sizes)
    print(f"page at {options.things:,} vs at 1,000 things (p50): {big / small:.2f}x")


def name_pages(
    client: Any, store: Any, raw: Any, sizes: dict[int, str], options: Any, rng: random.Random
) -> None:
    print("\n## query page by $name (limit 100), no index, a sub-folder per 100 things")
    for count, folder in sizes.items():
        store.put_many([(f"{folder}t{i:07d}x/y", b"{}", TTL) for i in range(0, count, 100)])
    kinds = ("first page", "last page (desc)", "from a random start_at", "around", "count=true")
    pages: dict[tuple[int, str], list[float]] = {(n, kind): [] for n in sizes for kind in kinds}
    for _ in range(options.samples // 10):  # interleaved, as above
        for count, folder in sizes.items():
            url = f"/{folder}?order_by=$name&limit=100"
            pages[(count, kinds[0])] += timed(client, url, 10)
            pages[(count, kinds[1])] += timed(client, url + "&desc=true", 10)
            for _ in range(10):
                name = f"t{rng.randrange(count):07d}"
                pages[(count, kinds[2])] += timed(client, f'{url}&start_at="{name}"', 1)
                pages[(count, kinds[3])] += timed(client, f"{url}&around={name}", 1)
            pages[(count, kinds[4])] += timed(client, f"/{folder}?count=true", 10)
    answer = client.get(f"/{sizes[options.things]}?count=true").get_json()
    assert answer == {"count": options.things}, answer
    for count in sizes:
        for kind in kinds:
            print(f"{count:>9,} things, {kind:<24} {percentiles(pages[(count, kind)])}")
    small, big = (
        statistics.median([x for kind in kinds[:4] for x in pages[(n, kind)]]) for n in sizes
    )
    print(f"$name page at {options.things:,} vs at 1,000 things (p50): {big / small:.2f}x")
    # As a store from before the sub-folder sets: none, and no mark. The walk builds them.
    made = [key for key in raw.scan_iter(match="ts:f:*", count=10_000) if key.endswith(b":sub")]
    raw.delete(*made)
    raw.delete("ts:subfolders:ready")
    querying = type(store.querying)(store, store.index_keeper)
    started = time.monotonic()
    assert querying.build_subfolder_sets()
    entries = sum(int(raw.zcard(store.folder_key(f))) for f in ("", *sizes.values()))
    print(
        f"one-time walk building the sub-folder sets: {time.monotonic() - started:.1f} s "
        f"for {entries:,} folder index entries"
    )


def writes(client: Any, store: Any, options: Any) -> None:
    print("\n## PUT through the app, one at a time, by indexes on the folder")
    fields = ["score", "stats/level", "$updated"]
    latencies: dict[int, list[float]] = {0: [], 1: [], 3: []}
    for wanted in latencies:
        for field in fields[:wanted]:
            index, _ = store.create_index(f"w{wanted}/", field)
            build(store, index.id)
    i = 0
    for _ in range(options.rounds):  # interleaved, so that a busy moment hits all three
        for wanted, samples in latencies.items():
            started = time.monotonic()
            while time.monotonic() - started < 1:
                i += 1
                t = time.perf_counter()
                response = client.put(
                    f"/w{wanted}/t{i % 1000}", data=body(i), content_type="application/json"
                )
                samples.append(time.perf_counter() - t)
                assert response.status_code in (200, 201)
    for wanted, samples in latencies.items():
        rate = len(samples) / options.rounds
        print(f"{wanted} indexes: {rate:7,.0f} PUT/s, {percentiles(samples)}")


def memory(store: Any, raw: Any, options: Any) -> None:
    print(f"\n## Redis memory of an index, {options.memory_things:,} things")
    load(store, "mem/", options.memory_things)
    index, _ = store.create_index("mem/", "score")
    seconds = build(store, index.id)
    keeper = store.index_keeper
    used = sum(
        int(raw.memory_usage(key, samples=0) or 0)
        for key in (keeper.zset_key(index.id, "mem/"), keeper.hash_key(index.id, "mem/"))
    )
    print(
        f"built over {options.memory_things:,} stored things in {seconds:.1f} s; "
        f"{used / options.memory_things:.0f} bytes per indexed thing (MEMORY USAGE of the "
        "sorted set and the name->member hash; names like t0000123, numbers as the field)"
    )


if __name__ == "__main__":
    main()

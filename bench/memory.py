"""Redis memory per thing: thingstash's storage next to the same JSON kept as plain strings.

For each size, N things are written (1) through `thingstash.store.single.RedisStore.put`,
exactly as the API writes them: the thing's key, its folder indexes, and the change feed; and
(2) as plain `SET path json EX 31104000`. Memory is Redis's own `used_memory` after minus
before, over N.

The expiry schedule (a sorted set of every thing's path by when its lifetime ends, what lets
expiries reach listings and watchers within a second) costs per thing, with the path's length:
it is counted in thingstash's total, and shown on its own (MEMORY USAGE of the set, over N).

The change feed is bounded (about THINGSTASH_FEED_RETENTION = 10,000 entries, whatever the
number of things), so it is a fixed cost: it is counted in full in thingstash's total, spread
over the N things, and also shown on its own (MEMORY USAGE of the stream, over N).

Two layouts, because the folder index costs differ: "flat" puts all N things in one folder (a
large sorted set), "nested" puts them 100 to a folder (small sorted sets, kept as listpacks).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import redis

from thingstash.core.config import DEFAULT_TTL
from thingstash.store import open_store

SIZES = {"20 B": 20, "200 B": 200, "2 KB": 2048}


def document(size: int) -> bytes:
    """A JSON object of exactly `size` bytes: {"v":"xxx..."}."""
    return b'{"v":"' + b"x" * (size - 8) + b'"}'


def flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.execute_command("FLUSHALL", "SYNC")  # Valkey frees lazily by default: skews a delta
    client.close()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def paths(count: int, layout: str) -> list[str]:
    if layout == "flat":
        return [f"mem/{i}" for i in range(count)]
    return [f"mem/{i // 100}/{i % 100}" for i in range(count)]


def thingstash_bytes(url: str, count: int, body: bytes, layout: str) -> tuple[float, float, float]:
    """(bytes per thing, of which the feed, of which the expiry schedule) for `count` things
    stored through the storage."""
    flush(url)
    store = open_store(url)
    before = used_memory(store.client)
    all_paths = paths(count, layout)
    # Store.put is one round trip; a few threads keep Redis busy while Python builds the next.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda path: store.put(path, body, DEFAULT_TTL), all_paths, chunksize=500))
    after = used_memory(store.client)
    feed = int(store.client.memory_usage(store.feed_key, samples=0) or 0)
    schedule = int(store.client.memory_usage(store.schedule_key(""), samples=0) or 0)
    store.close()
    return (after - before) / count, feed / count, schedule / count


def plain_bytes(url: str, count: int, body: bytes) -> float:
    flush(url)
    client = redis.Redis.from_url(url)
    before = used_memory(client)
    all_paths = paths(count, "flat")
    for chunk in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for path in all_paths[chunk : chunk + 1000]:
            pipe.set(path, body, ex=DEFAULT_TTL)
        pipe.execute()
    after = used_memory(client)
    client.close()
    return (after - before) / count


def report(url: str, count: int) -> None:
    started = time.monotonic()
    print(f"\nRedis memory per thing, {count:,} things (used_memory delta / things):")
    print(
        f"{'JSON size':10}| {'plain':>7} | {'thingstash flat':>22} | {'thingstash nested':>22} | "
        f"{'feed':>6} | {'expiry schedule':>15}"
    )
    print("-" * 98)
    for label, size in SIZES.items():
        body = document(size)
        plain = plain_bytes(url, count, body)
        flat, feed, schedule = thingstash_bytes(url, count, body, "flat")
        nested, _, _ = thingstash_bytes(url, count, body, "nested")
        print(
            f"{label:10}| {plain:7.0f} | {flat:7.0f} B = {flat / plain:4.2f}x plain | "
            f"{nested:7.0f} B = {nested / plain:4.2f}x plain | {feed:6.0f} | {schedule:15.0f}"
        )
    flush(url)
    print(
        "flat: one folder of all things; nested: 100 things a folder. thingstash includes the "
        "folder indexes\nand the whole change feed (bounded at ~10,000 entries, a fixed cost "
        "spread over the things; its share\nis the feed column) and the expiry schedule (per "
        "thing, paths like mem/12345; last column). "
        f"({time.monotonic() - started:.0f} s)"
    )

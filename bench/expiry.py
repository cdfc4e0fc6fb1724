"""Expiry at scale, issue 12's scenario: how late expiries reach watchers and listings.

One embedded Redis and `thingstash serve` (2 workers, each reaping), as users run them.
`--long` things live an hour; `--short` things (100 to a folder) live `--ttl` seconds. From
each short thing's end (taken just before it was written, so never later than the real one)
this measures when its `expire` event is in the change feed (what every watcher is sent) and
when its folder leaves the listing of `short/`, and how many short things are still in Redis.

    .venv/bin/python bench/expiry.py [--long 100000] [--short 20000] [--ttl 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from run import serving

from thingstash.serve.embedded import EmbeddedRedis
from thingstash.store import open_store

PER_FOLDER = 100


def summary(delays: list[float]) -> str:
    if not delays:
        return "none"
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered):.2f} s, p99 {p99:.2f} s, max {ordered[-1]:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=100_000, help="long-lived things")
    parser.add_argument("--short", type=int, default=20_000, help="short-lived things")
    parser.add_argument("--ttl", type=int, default=3, help="the short things' lifetime (s)")
    parser.add_argument("--wait", type=float, default=60, help="give up this long after the end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thingstash-bench-") as tmp:
        redis = EmbeddedRedis(Path(tmp) / "redis")
        url = redis.start()
        try:
            with serving("thingstash", url) as (port, _):
                measure(url, port, args)
        finally:
            redis.stop()


def measure(url: str, port: int, args: argparse.Namespace) -> None:
    store = open_store(url)
    started = time.monotonic()
    store.put_many(
        [(f"long/{i // 1000}/{i % 1000}", b'{"v":1}', 3600) for i in range(args.long)], chunk=1000
    )
    print(f"{args.long:,} long-lived things written in {time.monotonic() - started:.1f} s")
    position = store.feed_position()
    ends: dict[str, float] = {}
    paths = [f"short/{i // PER_FOLDER}/{i % PER_FOLDER}" for i in range(args.short)]
    for first in range(0, len(paths), 1000):
        chunk = paths[first : first + 1000]
        written = time.monotonic()
        store.put_many([(path, b'{"v":1}', args.ttl) for path in chunk], chunk=1000)
        ends.update(dict.fromkeys(chunk, written + args.ttl))
    print(f"{args.short:,} things of {args.ttl} s written (100 a folder)")
    folder_ends: dict[str, float] = {}
    for path, end in ends.items():
        folder = path[: path.rfind("/") + 1]
        folder_ends[folder] = max(folder_ends.get(folder, 0.0), end)

    events: dict[str, float] = {}
    finished = threading.Event()

    def read_feed() -> None:
        after = position
        while not finished.is_set():
            for event in store.read_feed(after, 200):
                after = event.id
                if event.kind == "expire":
                    events.setdefault(event.path, time.monotonic())

    reader = threading.Thread(target=read_feed, daemon=True)
    reader.start()
    gone: dict[str, float] = {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    give_up = max(ends.values()) + args.wait
    while time.monotonic() < give_up and (len(events) < len(ends) or len(gone) < len(folder_ends)):
        listed = set(listing(connection, "short/"))
        now = time.monotonic()
        for folder in folder_ends:
            if folder not in listed:
                gone.setdefault(folder, now)
        time.sleep(0.1)
    finished.set()
    reader.join(2)
    left = sum(store.client.exists(store.thing_key(path)) for path in paths)
    store.close()
    late = [events[path] - end for path, end in ends.items() if path in events]
    folders_late = [gone[folder] - end for folder, end in folder_ends.items() if folder in gone]
    print(f"`expire` events after the thing's end: {len(late):,}/{len(ends):,}, {summary(late)}")
    print(
        f"folders gone from the listing after their last thing's end: "
        f"{len(folders_late)}/{len(folder_ends)}, {summary(folders_late)}"
    )
    print(f"short things still in Redis at the end: {left:,}")


def listing(connection: http.client.HTTPConnection, folder: str) -> list[str]:
    """Every sub-folder of `folder`, page by page."""
    folders: list[str] = []
    cursor = ""
    while True:
        connection.request("GET", f"/{folder}?limit=1000{cursor}")
        page = json.loads(connection.getresponse().read())
        folders += page["folders"]
        if page["next"] is None:
            return folders
        cursor = f"&cursor={page['next']}"


if __name__ == "__main__":
    main()

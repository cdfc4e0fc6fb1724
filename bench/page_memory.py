"""Benchmark (not a test): the memory listing pages with values take (issue 12, item 6).

Starts a scratch Redis and `thingstash serve` (one worker), stores 40 things of ~1 MB in one
folder, then has 8 clients list it at once with `values=true&limit=1000`, each following `next`
to the end. Prints the pages read, the largest, the worker's RSS before and at its peak, and
Redis's used_memory_peak.

    .venv/bin/python bench/page_memory.py            # this checkout
    .venv/bin/python bench/page_memory.py OLD/src    # another source tree, e.g. from git archive
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.servers import RedisServer, Served  # noqa: E402

THINGS, CLIENTS = 40, 8


def main(other_source: str | None) -> None:
    env = {"THINGSTASH_WORKERS": "1", **({"PYTHONPATH": other_source} if other_source else {})}
    with tempfile.TemporaryDirectory() as scratch:
        server = RedisServer(Path(scratch))
        server.start()
        served = Served(["--redis-url", server.url], env=env).start()
        try:
            big = '{"s":"' + "x" * 1_000_000 + '"}'
            for i in range(THINGS):
                requests.put(f"{served.url}/big/{i:03}", data=big, timeout=30).raise_for_status()
            assert served.process is not None
            workers = [
                child
                for child in psutil.Process(served.process.pid).children(recursive=True)
                if "valkey" not in child.name() and "redis" not in child.name()
            ]
            before = max(w.memory_info().rss for w in workers)
            peak, pages, done = [before], [], threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], max(w.memory_info().rss for w in workers))
                    time.sleep(0.02)

            def list_all() -> None:
                cursor = None
                while True:
                    query = {"values": "true", "limit": 1000}
                    if cursor:
                        query["cursor"] = cursor
                    answer = requests.get(f"{served.url}/big/", params=query, timeout=120)
                    pages.append(len(answer.content))
                    cursor = answer.json()["next"]
                    if not cursor:
                        return

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            clients = [threading.Thread(target=list_all) for _ in range(CLIENTS)]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            done.set()
            sampler.join()
            memory = redis.Redis(port=server.port).info("memory")
            print(
                f"{other_source or 'this checkout'}: {len(pages)} pages, largest "
                f"{max(pages) / 1e6:.1f} MB; worker RSS {before / 1e6:.0f} -> peak "
                f"{peak[0] / 1e6:.0f} MB; Redis used_memory_peak "
                f"{memory['used_memory_peak'] / 1e6:.0f} MB (data {memory['used_memory'] / 1e6:.0f}"
                f" MB); {time.monotonic() - started:.1f} s"
            )
        finally:
            served.stop()
            server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)

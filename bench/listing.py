"""Benchmark (not a test): listings and writes at 1,000 things and at 1 million.

For each scenario it starts a fresh Redis-compatible server (the valkey-server the package
uses; no persistence, so memory is what the data takes), loads the things through the storage
module's own put script (pipelined, so loading is quick), then measures:
- listing-page latency: GET /<folder>/?limit=100 through the Flask app (in process, so it is
  the handler plus Redis, not a network), first page and pages at random cursors, p50/p99;
- write throughput: single PUT requests through the app, one after another, for a few seconds;
- Redis memory per thing: used_memory after loading, less before, over the things loaded.

    .venv/bin/python bench/listing.py [--things 1000000] [--folders 10000] [--max-load 300]

Loading stops after --max-load seconds per scenario; the report then says how many it loaded.
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from thingstash.core.config import Settings
from thingstash.core.model import new_version
from thingstash.serve.embedded import scratch_command
from thingstash.web.app import create_app

# The repository root, for tests/support/ports.py (free ports, shared with the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.ports import free_port  # noqa: E402

BODY = b'{"temperature":21.5,"unit":"C","sensor":"kitchen","ok":true}'
TTL_MS = 3600 * 1000


def start_server(port: int, directory: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        scratch_command(port, directory),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis did not start")


def load(store, paths, max_seconds: float, batch: int = 2000) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Put every path with the storage module's put script, pipelined; (count, seconds)."""
    started = time.monotonic()
    done = 0
    for start in range(0, len(paths), batch):
        pipe = store.client.pipeline(transaction=False)
        for path in paths[start : start + batch]:
            keys, names = store._indexed_keys(path)
            store._put(
                keys=keys,
                args=[
                    "",
                    "",
                    new_version().encode() + BODY,
                    TTL_MS,
                    "put",
                    path,
                    store.feed_retention,
                    *names,
                ],
                client=pipe,
            )
        pipe.execute()
        done += len(paths[start : start + batch])
        if time.monotonic() - started > max_seconds:
            break
    return done, time.monotonic() - started


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def scenario(name: str, paths: list[str], folders: list[str], max_load: float) -> None:
    directory = tempfile.mkdtemp(prefix="thingstash-bench-")
    port = free_port()
    server = start_server(port, directory)
    try:
        app = create_app(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
        store = app.extensions["thingstash.store"]
        raw = redis.Redis(port=port)
        before = raw.info("memory")["used_memory"]
        loaded, seconds = load(store, paths, max_load)
        after = raw.info("memory")["used_memory"]
        print(
            f"\n## {name}: {loaded:,} things loaded in {seconds:.1f} s "
            f"({loaded / seconds:,.0f}/s pipelined)"
            + (" -- STOPPED EARLY" if loaded < len(paths) else "")
        )
        print(
            f"Redis memory: {(after - before) / loaded:.0f} bytes per thing "
            f"({(after - before) / 2**20:.0f} MiB)"
        )
        client = app.test_client()
        rng = random.Random(1)
        present = paths[:loaded]
        for folder in folders[:1]:
            first = []
            for _ in range(50):
                t = time.perf_counter()
                response = client.get(f"/{folder}?limit=100")
                first.append(time.perf_counter() - t)
                assert response.status_code == 200
            print(f"first page of /{folder} (limit 100): {percentiles(first)}")
        for values in (False, True):
            middle = []
            for _ in range(200):
                path = rng.choice(present)
                folder, _, leaf = path.rpartition("/")
                cursor = base64.urlsafe_b64encode(leaf.encode()).rstrip(b"=").decode()
                query = f"limit=100&cursor={cursor}" + ("&values=true" if values else "")
                t = time.perf_counter()
                response = client.get(f"/{folder}/?{query}")
                middle.append(time.perf_counter() - t)
                assert response.status_code == 200
            label = "with values" if values else "no values"
            print(f"page at a random cursor (limit 100, {label}): {percentiles(middle)}")
        writes, started = 0, time.monotonic()
        latencies = []
        while time.monotonic() - started < 5:
            path = rng.choice(present)
            t = time.perf_counter()
            response = client.put("/" + path, data=BODY, content_type="application/json")
            latencies.append(time.perf_counter() - t)
            assert response.status_code == 200
            writes += 1
        print(f"PUT through the app, one at a time: {writes / 5:,.0f}/s, {percentiles(latencies)}")
        app.extensions["thingstash.live"].close()
        store.close()
    finally:
        server.terminate()
        server.wait(30)
        subprocess.run(["rm", "-rf", directory], check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--things", type=int, default=1_000_000)
    parser.add_argument("--folders", type=int, default=10_000)
    parser.add_argument("--max-load", type=float, default=300)
    options = parser.parse_args()
    small = [f"small/t{i:07d}" for i in range(1000)]
    scenario("1,000 things in one folder", small, ["small/"], options.max_load)
    one = [f"one/t{i:07d}" for i in range(options.things)]
    scenario(f"{options.things:,} things in one folder", one, ["one/"], options.max_load)
    per = options.things // options.folders
    spread = [f"many/f{f:05d}/t{i:04d}" for f in range(options.folders) for i in range(per)]
    random.Random(2).shuffle(spread)  # written in no particular order, like real traffic
    scenario(
        f"{options.things:,} things over {options.folders:,} folders",
        spread,
        ["many/", "many/f00000/"],
        options.max_load,
    )


if __name__ == "__main__":
    main()

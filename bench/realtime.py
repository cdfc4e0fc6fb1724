"""Benchmark (not a test): live connections at scale (issue #24). N idle streams of one kind
open at once, each row on a fresh `thingstash serve --firebase-port` (default workers) over a
fresh scratch Redis:

- folder:    native watches of one folder, a writer PUTting things in it at 10 writes/s;
- thing:     native watches of single things (10 things, N/10 watchers each), 10 writes/s
             over them (each write reaches its thing's watchers);
- fb-folder: Firebase streams of that folder (`/bench/room.json` on the Firebase port);
- fb-thing:  Firebase streams of those single things;
- query:     live top-10 queries (`?order_by=score&desc=true&limit=10&values=true`) of a folder
             of 100 things, 20 score updates/s (each to the top, so each changes the answer).

Per row: GET/PUT probes with no stream open, N streams opened (16 per loopback source address,
since the server caps the streams of one address; refused: any status but 200; hung: no status
line within --timeout; failed: no connection), server memory (RSS of the server's process tree)
and Redis clients, idle CPU of the server tree over --idle seconds, the probes again with the
streams open and idle, then --seconds of writes (native PUTs carrying the writer's
`time.time()`), then the last events (until none came for 2 s, at most 15 s), with the CPU of
the server tree and of this process meanwhile (in % of one core). Delay: arrival
at a stream minus the write's timestamp, over every (stream, write) pair the stream should get;
lost = those never received (for a live query, whose bursts are coalesced: writes never seen in
any answer it sent, i.e. out of the top 10 again before an answer showed them). The load
generator is bench/realtime_load.py, one asyncio loop on this box, so at large N it shares the
cores and its own lag is in the delays.

    .venv/bin/python bench/realtime.py [--kinds folder,thing,fb-folder,fb-thing,query]
        [--counts 100,1000,10000] [--seconds 10] [--idle 3] [--probes 500] [--workers W]

Default counts: 100,1000,2000 for native watches, 100,500 for Firebase streams and live
queries (about 5 minutes in all on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import redis

# bench/ is the script's own folder; the repository root, for tests/support/ports.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listing import start_server  # noqa: E402
from realtime_load import (  # noqa: E402
    FAILED,
    HUNG,
    OPEN,
    REFUSED,
    Loop,
    Stream,
    Tally,
    close_streams,
    median,
    open_streams,
    percentile,
    probe,
    write_paced,
)
from tests.support.ports import free_port  # noqa: E402

THINGS = 10  # the things the thing kinds watch
FOLDER = 100  # the things a folder's writes go round, and the players of the live query
DRAIN_S = 15.0  # how long the last events may take to arrive after the last write
STALL_S = 2.0  # ... while they still arrive


@dataclass(frozen=True)
class Kind:
    title: str
    firebase: bool  # streams on the Firebase port (writes are native PUTs either way)
    watch: Callable[[int], str]  # the i-th stream's URL path
    write: Callable[[int], str]  # the n-th write's path
    body: Callable[[int], dict[str, Any]]  # the n-th write's body (before its n and t)
    gets: Callable[[int, int], bool]  # whether the i-th stream should get the n-th write
    rate: float  # writes a second
    counts: tuple[int, ...]  # the default N


def _always(i: int, n: int) -> bool:
    return True


def _same_thing(i: int, n: int) -> bool:
    return i % THINGS == n % THINGS


QUERY = "/bench/board/?order_by=score&desc=true&limit=10&values=true"
KINDS = {
    "folder": Kind(
        "native watchers of one folder",
        False,
        lambda i: "/bench/room/",
        lambda n: f"/bench/room/t{n % FOLDER}",
        lambda n: {},
        _always,
        10,
        (100, 1000, 2000),
    ),
    "thing": Kind(
        f"native watchers of single things ({THINGS} things)",
        False,
        lambda i: f"/bench/one/t{i % THINGS}",
        lambda n: f"/bench/one/t{n % THINGS}",
        lambda n: {},
        _same_thing,
        10,
        (100, 1000, 2000),
    ),
    "fb-folder": Kind(
        "Firebase streams of one folder",
        True,
        lambda i: "/bench/room.json",
        lambda n: f"/bench/room/t{n % FOLDER}",
        lambda n: {},
        _always,
        10,
        (100, 500),
    ),
    "fb-thing": Kind(
        f"Firebase streams of single things ({THINGS} things)",
        True,
        lambda i: f"/bench/one/t{i % THINGS}.json",
        lambda n: f"/bench/one/t{n % THINGS}",
        lambda n: {},
        _same_thing,
        10,
        (100, 500),
    ),
    "query": Kind(
        "live top-10 queries of one folder (20 score updates/s)",
        False,
        lambda i: QUERY,
        lambda n: f"/bench/board/p{n % FOLDER}",
        lambda n: {"score": n},
        _always,
        20,
        (100, 500),
    ),
}


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@contextmanager
def fresh_server(workers: int | None) -> Iterator[tuple[int, int, int, int]]:
    """A scratch Redis and `thingstash serve` on it: (server pid, native port, Firebase port,
    Redis port); both stopped by pid at exit."""
    directory = tempfile.mkdtemp(prefix="thingstash-bench-realtime-")
    redis_port, native, firebase = free_port(), free_port(), free_port()
    store = start_server(redis_port, directory)
    env = {**os.environ, **({"THINGSTASH_WORKERS": str(workers)} if workers else {})}
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "thingstash", "serve", "--port", str(native)]
        + ["--firebase-port", str(firebase), "--redis-url", f"redis://127.0.0.1:{redis_port}/0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{native}/_health", timeout=1).raise_for_status()
                httpx.get(f"http://127.0.0.1:{firebase}/.json?shallow=true", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)
        yield server.pid, native, firebase, redis_port
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        store.terminate()
        store.wait(10)
        subprocess.run(["rm", "-rf", directory], check=False)


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def populate(base: str, kind: Kind) -> None:
    """The things the writes will change, as they are before the run (n = -1: not counted)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(FOLDER):
            body = {**kind.body(-1 - n), "n": -1, "t": 0.0}
            client.put(kind.write(n), content=orjson.dumps(body)).raise_for_status()


def drain(tally: Tally, expected: int) -> None:
    """Wait for the last events: until all came, none came for STALL_S, or DRAIN_S passed."""
    deadline = time.monotonic() + DRAIN_S
    progress, moved = len(tally.delays), time.monotonic()
    while len(tally.delays) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        if len(tally.delays) != progress:
            progress, moved = len(tally.delays), time.monotonic()
        elif time.monotonic() - moved > STALL_S:
            return


def run_row(loop: Loop, kind: Kind, count: int, args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"N": count}
    with fresh_server(args.workers) as (pid, native, firebase, redis_port):
        base = f"http://127.0.0.1:{native}"
        populate(base, kind)
        row["probe_none"] = probe(base, args.probes)
        processes = tree(pid)
        before = rss(processes)
        writes = int(args.seconds * kind.rate)
        tally = Tally(writes)
        started = time.monotonic()
        streams: list[Stream] = loop.run(
            open_streams(
                "127.0.0.1",
                firebase if kind.firebase else native,
                kind.watch,
                count,
                tally,
                per_address=args.per_address,
                timeout=args.timeout,
            )
        )
        row["open_s"] = time.monotonic() - started
        for state in (OPEN, REFUSED, HUNG, FAILED):
            row[state] = sum(stream.state == state for stream in streams)
        row["statuses"] = Counter(stream.status for stream in streams if stream.state == REFUSED)
        try:
            time.sleep(1)
            processes = tree(pid)
            row["rss"] = rss(processes)
            row["per_conn"] = (row["rss"] - before) / row[OPEN] if row[OPEN] else math.nan
            row["redis_clients"] = redis.Redis(port=redis_port).info("clients")["connected_clients"]
            cpu = cpu_seconds(processes)
            time.sleep(args.idle)
            row["idle_cpu"] = (cpu_seconds(processes) - cpu) / args.idle
            row["probe_open"] = probe(base, args.probes)
            opened = [(i, s) for i, s in enumerate(streams) if s.state == OPEN]
            expected = sum(kind.gets(i, n) for i, _ in opened for n in range(writes))
            cpu, own, started = cpu_seconds(processes), time.process_time(), time.monotonic()
            failed, took = write_paced(base, kind.write, kind.body, writes, kind.rate)
            drain(tally, expected)
            wall = time.monotonic() - started
            row["busy_cpu"] = (cpu_seconds(processes) - cpu) / wall
            row["own_cpu"] = (time.process_time() - own) / wall
            row.update(expected=expected, write_failed=failed, write_rate=writes / took)
            row["delivered"] = len(tally.delays)
            row["lost"] = expected - row["delivered"]
            row["ended"] = sum(stream.state != OPEN for _, stream in opened)
            row["delays"] = sorted(tally.delays)
        finally:
            loop.run(close_streams(streams))
    return row


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:,.0f}" if seconds >= 0.1 else f"{seconds * 1000:.1f}"


def latency(row: dict[str, Any], index: int) -> str:
    """p99 with streams open (and without, and the ratio)."""
    idle, loaded = (
        percentile(row["probe_none"][index], 0.99),
        percentile(row["probe_open"][index], 0.99),
    )
    return f"{loaded * 1000:.1f} ({idle * 1000:.1f}, {loaded / idle:.1f}x)"


HEADER = (
    "| N | connected | refused / hung / failed | open s | MB server | KB/conn | Redis clients "
    "| idle CPU % | CPU % writing: server / bench | delay p50 / p99 / max ms "
    "| delivered | lost | ended "
    "| GET p99 ms (none open) | PUT p99 ms (none open) |\n" + "|---" * 15 + "|"
)


def table_row(row: dict[str, Any]) -> str:
    if "delays" not in row:
        return f"| {row['N']:,} | {row.get('error', 'failed')} |" + " |" * 13
    delays = row["delays"]
    worst = delays[-1] if delays else math.nan
    delay = f"{ms(median(delays))} / {ms(percentile(delays, 0.99))} / {ms(worst)}"
    cells = [
        f"{row['N']:,}",
        f"{row[OPEN]:,}",
        f"{row[REFUSED]:,} / {row[HUNG]:,} / {row[FAILED]:,}",
        f"{row['open_s']:.1f}",
        f"{row['rss'] / 1e6:,.0f}",
        f"{row['per_conn'] / 1e3:,.0f}",
        f"{row['redis_clients']:,}",
        f"{row['idle_cpu'] * 100:.1f}",
        f"{row['busy_cpu'] * 100:.0f} / {row['own_cpu'] * 100:.0f}",
        delay,
        f"{row['delivered']:,} / {row['expected']:,}",
        f"{row['lost']:,}",
        f"{row['ended']:,}",
        latency(row, 0),
        latency(row, 1),
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated, of " + ", ".join(KINDS)
    )
    parser.add_argument("--counts", help="comma-separated N for every kind (default: per kind)")
    parser.add_argument("--seconds", type=float, default=10, help="of writes per row")
    parser.add_argument("--idle", type=float, default=3, help="seconds of idle CPU measured")
    parser.add_argument("--probes", type=int, default=500, help="sequential GETs, then PUTs")
    parser.add_argument("--per-address", type=int, default=16, help="streams per source address")
    parser.add_argument("--timeout", type=float, default=10, help="for a stream's status line")
    parser.add_argument("--workers", type=int, help="THINGSTASH_WORKERS (default: the server's)")
    args = parser.parse_args()
    limit = raise_open_files_limit()
    loop = Loop()
    print(
        f"realtime bench: {os.cpu_count()} cores, open files {limit:,}, "
        f"{args.seconds:.0f} s of writes a row"
    )
    try:
        for name in args.kinds.split(","):
            kind = KINDS[name]
            counts = [int(c) for c in args.counts.split(",")] if args.counts else kind.counts
            print(f"\n{name}: {kind.title}, {kind.rate:.0f} writes/s\n{HEADER}", flush=True)
            for count in counts:
                try:
                    row = run_row(loop, kind, count, args)
                except Exception as error:  # one row's failure is reported, the others still run
                    row = {"N": count, "error": f"{type(error).__name__}: {error}"}
                print(table_row(row), flush=True)
                if row.get("statuses"):
                    refusals = ", ".join(f"{n:,} x {code}" for code, n in row["statuses"].items())
                    print(f"  (refused: {refusals})", flush=True)
                if row.get("write_failed"):
                    print(f"  ({row['write_failed']} writes failed)", flush=True)
                if "write_rate" in row and row["write_rate"] < kind.rate * 0.95:
                    print(f"  (writes at {row['write_rate']:.1f}/s, behind)", flush=True)
    finally:
        loop.stop()


if __name__ == "__main__":
    main()

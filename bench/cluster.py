"""PUT/GET throughput of thingstash on a single Redis and on a local Redis Cluster (3 primaries
+ 3 replicas), from one `thingstash serve` process and from two. Run: `make bench-cluster`.

Everything runs on this machine: the Redis processes, the service processes and wrk share its
cores, so the numbers compare the topologies under the same squeeze; they are not what a cluster
of real machines would do. Each cell is one short wrk run (bounded in time).

Both topologies answer plain requests on the fast path (web/fastpath.py); the Redis calls under
it differ: on one Redis they go over each thread's own connection (store/lean.py), on a cluster
through redis-py's cluster client and its per-node pools (its slot routing and redirections
live in that machinery). The table says which.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.clusters import LocalCluster  # noqa: E402
from tests.support.ports import free_ports  # noqa: E402

from thingstash.serve.embedded import scratch_command  # noqa: E402

PUT_LUA = """
wrk.method = "PUT"
wrk.body = '{"temp": 21.5, "unit": "C", "tags": ["kitchen", "north"]}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/bench/t" .. math.random(1, %d))
end
"""
GET_LUA = """
request = function()
  return wrk.format("GET", "/bench/t" .. math.random(1, %d))
end
"""


CLIENTS = {
    "single": "lean: each thread's own connection",
    "cluster": "redis-py cluster client, per-node pools",
}


def start_single(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    (port,) = free_ports(1)
    process = subprocess.Popen(
        scratch_command(port, directory),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"redis://127.0.0.1:{port}/0"


def start_service(redis_url: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    (port,) = free_ports(1)
    env = {**os.environ, "THINGSTASH_WORKERS": str(workers)}
    process = subprocess.Popen(
        [sys.executable, "-m", "thingstash", "serve", "--port", str(port)]
        + ["--redis-url", redis_url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/_health", timeout=2):
                return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("thingstash serve did not start") from None
            time.sleep(0.1)


def populate(url: str, things: int) -> None:
    for i in range(1, things + 1):
        request = urllib.request.Request(
            f"{url}/bench/t{i}",
            data=b'{"temp": 21.5}',
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()


def wrk(urls: list[str], script: str, seconds: int, connections: int) -> float:
    """Total req/s of one wrk per URL, run at the same time; non-2xx answers fail the run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    runs = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", lua.name, url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    total = 0.0
    for run in runs:
        out, _ = run.communicate(timeout=seconds + 60)
        if "Non-2xx" in out:
            raise RuntimeError(f"errors during the run:\n{out}")
        total += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    os.unlink(lua.name)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--things", type=int, default=1000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        single, single_url = start_single(Path(tmp))
        cluster = LocalCluster(Path(tmp) / "cluster")
        (Path(tmp) / "cluster").mkdir()
        cluster.start()
        try:
            for topology, redis_url in (("single", single_url), ("cluster", cluster.url)):
                for processes in (1, 2):
                    services = [start_service(redis_url, 2) for _ in range(processes)]
                    urls = [url for _, url in services]
                    try:
                        populate(urls[0], args.things)
                        put = wrk(urls, PUT_LUA % args.things, args.seconds, args.connections)
                        get = wrk(urls, GET_LUA % args.things, args.seconds, args.connections)
                    finally:
                        for process, _ in services:
                            process.terminate()
                            process.wait(30)
                    rows.append((topology, processes, put, get))

                    print(f"{topology:8} {processes} process(es): PUT {put:8.0f}  GET {get:8.0f}")
        finally:
            cluster.stop()
            single.terminate()
            single.wait(10)
    print()
    print(
        f"| Redis | Redis client under the fast path | service processes | PUT req/s | GET req/s |"
        f"  (wrk -t1 -c{args.connections})"
    )
    print("|---|---|---|---|---|")
    for topology, processes, put, get in rows:
        print(f"| {topology} | {CLIENTS[topology]} | {processes} | {put:.0f} | {get:.0f} |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

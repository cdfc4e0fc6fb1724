"""The async front (serve/asgi.py) against `thingstash serve`, both faces, over raw sockets:
streams are coroutines of a worker's one event loop, not threads; one write reaches every one of
them; ordinary requests are answered meanwhile; THINGSTASH_FRONT=threads still serves as
before (issue 24)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest
import requests

from ..support.ports import free_port
from ..support.servers import RedisServer, Served
from .test_connections import (
    answer_within,
    connect,
    raise_open_files,
    readable,
    request_head,
    wait_for_firebase,
)

STREAMS = 400  # per face


@pytest.fixture(scope="module")
def one_worker(redis_server: RedisServer) -> Iterator[tuple[Served, int]]:
    raise_open_files()
    firebase_port = free_port()
    served = Served(
        ["--redis-url", redis_server.url, "--firebase-port", str(firebase_port)],
        {
            "THINGSTASH_WORKERS": "1",
            "THINGSTASH_KEY_PREFIX": "livecore",
            "THINGSTASH_MAX_STREAMS_PER_CLIENT": "1000",
        },
    ).start()
    wait_for_firebase(served, firebase_port)
    yield served, firebase_port
    served.stop()


def worker_threads(served: Served, port: int) -> int:
    """The threads of the worker process serving `port` (the face's only one): of the processes
    that hold its listening socket, the deepest (a granian server's workers are its children)."""
    assert served.process is not None
    holders = []
    for process in psutil.Process(served.process.pid).children(recursive=True):
        try:
            if any(
                c.laddr.port == port and c.status == psutil.CONN_LISTEN
                for c in process.net_connections("tcp")
            ):
                holders.append((len(process.parents()), process))
        except psutil.Error:
            continue
    assert holders, f"no process listens on {port}"
    return max(holders, key=lambda holder: holder[0])[1].num_threads()


def received_by_all(socks: list, marker: bytes, seconds: float) -> int:
    """How many of `socks` received `marker` within `seconds` (reading what each sends)."""
    got: dict[int, bytes] = {sock.fileno(): b"" for sock in socks}
    waiting = list(socks)
    deadline = time.monotonic() + seconds
    while waiting and time.monotonic() < deadline:
        for sock in readable(waiting, 0.5):
            got[sock.fileno()] += sock.recv(65536)
        waiting = [sock for sock in waiting if marker not in got[sock.fileno()]]
    return len(socks) - len(waiting)


@pytest.mark.parametrize("face", ["native", "firebase"])
def test_hundreds_of_streams_hold_no_thread_and_a_write_reaches_them_all(
    one_worker: tuple[Served, int], face: str
) -> None:
    served, firebase_port = one_worker
    port = served.port if face == "native" else firebase_port
    path = "/room/" if face == "native" else "/room.json"
    threads_before = worker_threads(served, port)
    socks = []
    try:
        for _ in range(STREAMS):
            sock = connect(port)
            sock.sendall(request_head("GET", path, Accept="text/event-stream"))
            socks.append(sock)
        assert all(answer_within(sock, 10, complete=False).status == 200 for sock in socks)
        # The worker holds them on its event loop: its threads are what they were (a few for
        # the feed reader and the reads of streams), not one per stream.
        assert worker_threads(served, port) - threads_before < 12
        started = time.perf_counter()
        mark = f"hello-{face}"
        response = requests.put(f"{served.url}/room/{face}", json={"mark": mark}, timeout=5)
        assert response.status_code == 201
        assert received_by_all(socks, mark.encode(), 20) == STREAMS
        delivered = time.perf_counter() - started
        print(f"{face}: {STREAMS} streams, one write delivered to all in {delivered * 1000:.0f} ms")
        # Ordinary requests meanwhile, on the same worker.
        assert requests.get(f"{served.url}/room/{face}", timeout=2).json()["mark"] == mark
        if face == "native":
            # Sent by the bell itself (live/riding.py), and measured for /_metrics.
            metrics = requests.get(f"{served.url}/_metrics", timeout=5).text
            rings = [
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("thingstash_fanout_delay_seconds_count")
            ]
            assert rings and rings[0] >= 1
    finally:
        for sock in socks:
            sock.close()


def test_the_threads_front_still_serves_a_watch_and_a_write(redis_server: RedisServer) -> None:
    served = Served(
        ["--redis-url", redis_server.url],
        {"THINGSTASH_WORKERS": "1", "THINGSTASH_KEY_PREFIX": "threadsfront"}
        | {"THINGSTASH_FRONT": "threads"},
    ).start()
    try:
        sock = connect(served.port)
        sock.sendall(request_head("GET", "/t/", Accept="text/event-stream"))
        assert answer_within(sock, 10, complete=False).status == 200
        assert requests.put(f"{served.url}/t/a", json={"mark": "x1"}, timeout=5).status_code == 201
        assert received_by_all([sock], b"x1", 10) == 1
        sock.close()
    finally:
        served.stop()


def test_an_unknown_front_is_refused_at_start(redis_server: RedisServer) -> None:
    served = Served(["--redis-url", redis_server.url], {"THINGSTASH_FRONT": "fibers"})
    with pytest.raises(RuntimeError, match="THINGSTASH_FRONT must be one of: async, threads"):
        served.start(timeout=10)

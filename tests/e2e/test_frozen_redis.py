"""A Redis that stops answering without closing (SIGSTOP): requests get a 503 with Retry-After
within 3 s instead of hanging, and the service recovers by itself once Redis answers again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ..support.servers import RedisServer, Served


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis for this test alone: stopping the session's would stall every other test."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)  # never leave it stopped
    server.stop()


# With a rate limit, its counters live in the same Redis and are asked first.
@pytest.mark.parametrize("env", [{}, {"THINGSTASH_RATE_LIMIT": "100000/minute"}])
def test_a_frozen_redis_answers_503_within_3_s_and_recovers(
    own_redis: RedisServer, env: dict[str, str]
) -> None:
    served = Served(["--redis-url", own_redis.url], env).start()
    assert own_redis.process is not None
    pid = own_redis.process.pid
    try:
        url = f"{served.url}/frozen/thing"
        assert requests.put(url, json={"v": 1}, timeout=5).status_code == 201
        os.kill(pid, signal.SIGSTOP)
        try:
            # Each in turn meets the frozen Redis on a pooled connection or a new one.
            for method, path in [("GET", url), ("PUT", url), ("GET", url), ("GET", "/_health")]:
                target = path if path.startswith("http") else served.url + path
                started = time.monotonic()
                response = requests.request(method, target, json={"v": 2}, timeout=30)
                seconds = time.monotonic() - started
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["Retry-After"] == "1"
                print(f"{method} {path.rsplit(chr(47), 1)[-1]}: 503 in {seconds:.2f} s")
                assert seconds < 3.0, (method, path, seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while requests.get(url, timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.1)
        assert requests.get(url, timeout=5).json()["v"] in (1, 2)
        assert requests.put(url, json={"v": 3}, timeout=5).status_code == 200
        assert requests.get(url, timeout=5).json()["v"] == 3
        assert requests.get(f"{served.url}/_health", timeout=5).status_code == 200
    finally:
        served.stop()

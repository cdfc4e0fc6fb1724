"""Watching end to end: `thingstash serve` (granian, embedded Redis) as a subprocess, over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import free_port

pytestmark = pytest.mark.slow


class Served:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "THINGSTASH_WORKERS": "1",  # one process, so /_health sees every stream
            "THINGSTASH_KEEPALIVE": "1",
        }
        for name in ("REDIS_URL", "THINGSTASH_REDIS_URL", "REDISCLOUD_URL"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [
                os.path.join(os.path.dirname(sys.executable), "thingstash"),
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.url + "/_health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("thingstash serve did not start")
            time.sleep(0.1)

    def watchers(self) -> int:
        return requests.get(self.url + "/_health", timeout=5).json()["watchers"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "data")
    yield server
    server.stop()


def lines(response: requests.Response) -> Iterator[str]:
    for line in response.iter_lines(decode_unicode=True):
        yield line


def next_event(stream: Iterator[str]) -> dict[str, str]:
    """The next event's fields, skipping comments."""
    fields: dict[str, str] = {}
    for line in stream:
        if line == "":
            if "event" in fields:
                return fields
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError("the stream ended")


def until(condition, seconds: float = 20) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_watch_over_http_sees_writes_expiry_and_keepalives(served: Served) -> None:
    headers = {"Accept": "text/event-stream"}
    with requests.get(served.url + "/s/", headers=headers, stream=True, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = lines(response)
        assert next(stream).startswith(": watching")
        requests.put(served.url + "/s/a?ttl=1", json={"v": 1}, timeout=5)
        put = next_event(stream)
        assert put["event"] == "put"
        assert put["data"].startswith('{"path":"s/a","thing":{"v":1,')
        expired = next_event(stream)
        assert expired["event"] == "expire"
        assert expired["data"] == '{"path":"s/a","thing":null}'
        # Nothing more happens: the stream is kept open with comments.
        assert [line for line in (next(stream), next(stream)) if line] == [": keep-alive"]
        # Resume from the put: the expiry comes again, from the stream's history.
        resumed = requests.get(
            served.url + "/s/",
            headers={**headers, "Last-Event-ID": put["id"]},
            stream=True,
            timeout=30,
        )
        with resumed:
            assert next_event(lines(resumed))["id"] == expired["id"]
    # A client that went away frees its stream at the next write to it (a keep-alive).
    assert until(lambda: served.watchers() == 0)


def test_streams_end_cleanly_when_the_server_stops(served: Served) -> None:
    headers = {"Accept": "text/event-stream"}
    with requests.get(served.url + "/", headers=headers, stream=True, timeout=30) as response:
        stream = lines(response)
        assert next(stream).startswith(": watching")
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        rest = list(stream)  # ends: the server closes the stream, it does not hang
        assert all(line == "" or line.startswith(":") for line in rest)
    served.process.wait(20)
    assert time.monotonic() - started < 8  # well before granian's kill timeout
    assert served.process.returncode == 0

"""Watching end to end: `thingstash serve` (granian, embedded Redis) as a subprocess, over HTTP."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ..support.servers import Served

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Served]:
    """`thingstash serve` on its embedded Redis, one worker (so /_health counts every stream),
    keep-alives every second."""
    server = Served(
        ["--data-dir", str(tmp_path / "data")],
        env={"THINGSTASH_WORKERS": "1", "THINGSTASH_KEEPALIVE": "1"},
    ).start()
    yield server
    server.stop()  # also closes its log when a test stopped the process itself


def watchers(server: Served) -> int:
    return requests.get(server.url + "/_health", timeout=5).json()["watchers"]


def lines(response: requests.Response) -> Iterator[str]:
    yield from response.iter_lines(decode_unicode=True)


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


def test_watch_over_http_sees_writes_expiry_and_keepalives(embedded: Served) -> None:
    headers = {"Accept": "text/event-stream"}
    with requests.get(embedded.url + "/s/", headers=headers, stream=True, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = lines(response)
        assert next(stream).startswith(": watching")
        requests.put(embedded.url + "/s/a?ttl=1", json={"v": 1}, timeout=5)
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
            embedded.url + "/s/",
            headers={**headers, "Last-Event-ID": put["id"]},
            stream=True,
            timeout=30,
        )
        with resumed:
            assert next_event(lines(resumed))["id"] == expired["id"]
    # A client that went away frees its stream at the next write to it (a keep-alive).
    assert until(lambda: watchers(embedded) == 0)


def test_streams_end_cleanly_when_the_server_stops(embedded: Served) -> None:
    headers = {"Accept": "text/event-stream"}
    with requests.get(embedded.url + "/", headers=headers, stream=True, timeout=30) as response:
        stream = lines(response)
        assert next(stream).startswith(": watching")
        started = time.monotonic()
        assert embedded.process is not None
        embedded.process.send_signal(signal.SIGTERM)
        rest = list(stream)  # ends: the server closes the stream, it does not hang
        assert all(line == "" or line.startswith(":") for line in rest)
    embedded.process.wait(20)
    assert time.monotonic() - started < 8  # well before granian's kill timeout
    assert embedded.process.returncode == 0


def test_open_watches_take_no_place_from_requests(tmp_path: Path) -> None:
    # One worker that works on one request at a time: three open watches must not block it,
    # since only building a response is gated, not streaming one.
    server = Served(
        ["--data-dir", str(tmp_path / "data")],
        env={"THINGSTASH_WORKERS": "1", "THINGSTASH_THREADS": "1"},
    ).start()
    headers = {"Accept": "text/event-stream"}
    try:
        streams = [
            requests.get(f"{server.url}/w/", headers=headers, stream=True, timeout=30)
            for _ in range(3)
        ]
        opened = [lines(response) for response in streams]
        for stream in opened:
            assert next(stream).startswith(": watching")
        for i in range(5):
            put = requests.put(f"{server.url}/w/t", json={"i": i}, timeout=10)
            assert put.status_code in (200, 201)
            assert requests.get(f"{server.url}/w/t", timeout=10).json()["i"] == i
        for stream in opened:
            assert '"i":0' in next_event(stream)["data"]
        for response in streams:
            response.close()
    finally:
        server.stop()

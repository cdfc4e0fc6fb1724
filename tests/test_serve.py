"""`thingstash serve` end to end, as a user runs it: embedded Redis, data that survives a kill."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import requests

from .conftest import Served

pytestmark = pytest.mark.slow


def test_data_survives_sigkill_and_nothing_is_left_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = Served(["--data-dir", str(data_dir)]).start()
    put = requests.put(f"{first.url}/sensors/kitchen", json={"temp": 21.5}, timeout=5)
    assert put.status_code == 201
    time.sleep(1.5)  # the append-only file is synced every second
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    # Same port and same data dir: both are free again only if no worker or Redis outlived it.
    second = Served(["--data-dir", str(data_dir)], port=first.port).start()
    try:
        got = requests.get(f"{second.url}/sensors/kitchen", timeout=5)
        assert got.status_code == 200
        assert got.json()["temp"] == 21.5
        assert got.headers["ETag"] == put.headers["ETag"]
    finally:
        assert second.stop() == 0


def test_clean_stop_keeps_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = Served(["--data-dir", str(data_dir)]).start()
    requests.put(f"{first.url}/just-written", json={"v": 1}, timeout=5)
    assert first.stop() == 0
    second = Served(["--data-dir", str(data_dir)]).start()
    try:
        assert requests.get(f"{second.url}/just-written", timeout=5).json()["v"] == 1
    finally:
        second.stop()


def test_two_servers_cannot_share_a_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = Served(["--data-dir", str(data_dir)]).start()
    try:
        with pytest.raises(RuntimeError, match="in use by another thingstash"):
            Served(["--data-dir", str(data_dir)]).start()
    finally:
        first.stop()


def test_a_long_data_dir_path_still_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # the socket would pass unix's 108-byte limit
    server = Served(["--data-dir", str(deep)]).start()
    try:
        assert requests.put(f"{server.url}/x", json={}, timeout=5).status_code == 201
    finally:
        server.stop()


def test_serve_answers_with_problem_json_not_a_debugger(served: Served) -> None:
    response = requests.get(f"{served.url}/_nope", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    crash = requests.put(
        f"{served.url}/x", data=b"\xff\xfe", timeout=5, headers={"Content-Type": "application/json"}
    )
    assert crash.status_code == 400
    assert "Traceback" not in crash.text

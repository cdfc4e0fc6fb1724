"""`thingstash serve` end to end, as a user runs it: embedded Redis, data that survives a kill."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from thingstash.serve import server

from ..support.ports import free_port
from ..support.servers import Served

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


def test_ctrl_c_stops_workers_then_redis_cleanly(tmp_path: Path) -> None:
    # Ctrl-C in a terminal signals its whole foreground process group: `serve` and everything
    # in its group. The embedded Redis must not be part of it (issue 12, item 18).
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "thingstash", "serve", "--port", str(port)]
            + ["--data-dir", str(tmp_path / "data")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, as a shell gives a foreground job
            env={**os.environ, "THINGSTASH_WORKERS": "2"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        # Until both workers answer (each access line names its pid): a Ctrl-C while a worker
        # is still starting is another case, left to the kill timeout.
        while len(set(re.findall(r'"pid":(\d+)', log.read_text()))) < 2:
            assert process.poll() is None, log.read_text()
            try:
                requests.get(f"{url}/_health", timeout=1, headers={"Connection": "close"})
            except requests.RequestException:
                time.sleep(0.1)
            assert time.monotonic() < deadline, log.read_text()
        assert requests.put(f"{url}/kept", json={"v": 1}, timeout=5).status_code == 201
        watch = requests.get(url + "/", headers={"Accept": "text/event-stream"}, stream=True)

        def follow() -> None:
            # As a browser's EventSource does: read until the stream ends, then drop it.
            for _ in watch.iter_content(chunk_size=None):
                pass
            watch.close()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        redis_pid = int(re.search(r"embedded Redis \(pid (\d+)\)", log.read_text())[1])  # type: ignore[index]
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(30)
        took = time.monotonic() - started
        follower.join(5)
        assert not follower.is_alive()  # the watch stream ended with the stop
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text()
    assert code == 0, output
    # No worker was killed at the grace's end (a watch stream was open): that is what tells a
    # clean stop from a forced one. The time only proves it did not hang: on a loaded 2-core
    # machine a clean stop has taken 5.4 s, so it is not held to the 5 s grace itself.
    assert took < server.SHUTDOWN_GRACE_SECONDS + 10, (took, output)
    assert "Killing" not in output and "refused to gracefully stop" not in output
    assert "restarting" not in output and "exited unexpectedly" not in output
    assert "Configuration allows spawning" not in output  # granian's thread-count warning
    with pytest.raises(ProcessLookupError):
        os.kill(redis_pid, 0)  # stopped, not left behind
    redis_log = (tmp_path / "data" / "redis.log").read_text()
    # Stopped by `serve` (SIGTERM, after the workers), never by the terminal's SIGINT.
    assert "Received SIGINT" not in redis_log and "Received SIGTERM" in redis_log
    assert "ready to exit" in redis_log

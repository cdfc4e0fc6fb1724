"""`thingstash serve` ready for the open internet, end to end: keys through the command line,
the public-bind refusal, metrics across worker processes, access logs, Redis outages, and the
embedded server killed under the service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from thingstash.core import keys
from thingstash.store.single import RedisStore as Store

from ..support.servers import RedisServer, Served

pytestmark = pytest.mark.slow


def thingstash(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thingstash", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_keys_cli_with_the_data_dir_stopped_and_running(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    made = thingstash(
        "keys", "create", "--scope", "write", "--prefix", "s/", "--data-dir", data_dir
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("tsk_") and "shown only now" in made.stderr
    server = Served(["--data-dir", data_dir]).start()
    try:
        headers = {"Authorization": f"Bearer {key}"}
        assert requests.put(f"{server.url}/s/1", json={}, headers=headers, timeout=5).ok
        assert requests.get(f"{server.url}/s/1", timeout=5).status_code == 401
        assert (
            requests.put(f"{server.url}/t", json={}, headers=headers, timeout=5).status_code == 403
        )
        # The service runs: `keys` talks to its embedded server through the socket.
        listed = thingstash("keys", "list", "--data-dir", data_dir)
        assert listed.returncode == 0, listed.stderr
        key_id = key.split("_")[1]
        assert key_id in listed.stdout and "write" in listed.stdout and "s/" in listed.stdout
        assert key not in listed.stdout and key.split("_", 2)[2] not in listed.stdout
        revoked = thingstash("keys", "revoke", key_id, "--data-dir", data_dir)
        assert revoked.returncode == 0, revoked.stderr
        assert requests.get(f"{server.url}/s/1", headers=headers, timeout=5).status_code == 401
        assert thingstash("keys", "revoke", key_id, "--data-dir", data_dir).returncode == 1
        assert key not in server.output() and key_id in server.output()
    finally:
        assert server.stop() == 0


def test_public_bind_refused_without_a_key(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    # The refusal comes before anything binds, so no non-loopback socket is ever opened here.
    refused = thingstash("serve", "--host", "0.0.0.0", "--redis-url", redis_server.url)
    assert refused.returncode != 0
    assert "thingstash keys create --scope admin" in refused.stderr
    assert "--public" in refused.stderr


def test_bind_rules(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    store = Store(redis_client)
    keys.check_bind("127.0.0.1", False, store)
    keys.check_bind("localhost", False, store)
    keys.check_bind("::1", False, store)
    keys.check_bind("0.0.0.0", True, store)
    with pytest.raises(keys.OpenStoreRefused):
        keys.check_bind("0.0.0.0", False, store)
    with pytest.raises(keys.OpenStoreRefused):
        keys.check_bind("192.0.2.1", False, store)
    keys.create_key(store, "admin")
    keys.check_bind("0.0.0.0", False, store)  # keys exist: the store is not open


def _access_lines(output: str) -> list[dict]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return [line for line in lines if "request_id" in line]


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def test_metrics_and_access_logs_across_workers(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    server = Served(["--redis-url", redis_server.url], env={"TMPDIR": str(tmp_path)}).start()
    try:
        assert list(tmp_path.glob("thingstash-metrics-*"))
        sent = 0
        while sent < 400:  # new connections until both workers have answered some
            response = requests.get(
                f"{server.url}/metric/probe", headers={"X-Request-ID": f"probe-{sent}"}, timeout=5
            )
            assert response.status_code == 404
            assert response.headers["X-Request-ID"] == f"probe-{sent}"
            sent += 1
            if sent % 20 == 0:
                time.sleep(0.2)  # let the log lines reach the file
                pids = {line["pid"] for line in _access_lines(server.output())}
                if len(pids) >= 2:
                    break
        assert len(pids) >= 2, "every request went to one worker"
        requests.put(f"{server.url}/metric/thing", json={"v": 1}, timeout=5)
        for _ in range(4):  # whichever worker answers the scrape, it counts them all
            text = requests.get(f"{server.url}/_metrics", timeout=5).text
            assert _sample(text, 'thingstash_requests_total{method="GET",status="404"}') == sent
            assert _sample(text, 'thingstash_requests_total{method="PUT",status="201"}') == 1
            # Keys with an expiry, so a start-up lease (store/indexbuild.py: a build's lock, held
            # for a moment with a PX) may count while it is held: wait for it to go.
            deadline = time.monotonic() + 10
            while _sample(text, "thingstash_things_stored") != 1 and time.monotonic() < deadline:
                time.sleep(0.2)
                text = requests.get(f"{server.url}/_metrics", timeout=5).text
            assert _sample(text, "thingstash_things_stored") == 1
            assert 'thingstash_request_duration_seconds_count{method="GET"}' in text
        lines = _access_lines(server.output())
        probes = [line for line in lines if line["request_id"].startswith("probe-")]
        assert len(probes) == sent
        assert {"method", "path", "status", "duration_ms", "client"} <= set(probes[0])
    finally:
        assert server.stop() == 0
    assert not list(tmp_path.glob("thingstash-metrics-*"))


def test_redis_outage_through_serve(tmp_path: Path) -> None:
    redis_process = RedisServer(tmp_path)
    redis_process.start()
    server = Served(["--redis-url", redis_process.url]).start()
    try:
        assert requests.put(f"{server.url}/a", json={"v": 1}, timeout=5).status_code == 201
        redis_process.stop()
        for _ in range(4):
            down = requests.get(f"{server.url}/a", timeout=10)
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "1"
            assert down.headers["Content-Type"] == "application/problem+json"
            assert "Traceback" not in down.text and "Error" not in down.json()["detail"]
        assert requests.get(f"{server.url}/_health", timeout=10).status_code == 503
        redis_process.start()  # same port, empty (no persistence in this fixture)
        wait_for(lambda: requests.get(f"{server.url}/_health", timeout=5).status_code == 200)
        assert requests.put(f"{server.url}/a", json={"v": 2}, timeout=5).status_code == 201
        for _ in range(4):  # every worker is back
            assert requests.get(f"{server.url}/a", timeout=5).json()["v"] == 2
        # /_metrics needs Redis too (to know whether a key is needed); the count survived.
        metrics = requests.get(f"{server.url}/_metrics", timeout=10)
        assert _sample(metrics.text, "thingstash_redis_errors_total") >= 4
    finally:
        server.stop()
        redis_process.stop()


def test_embedded_redis_killed_is_restarted_with_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = Served(["--data-dir", str(data_dir)]).start()
    try:
        put = requests.put(f"{server.url}/kept", json={"v": 1}, timeout=5)
        assert put.status_code == 201
        time.sleep(1.5)  # the append-only file is synced every second
        url = (data_dir / "redis.url").read_text().strip()
        client = redis.Redis.from_url(url)
        pid = client.info("server")["process_id"]
        client.close()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: requests.get(f"{server.url}/_health", timeout=5).status_code == 200)
        got = requests.get(f"{server.url}/kept", timeout=5)
        assert got.status_code == 200 and got.headers["ETag"] == put.headers["ETag"]
        assert requests.put(f"{server.url}/after", json={}, timeout=5).status_code == 201
        assert "exited unexpectedly" in server.output()
    finally:
        assert server.stop() == 0
    # The restarted server stopped with the service: the data dir is free again.
    again = Served(["--data-dir", str(data_dir)]).start()
    try:
        assert requests.get(f"{again.url}/after", timeout=5).status_code == 200
    finally:
        again.stop()


def test_graceful_stop_finishes_the_request_in_flight(tmp_path: Path) -> None:
    import socket

    data_dir = str(tmp_path / "data")
    server = Served(["--data-dir", data_dir]).start()
    body = b'{"slow": "' + b"x" * 1000 + b'"}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = (
            "PUT /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(head + body[:10])
        time.sleep(0.3)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)  # while the body is still arriving
        time.sleep(0.5)
        sock.sendall(body[10:])
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:100]
    assert server.stop() == 0
    again = Served(["--data-dir", data_dir]).start()
    try:
        assert requests.get(f"{again.url}/slow", timeout=5).json()["slow"] == "x" * 1000
    finally:
        again.stop()

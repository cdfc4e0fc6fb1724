"""CORS, rate limits, request ids, metrics and Redis outages, against real Redis servers."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core.config import Settings
from thingstash.web import accesslog
from thingstash.web.app import create_app

from .conftest import RedisServer, close_app


@pytest.fixture
def app_with(make_app: Callable[..., Flask]) -> Callable[..., FlaskClient]:
    """A client of an app with some settings changed: `app_with(rate_limit="3/minute")`."""
    return lambda **overrides: make_app(**overrides).test_client()


def test_cors_preflight_and_exposed_headers(client: FlaskClient) -> None:
    # An open store allows loopback origins only (see test_doors for the others).
    preflight = client.options(
        "/a/b",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "Authorization, Content-Type, If-Match",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in {"*", "http://localhost:5173"}
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "if-match" in allowed
    response = client.put("/a/b", json={"v": 1}, headers={"Origin": "http://localhost:5173"})
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    for header in ("etag", "last-modified", "location", "retry-after", "x-request-id"):
        assert header in exposed
    error = client.get("/missing", headers={"Origin": "http://localhost:5173"})
    assert error.status_code == 404
    assert error.headers.getlist("Access-Control-Allow-Origin") == ["http://localhost:5173"]


def test_cors_headers_without_an_origin(app_with) -> None:  # type: ignore[no-untyped-def]
    # Scripts send no Origin; they get what flask-cors gives such a request, computed once.
    # (Every origin allowed: "*" is no longer the default of an open store.)
    client = app_with(cors_origins="*")
    plain = client.put("/a/plain", json={"v": 1})
    assert plain.headers["Access-Control-Allow-Origin"] == "*"
    assert "etag" in plain.headers["Access-Control-Expose-Headers"].lower()
    for answer in (plain, client.get("/a/missing"), client.get("/_nothing_here")):
        assert answer.headers.getlist("Access-Control-Allow-Origin") == ["*"]
        assert len(answer.headers.getlist("Access-Control-Expose-Headers")) == 1
    restricted = app_with(cors_origins="https://good.example, https://also.example")
    answer = restricted.get("/a/plain")
    assert answer.headers.get("Access-Control-Allow-Origin") != "*"
    assert answer.headers["Vary"] == "Origin"


def test_cors_origins_restricted(app_with) -> None:  # type: ignore[no-untyped-def]
    client = app_with(cors_origins="https://good.example, https://also.example")
    good = client.get("/", headers={"Origin": "https://also.example"})
    assert good.headers["Access-Control-Allow-Origin"] == "https://also.example"
    bad = client.get("/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in bad.headers


def test_rate_limit(app_with, redis_client) -> None:  # type: ignore[no-untyped-def]
    client = app_with(rate_limit="3/minute")
    statuses = [client.get("/nothing").status_code for _ in range(3)]
    assert statuses == [404, 404, 404]
    over = client.get("/nothing")
    assert over.status_code == 429
    assert over.mimetype == "application/problem+json"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert client.get("/_health").status_code == 200  # never limited
    # Shared through Redis: a second app (another worker or process) sees the same count.
    other = app_with(rate_limit="3/minute")
    assert other.get("/nothing").status_code == 429
    assert any(k.startswith(b"ts:rl") for k in redis_client.scan_iter())
    # Limited per client: another address has its own budget.
    fresh = other.get("/nothing", environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert fresh.status_code == 404


def test_rate_limit_per_forwarded_client_behind_a_proxy(app_with) -> None:  # type: ignore[no-untyped-def]
    client = app_with(rate_limit="1/minute", proxies=1)
    first = {"X-Forwarded-For": "203.0.113.1"}
    assert client.get("/n", headers=first).status_code == 404
    assert client.get("/n", headers=first).status_code == 429
    assert client.get("/n", headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 404
    direct = app_with(rate_limit="1/minute")  # no proxy trusted: the header means nothing
    assert direct.get("/n", headers={"X-Forwarded-For": "203.0.113.3"}).status_code == 404
    assert direct.get("/n", headers={"X-Forwarded-For": "203.0.113.4"}).status_code == 429


def test_bad_rate_limit_refused(settings: Settings) -> None:
    from thingstash.core.config import ConfigError

    with pytest.raises(ConfigError):
        create_app(settings.with_overrides(rate_limit="lots"))


def test_request_id(client: FlaskClient) -> None:
    made = client.get("/_health").headers["X-Request-ID"]
    assert len(made) >= 16
    assert client.get("/_health").headers["X-Request-ID"] != made
    kept = client.get("/_health", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"
    insane = client.get("/_health", headers={"X-Request-ID": "x" * 500})
    assert insane.headers["X-Request-ID"] != "x" * 500


def _answer_one_request_logging_to(write_end: int) -> None:
    """In a forked worker: stderr is the pipe; one request through the access log, then the
    worker ends at once (os._exit, as multiprocessing's children do: no atexit)."""
    sys.stderr = os.fdopen(write_end, "w")
    accesslog.log.handlers.clear()
    accesslog.to_stderr()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("204 No Content", [])
        return []

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/last", "HTTP_X_REQUEST_ID": "the-last"}
    accesslog.AccessLog(app)(environ, lambda *args: None)


def test_a_workers_last_access_line_is_written_as_it_ends() -> None:
    # granian forks its workers with multiprocessing; lines wait up to 50 ms for their batch.
    read_end, write_end = os.pipe()
    worker = multiprocessing.get_context("fork").Process(
        target=_answer_one_request_logging_to, args=(write_end,)
    )
    worker.start()
    worker.join(20)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as written:
        lines = [json.loads(line) for line in written.read().splitlines()]
    assert worker.exitcode == 0
    assert [(line["request_id"], line["path"], line["status"]) for line in lines] == [
        ("the-last", "/last", 204)
    ]


def test_metrics_in_one_process(client: FlaskClient) -> None:
    client.put("/m/1", json={"v": 1})
    client.get("/m/1")
    text = client.get("/_metrics").get_data(as_text=True)
    assert 'thingstash_requests_total{method="PUT",status="201"}' in text
    assert "thingstash_request_duration_seconds_bucket" in text
    assert "thingstash_things_stored 1.0" in text
    assert "thingstash_open_watch_streams" in text
    assert "thingstash_redis_errors_total" in text


def test_redis_stopped_and_started_again(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    app = create_app(Settings(redis_url=server.url))
    client = app.test_client()
    try:
        assert client.put("/a", json={"v": 1}).status_code == 201
        server.stop()
        for method, path in (("get", "/a"), ("put", "/a"), ("get", "/"), ("delete", "/a")):
            response = getattr(client, method)(path, json={"v": 2})
            assert response.status_code == 503, (method, path)
            assert response.headers["Retry-After"] == "1"
            body = response.get_json()
            assert body["status"] == 503 and "Error" not in body["detail"]
        health = client.get("/_health")
        assert health.status_code == 503 and health.headers["Retry-After"]
        auth = client.get("/a", headers={"Authorization": "Bearer tsk_000000000000_x"})
        assert auth.status_code == 503
        server.start()  # same port
        assert client.get("/_health").status_code == 200
        assert client.put("/a", json={"v": 3}).status_code == 201
        assert client.get("/a").get_json()["v"] == 3
        text = client.get("/_metrics").get_data(as_text=True)
        assert "thingstash_redis_errors_total" in text and "thingstash_things_stored 1.0" in text
    finally:
        close_app(app)  # its live threads too: they would go on trying a stopped server
        server.stop()

"""What the service tells its operator: request ids (made or kept), the access log's last line
of a worker that ends, and the metrics of one process."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from thingstash.web import accesslog

pytestmark = pytest.mark.cluster


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

"""The fast path (web/fastpath.py) answers plain requests exactly as the app does, and leaves
every other request to the app."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core import keys
from thingstash.web.fastpath import EXTENSION

# Values that differ between two answers to the same request by design.
_VARYING = {"ETag", "Last-Modified", "X-Request-ID"}


def _answer(client: FlaskClient, method: str, path: str, **kwargs: Any) -> tuple[Any, ...]:
    response = client.open(path, method=method, **kwargs)
    headers = [(k, "*" if k in _VARYING else v) for k, v in response.headers]
    body = response.get_json(silent=True) if response.data else None
    if isinstance(body, dict):
        body.pop("last_updated", None)
    return response.status, headers, body, len(response.data)


def _counting_app_calls(app: Flask) -> list[str]:
    """The paths of the requests the fast path hands to the Flask app."""
    fast = app.extensions[EXTENSION]
    handed: list[str] = []
    inner = fast.app

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handed.append(environ["REQUEST_METHOD"] + " " + environ["PATH_INFO"])
        return inner(environ, start_response)

    fast.app = counted
    return handed


PLAIN = [
    ("PUT", "/hot/a", {"json": {"v": 1, "ttl": 50}}),
    ("PUT", "/hot/a", {"json": {"v": 2, "s": "é\u2028", "n": None, "l": [1.5, {"x": True}]}}),
    ("GET", "/hot/a", {}),
    ("HEAD", "/hot/a", {}),
    ("GET", "/hot/missing", {}),
    ("HEAD", "/hot/missing", {}),
    ("PUT", "/hot/b", {"data": b"{}", "content_type": "application/json"}),
    ("GET", "/hot/b", {}),
    ("PATCH", "/hot/a", {"json": {"v": 3, "s": None, "ttl": 60}}),
    ("PATCH", "/hot/a", {"data": b'{"l":{"x":1}}', "content_type": "application/merge-patch+json"}),
    ("PATCH", "/hot/a", {"json": {"n": {".sv": {"increment": 2}}}}),
    ("PATCH", "/hot/a", {"json": {"n": {".sv": {"increment": 2.5}}}}),
    ("GET", "/hot/a", {}),
    ("PATCH", "/hot/missing", {"json": {"v": 1}}),
    ("PATCH", "/hot/a", {"json": {"v": {".sv": {"increment": 1}}}}),
]


def test_plain_requests_are_answered_without_the_app_exactly_as_it_would(
    make_app: Callable[..., Flask],
) -> None:
    # Two stores side by side in one Redis, one answered each way.
    fast_app, slow_app = make_app(key_prefix="fast"), make_app(key_prefix="slow")
    slow_app.extensions[EXTENSION].on = False
    handed = _counting_app_calls(fast_app)
    fast, slow = fast_app.test_client(), slow_app.test_client()
    for method, path, kwargs in PLAIN:
        assert _answer(fast, method, path, **kwargs) == _answer(slow, method, path, **kwargs), (
            method,
            path,
        )
    assert handed == []  # every one of them was answered by the fast path


NOT_PLAIN = [
    ("GET", "/hot/a?x=1", {}),
    ("GET", "/hot/a", {"headers": {"Origin": "http://localhost:3000"}}),
    ("GET", "/hot/a", {"headers": {"If-None-Match": '"x"'}}),
    ("GET", "/hot/a", {"headers": {"Authorization": "Bearer nope"}}),
    ("GET", "/hot/?order_by=v", {}),
    ("GET", "/hot/?limit=2&limit=3", {}),
    ("GET", "/hot/?limit=0", {}),
    ("GET", "/hot/?limit=%31", {}),
    ("GET", "/hot/?values=yes", {}),
    ("GET", "/hot/?cursor=%%%", {}),
    ("GET", "/hot/?other=1", {}),
    ("GET", "/hot/", {"headers": {"Origin": "http://localhost:3000"}}),
    ("GET", "/_indexes/", {}),
    ("PUT", "/hot/", {"json": {"v": 1}}),
    ("GET", "/_health", {}),
    ("GET", "/hot//a", {}),
    ("GET", "/hot/caf%C3%A9", {}),
    ("PUT", "/hot/a", {"data": b"[1]", "content_type": "application/json"}),
    ("PUT", "/hot/a", {"data": b"{}", "content_type": "application/json; charset=utf-8"}),
    ("PUT", "/hot/a", {"json": {"t": {".sv": "timestamp"}}}),
    ("PUT", "/hot/a", {"json": {"ttl": -1}}),
    ("PATCH", "/hot/a", {"json": {"v": 3}, "headers": {"If-Match": "*"}}),
    ("PATCH", "/hot/a", {"data": b"{}", "content_type": "text/plain"}),
    ("PATCH", "/hot/a", {"json": {"ttl": "x"}}),
    ("DELETE", "/hot/b", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), NOT_PLAIN)
def test_other_requests_go_to_the_app(
    make_app: Callable[..., Flask], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    app = make_app()
    client = app.test_client()
    assert client.put("/hot/a", json={"v": 1}).status_code == 201
    assert client.put("/hot/b", json={"v": 1}).status_code == 201
    handed = _counting_app_calls(app)
    client.open(path, method=method, **kwargs)
    assert len(handed) == 1, handed


def test_a_closed_store_or_a_rate_limit_leaves_requests_to_the_app(
    make_app: Callable[..., Flask],
) -> None:
    limited = make_app(rate_limit="1000/minute")
    assert limited.extensions["thingstash.fastpath"].on is False
    app = make_app()
    client = app.test_client()
    keys.create_key(app.extensions["thingstash.store"], "admin")
    app.extensions["thingstash.keys"].forget()  # this process knows at once
    handed = _counting_app_calls(app)
    assert client.get("/hot/a").status_code == 401
    assert client.put("/hot/a", json={}).status_code == 401
    assert len(handed) == 2


LISTINGS = [
    "/hot/",
    "/",
    "/hot/?limit=1",
    "/hot/?limit=0002&values=true",
    "/hot/?values=false",
    "/hot/?cursor=YQ&values=true",  # after "a"
    "/hot/?cursor=&limit=1000",
    "/hot/deeper/",
    "/nothing/",
]


def _listing(client: FlaskClient, method: str, path: str) -> tuple[Any, ...]:
    """The answer, its lifetimes masked (a second may pass between two reads)."""
    response = client.open(path, method=method)
    body = re.sub(rb'"(ttl|last_updated)":[0-9]+', rb'"\1":0', response.data)
    headers = [(k, "*" if k in {"Content-Length", *_VARYING} else v) for k, v in response.headers]
    return response.status, headers, body


def test_listings_are_answered_without_the_app_exactly_as_it_would(
    make_app: Callable[..., Flask],
) -> None:
    # Two apps on the same store: one answers listings itself, the other leaves them to Flask.
    fast_app, slow_app = make_app(), make_app()
    slow_app.extensions[EXTENSION].on = False
    fast, slow = fast_app.test_client(), slow_app.test_client()
    for path in ["hot/a", "hot/b", "hot/c", "hot/deeper/x", 'hot/"quoted"', "top"]:
        assert fast.put("/" + path, json={"v": path, "big": 2**70}).status_code == 201
    handed = _counting_app_calls(fast_app)
    for path in LISTINGS:
        for method in ("GET", "HEAD"):
            assert _listing(fast, method, path) == _listing(slow, method, path), (method, path)
    assert handed == []
    # The bodies are the same bytes, but for the lifetimes.
    response = fast.get("/hot/?values=true")
    assert b'"value":{"v":"hot/a","big":1180591620717411303424}' in response.data
    assert response.headers["Last-Event-ID"] == slow.get("/hot/").headers["Last-Event-ID"]

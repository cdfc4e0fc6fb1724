"""CORS on the native face: preflights, the headers exposed to scripts, answers to requests
without an Origin, and a configured list of origins. Against real Redis servers."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.cluster


def test_cors_preflight_and_exposed_headers(client: FlaskClient) -> None:
    # An open store allows loopback origins only (see test_open_store_and_revocation for others).
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

"""Server values in PUT and PATCH bodies, in Firebase's convention."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.cluster

TIMESTAMP = {".sv": "timestamp"}


def inc(n: float) -> dict:
    return {".sv": {"increment": n}}


def test_timestamp_is_the_server_time_in_ms(client: FlaskClient) -> None:
    before = time.time_ns() // 1_000_000
    body = client.put("/t", json={"at": TIMESTAMP, "deep": {"at": TIMESTAMP}}).get_json()
    after = time.time_ns() // 1_000_000
    assert before <= body["at"] <= after
    assert isinstance(body["at"], int)
    assert body["deep"]["at"] == body["at"]
    assert client.get("/t").get_json()["at"] == body["at"]


def test_increment_on_put_adds_to_what_is_stored(client: FlaskClient) -> None:
    assert client.put("/n", json={"count": inc(5)}).get_json()["count"] == 5  # absent: 0
    assert client.put("/n", json={"count": inc(2)}).get_json()["count"] == 7
    assert client.put("/n", json={"count": inc(-10)}).get_json()["count"] == -3


def test_increment_on_patch_and_nested_places(client: FlaskClient) -> None:
    client.put("/n", json={"a": {"b": 1}, "keep": "me"})
    body = client.patch("/n", json={"a": {"b": inc(2), "c": inc(1)}}).get_json()
    assert body["a"] == {"b": 3, "c": 1}
    assert body["keep"] == "me"


def test_float_increments(client: FlaskClient) -> None:
    client.put("/f", json={"x": 1})
    assert client.patch("/f", json={"x": inc(0.5)}).get_json()["x"] == 1.5
    client.put("/f", json={"x": 2.5})
    result = client.patch("/f", json={"x": inc(1)}).get_json()["x"]
    assert result == 3.5
    assert isinstance(result, float)


def test_int_increments_stay_ints(client: FlaskClient) -> None:
    client.put("/i", json={"x": 10})
    result = client.patch("/i", json={"x": inc(1)}).get_json()["x"]
    assert result == 11
    assert isinstance(result, int)


def test_an_increment_past_the_largest_float_is_409_not_null(client: FlaskClient) -> None:
    client.put("/big", json={"x": 1e308})
    response = client.patch("/big", json={"x": inc(1e308)})
    assert response.status_code == 409
    assert "too large" in response.get_json()["detail"]
    assert client.get("/big").get_json()["x"] == 1e308


def test_null_counts_as_zero(client: FlaskClient) -> None:
    client.put("/z", json={"x": None})
    assert client.patch("/z", json={"x": inc(3)}).get_json()["x"] == 3


def test_incrementing_a_non_number_is_409_and_nothing_is_written(client: FlaskClient) -> None:
    client.put("/s", json={"x": "text", "y": 1})
    response = client.patch("/s", json={"x": inc(1), "y": 5})
    assert response.status_code == 409
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "not a number" in response.get_json()["detail"]
    assert client.get("/s").get_json() == {
        "x": "text",
        "y": 1,
        "ttl": client.get("/s").get_json()["ttl"],
        "last_updated": client.get("/s").get_json()["last_updated"],
    }


@pytest.mark.parametrize(
    "value",
    [
        {".sv": "now"},
        {".sv": {"increment": "1"}},
        {".sv": {"increment": True}},
        {".sv": {"increment": None}},
        {".sv": {"decrement": 1}},
        {".sv": {"increment": 1, "by": 2}},
        {".sv": "timestamp", "other": 1},
        {".sv": ["timestamp"]},
        {".sv": None},
    ],
)
def test_any_other_sv_form_is_400(client: FlaskClient, value: dict) -> None:
    for method in ("PUT", "PATCH"):
        client.put("/v", json={"x": 1})
        response = client.open("/v", method=method, json={"x": value})
        assert response.status_code == 400, (method, value)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert client.get("/v").get_json()["x"] == 1


@pytest.mark.parametrize("whole", [TIMESTAMP, inc(1)])
def test_a_body_that_is_one_server_value_is_422_and_nothing_is_stored(
    client: FlaskClient, whole: dict
) -> None:
    # Resolved, such a body would be a bare number: not a thing (every later read would break).
    client.put("/kept", json={"x": 1})
    for method, path in (("PUT", "/sv"), ("PUT", "/kept"), ("PATCH", "/kept"), ("POST", "/box/")):
        response = client.open(path, method=method, json=whole)
        assert response.status_code == 422, (method, response.data)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert "object" in response.get_json()["detail"]
    assert client.get("/sv").status_code == 404
    assert client.get("/kept").get_json()["x"] == 1
    assert client.get("/box/").get_json()["things"] == []
    line = b'{"path": "imported", "thing": {".sv": "timestamp"}}'
    response = client.post("/_import", data=line, content_type="application/jsonl")
    assert response.status_code == 400, response.data
    assert "line 1" in response.get_json()["detail"]
    assert client.get("/imported").status_code == 404


def test_an_increment_cannot_grow_a_thing_past_the_size_limit(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(max_body=100).test_client()
    pad = "x" * (100 - len('{"pad":"","n":1}'))
    compact = f'{{"pad":"{pad}","n":1}}'  # exactly the limit, as sent and as stored
    assert client.put("/full", data=compact, content_type="application/json").status_code == 201
    # A 30-byte body whose result is 9 bytes longer than what is stored: over the limit.
    response = client.patch("/full", json={"n": inc(10**9)})
    assert response.status_code == 413
    assert "the thing would be 109 bytes, over the limit of 100" in response.json["detail"]
    assert client.get("/full").json["n"] == 1
    response = client.put("/full", json={"pad": pad, "n": inc(10**9)})
    assert response.status_code == 413
    assert client.get("/full").json["n"] == 1

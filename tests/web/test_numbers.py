"""Numbers at their edges: huge query integers, huge JSON integers, increments mixing huge ints
and floats. Each is a clear 4xx problem in the user's words, never a 500 or a Python message."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from thingstash.core.config import MAX_INT_DIGITS

from .test_errors import assert_problem

HUGE = "9" * 5000


@pytest.mark.parametrize(
    "url, name",
    [
        (f"/x?ttl={HUGE}", "ttl"),
        (f"/x?ttl=0000000000{HUGE}", "ttl"),
        (f"/?limit={HUGE}", "limit"),
        ("/?limit=1" + "0" * 4999, "limit"),
    ],
)
def test_a_query_number_of_5000_digits_is_400(client: FlaskClient, url: str, name: str) -> None:
    if url.startswith("/x"):
        body = assert_problem(client.put(url, json={"v": 1}), 400, name)
        assert client.get("/x").status_code == 404
    else:
        body = assert_problem(client.get(url), 400, name)
    assert "sys." not in body["detail"] and len(body["detail"]) < 200


def test_a_body_ttl_of_4000_digits_is_400_with_a_short_detail(client: FlaskClient) -> None:
    raw = '{"ttl":' + "9" * 4000 + "}"
    body = assert_problem(client.put("/x", data=raw, content_type="application/json"), 400, "ttl")
    assert len(body["detail"]) < 200
    assert client.get("/x").status_code == 404


def test_leading_zeros_are_still_a_number(client: FlaskClient) -> None:
    assert client.put("/x?ttl=0060", json={}).get_json()["ttl"] == 60
    assert client.get("/?limit=0005").status_code == 200


def test_integers_up_to_the_digit_limit_are_kept_exactly(client: FlaskClient) -> None:
    longest = "-" + "7" * MAX_INT_DIGITS
    response = client.put("/big", data='{"n":' + longest + "}", content_type="application/json")
    assert response.status_code == 201, response.data
    assert client.get("/big").data.startswith(b'{"n":' + longest.encode() + b",")


def test_a_longer_integer_is_400_saying_the_limit(client: FlaskClient) -> None:
    raw = '{"n":' + "7" * (MAX_INT_DIGITS + 1) + "}"
    body = assert_problem(client.put("/big", data=raw, content_type="application/json"), 400)
    assert f"{MAX_INT_DIGITS:,} digits" in body["detail"]
    assert "sys" not in body["detail"] and "set_int_max_str_digits" not in body["detail"]
    assert client.get("/big").status_code == 404
    line = '{"path": "big", "thing": {"n": ' + "7" * (MAX_INT_DIGITS + 1) + "}}"
    response = client.post("/_import", data=line, content_type="application/jsonl")
    assert_problem(response, 400, "digits")


def test_an_increment_that_would_pass_the_digit_limit_is_409(client: FlaskClient) -> None:
    nines = "9" * MAX_INT_DIGITS
    client.put("/n", data='{"n":' + nines + "}", content_type="application/json")
    response = client.patch("/n", json={"n": {".sv": {"increment": 1}}})
    assert_problem(response, 409, "digits")
    assert client.get("/n").data.startswith(b'{"n":' + nines.encode() + b",")


@pytest.mark.parametrize(
    "stored, step",
    [
        ("1" + "0" * 400, "1.5"),  # a float onto a 401-digit int
        ("1.5", "1" + "0" * 400),  # a 401-digit int onto a float
        ("-" + "1" + "0" * 400, "0.5"),
    ],
)
def test_an_increment_mixing_a_huge_int_and_a_float_is_409(
    client: FlaskClient, stored: str, step: str
) -> None:
    client.put("/n", data='{"n":' + stored + "}", content_type="application/json")
    for method in ("PATCH", "PUT"):
        response = client.open(
            "/n",
            method=method,
            data='{"n":{".sv":{"increment":' + step + "}}}",
            content_type="application/json",
        )
        body = assert_problem(response, 409, "too large")
        assert "Error" not in body["detail"]
    assert client.get("/n").data.startswith(b'{"n":' + stored.encode() + b",")


def test_details_are_in_json_words_not_python_reprs(client: FlaskClient) -> None:
    body = assert_problem(client.put("/x", json={"ttl": "60"}), 400, "ttl")
    assert 'not "60"' in body["detail"] and "b'" not in body["detail"]
    client.put("/o", json={"n": {"deep": 1}, "l": [1]})
    body = assert_problem(client.patch("/o", json={"n": {".sv": {"increment": 1}}}), 409)
    assert "an object" in body["detail"] and "dict" not in body["detail"]
    body = assert_problem(client.patch("/o", json={"l": {".sv": {"increment": 1}}}), 409)
    assert "an array" in body["detail"]
    body = assert_problem(client.put("/x?ttl=abc", json={}), 400, "ttl")
    assert "'abc'" not in body["detail"]
    surrogate = b'{"a":"\\ud800","n":123456789012345678901234567890}'
    body = assert_problem(client.put("/x", data=surrogate, content_type="application/json"), 400)
    assert "surrogate" in body["detail"] and "codec" not in body["detail"]

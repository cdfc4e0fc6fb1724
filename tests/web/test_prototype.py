"""The original prototype's own test suite, which must keep passing against thingstash."""

from __future__ import annotations

from flask.testing import FlaskClient


def test_put_answers_201_with_value_last_updated_and_one_year_ttl(client: FlaskClient) -> None:
    response = client.put("/mysensor", json={"value": 123})
    assert response.status_code == 201
    body = response.get_json()
    assert body["value"] == 123
    assert isinstance(body["last_updated"], int)
    assert body["ttl"] == 31104000


def test_invalid_json_answers_400(client: FlaskClient) -> None:
    response = client.put("/mysensor", data="{not json", content_type="application/json")
    assert response.status_code == 400


def test_get_answers_200_with_the_same_fields(client: FlaskClient) -> None:
    written = client.put("/mysensor", json={"value": 123}).get_json()
    response = client.get("/mysensor")
    assert response.status_code == 200
    body = response.get_json()
    assert body["value"] == 123
    assert body["last_updated"] == written["last_updated"]
    assert 0 < body["ttl"] <= 31104000

"""Conditional requests (RFC 9110): If-Match and If-None-Match in every form, on every verb."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.cluster


@pytest.fixture
def etag(client: FlaskClient) -> str:
    return client.put("/c", json={"v": 1}).headers["ETag"]


def test_get_with_a_matching_if_none_match_is_304(client: FlaskClient, etag: str) -> None:
    response = client.get("/c", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert client.head("/c", headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize(
    "header",
    ["{etag}", "W/{etag}", '"other", {etag}', '"a","b" ,  W/{etag}', "*"],
)
def test_if_none_match_forms_that_match(client: FlaskClient, etag: str, header: str) -> None:
    value = header.format(etag=etag)
    assert client.get("/c", headers={"If-None-Match": value}).status_code == 304


def test_if_none_match_that_does_not_match_is_200(client: FlaskClient, etag: str) -> None:
    response = client.get("/c", headers={"If-None-Match": '"nope", W/"nada"'})
    assert response.status_code == 200
    assert response.get_json()["v"] == 1


def test_put_with_if_match(client: FlaskClient, etag: str) -> None:
    stale = client.put("/c", json={"v": 2}, headers={"If-Match": '"stale-tag-12345"'})
    assert stale.status_code == 412
    assert stale.headers["ETag"] == etag  # the current tag, to retry with
    assert stale.headers["Content-Type"] == "application/problem+json"
    assert client.get("/c").get_json()["v"] == 1
    fresh = client.put("/c", json={"v": 3}, headers={"If-Match": etag})
    assert fresh.status_code == 200
    assert client.put("/c", json={"v": 4}, headers={"If-Match": etag}).status_code == 412


@pytest.mark.parametrize("header", ['"x", {etag}', "*", " {etag} "])
def test_if_match_lists_and_star(client: FlaskClient, etag: str, header: str) -> None:
    response = client.put("/c", json={"v": 2}, headers={"If-Match": header.format(etag=etag)})
    assert response.status_code == 200


def test_if_match_compares_strongly(client: FlaskClient, etag: str) -> None:
    response = client.put("/c", json={"v": 2}, headers={"If-Match": f"W/{etag}"})
    assert response.status_code == 412
    assert client.get("/c").get_json()["v"] == 1


def test_if_match_on_a_missing_thing_is_412(client: FlaskClient) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        response = client.open("/none", method=method, json={}, headers={"If-Match": "*"})
        assert response.status_code == 412, method
    assert client.get("/none").status_code == 404


def test_if_none_match_star_creates_only(client: FlaskClient) -> None:
    first = client.put("/new", json={"v": 1}, headers={"If-None-Match": "*"})
    assert first.status_code == 201
    second = client.put("/new", json={"v": 2}, headers={"If-None-Match": "*"})
    assert second.status_code == 412
    assert second.headers["ETag"] == first.headers["ETag"]
    assert client.get("/new").get_json()["v"] == 1


def test_put_with_if_none_match_of_the_current_tag_is_412(client: FlaskClient, etag: str) -> None:
    assert client.put("/c", json={}, headers={"If-None-Match": etag}).status_code == 412


def test_patch_with_if_match(client: FlaskClient, etag: str) -> None:
    assert client.patch("/c", json={"w": 1}, headers={"If-Match": '"old"'}).status_code == 412
    patched = client.patch("/c", json={"w": 1}, headers={"If-Match": etag})
    assert patched.status_code == 200
    assert patched.get_json()["w"] == 1


def test_delete_with_if_match(client: FlaskClient, etag: str) -> None:
    assert client.delete("/c", headers={"If-Match": '"old"'}).status_code == 412
    assert client.get("/c").status_code == 200
    assert client.delete("/c", headers={"If-Match": etag}).status_code == 204


def test_the_etag_changes_even_when_the_content_does_not(client: FlaskClient, etag: str) -> None:
    again = client.put("/c", json={"v": 1})
    assert again.headers["ETag"] != etag
    assert client.put("/c", json={"v": 1}, headers={"If-Match": etag}).status_code == 412


def test_a_tag_from_before_a_delete_never_matches_the_new_thing(
    client: FlaskClient, etag: str
) -> None:
    client.delete("/c")
    client.put("/c", json={"v": 1})
    assert client.put("/c", json={}, headers={"If-Match": etag}).status_code == 412


@pytest.mark.parametrize("header", ["abc", '"unterminated', "W/abc", '"a" "b"', '"a",,x', "", " "])
def test_a_malformed_if_match_is_400_and_nothing_is_written(
    client: FlaskClient, etag: str, header: str
) -> None:
    response = client.put("/c", json={"v": 9}, headers={"If-Match": header})
    assert response.status_code == 400
    assert "If-Match" in response.get_json()["detail"]
    assert client.get("/c").get_json()["v"] == 1


def test_a_malformed_if_none_match_is_400(client: FlaskClient, etag: str) -> None:
    assert client.get("/c", headers={"If-None-Match": "nope"}).status_code == 400


def test_if_modified_since_on_get_and_head(client: FlaskClient, etag: str) -> None:
    last_modified = client.get("/c").headers["Last-Modified"]
    for method in ("GET", "HEAD"):
        same = client.open("/c", method=method, headers={"If-Modified-Since": last_modified})
        assert same.status_code == 304, method
        assert same.data == b""
        assert same.headers["ETag"] == etag  # (Last-Modified may go: RFC 9110 15.4.5)
    later = client.get("/c", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert later.status_code == 304
    earlier = client.get("/c", headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert earlier.status_code == 200 and earlier.get_json()["v"] == 1
    # A date that is not an HTTP date is ignored (RFC 9110 13.1.3).
    for not_a_date in ("yesterday", "Mon, 01 Jan 99999999999999999999999 00:00:00 GMT"):
        assert client.get("/c", headers={"If-Modified-Since": not_a_date}).status_code == 200
    assert client.get("/missing", headers={"If-Modified-Since": last_modified}).status_code == 404


def test_if_none_match_takes_precedence_over_if_modified_since(
    client: FlaskClient, etag: str
) -> None:
    last_modified = client.get("/c").headers["Last-Modified"]
    other = {"If-None-Match": '"other"', "If-Modified-Since": last_modified}
    assert client.get("/c", headers=other).status_code == 200
    matching = {"If-None-Match": etag, "If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
    assert client.get("/c", headers=matching).status_code == 304


def test_if_modified_since_does_not_touch_writes(client: FlaskClient, etag: str) -> None:
    last_modified = client.get("/c").headers["Last-Modified"]
    response = client.put("/c", json={"v": 2}, headers={"If-Modified-Since": last_modified})
    assert response.status_code == 200 and response.get_json()["v"] == 2

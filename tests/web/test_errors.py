"""Every error row of API.md: a clear 4xx problem+json, nothing stored, never a 500."""

from __future__ import annotations

from unittest import mock

import pytest
import redis
import requests
from flask.testing import FlaskClient

from ..support.servers import Served

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.data
    assert response.headers["Content-Type"] == PROBLEM
    body = response.get_json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status
    for word in words:
        assert word in body["detail"].lower() or word in body["title"].lower(), body
    return body


def put_raw(client: FlaskClient, path: str, raw: bytes | str, content_type: str | None = None):
    return client.put(path, data=raw, content_type=content_type or "application/json")


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"   ",
        b'{"a":1,}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":1e400}',
        b'{"a":1e400,"b":123456789012345678901234567890}',
        b'{"a":"\\ud800"}',
        b'{"a":"\\ud800","b":123456789012345678901234567890}',
        b'{"a":"\xff"}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_bad_json_is_400_and_nothing_is_stored(client: FlaskClient, raw: bytes) -> None:
    assert_problem(put_raw(client, "/x", raw), 400)
    assert client.get("/x").status_code == 404


@pytest.mark.parametrize("raw", [b"[1,2]", b'"text"', b"42", b"null", b"true"])
def test_a_body_that_is_not_an_object_is_422(client: FlaskClient, raw: bytes) -> None:
    assert_problem(put_raw(client, "/x", raw), 422, "object")
    assert client.get("/x").status_code == 404


def test_another_content_type_is_415_and_says_what_to_send(client: FlaskClient) -> None:
    body = assert_problem(put_raw(client, "/x", b"{}", "text/plain"), 415)
    assert "application/json" in body["detail"]


def test_no_content_type_is_taken_as_json(client: FlaskClient) -> None:
    response = client.put("/x", data=b'{"v":1}')
    assert response.status_code == 201


def test_json_with_a_charset_is_fine(client: FlaskClient) -> None:
    assert put_raw(client, "/x", b"{}", "application/json; charset=utf-8").status_code == 201


def test_a_body_over_the_limit_is_413(client: FlaskClient) -> None:
    big = b'{"a":"' + b"x" * (1024 * 1024) + b'"}'
    assert_problem(put_raw(client, "/x", big), 413)
    assert client.get("/x").status_code == 404


def test_a_413_from_the_real_server_arrives_whole(served: Served) -> None:
    big = b'{"a":"' + b"x" * (3 * 1024 * 1024) + b'"}'
    response = requests.put(
        f"{served.url}/big", data=big, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413


def nested(levels: int) -> bytes:
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def test_nesting_counts_the_thing_as_level_one(client: FlaskClient) -> None:
    assert put_raw(client, "/x", nested(64)).status_code == 201
    assert_problem(put_raw(client, "/y", nested(65)), 400, "nest")
    assert_problem(put_raw(client, "/y", b'{"a":' + b"[" * 64 + b"]" * 64 + b"}"), 400, "nest")


def test_absurd_nesting_is_400_not_a_crash(client: FlaskClient) -> None:
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_problem(put_raw(client, "/x", deep), 400)
    deep_big = b'{"n":123456789012345678901234567890,"a":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert_problem(put_raw(client, "/x", deep_big), 400)


def test_path_limit_is_1024_bytes(client: FlaskClient) -> None:
    assert client.put("/" + "a" * 1024, json={}).status_code == 201
    assert_problem(client.put("/" + "a" * 1025, json={}), 400, "1024")
    assert_problem(client.put("/" + "é" * 513, json={}), 400, "1024")  # 1026 bytes


@pytest.mark.parametrize(
    "path, word",
    [
        ("/a//b", "empty"),
        ("/a/./b", "'.'"),
        ("/a/../b", "'..'"),
        ("/%2E%2E/b", "'..'"),
        ("/a/%0Ab", "control"),
        ("/a%7Fb", "control"),
        ("/tab%09", "control"),
    ],
)
def test_refused_paths_are_400(client: FlaskClient, path: str, word: str) -> None:
    assert_problem(client.put(path, json={}), 400, word)
    assert_problem(client.get(path), 400, word)


@pytest.mark.parametrize(
    "query, body",
    [
        ("?ttl=0", {}),
        ("?ttl=-5", {}),
        ("?ttl=abc", {}),
        ("?ttl=1.5", {}),
        ("?ttl=", {}),
        ("?ttl=%D9%A1", {}),
        ("?ttl=311040001", {}),
        ("", {"ttl": 0}),
        ("", {"ttl": 1.5}),
        ("", {"ttl": "60"}),
        ("", {"ttl": True}),
        ("", {"ttl": 311040001}),
        ("?ttl=60", {"ttl": 61}),
    ],
)
def test_bad_ttl_is_400(client: FlaskClient, query: str, body: dict) -> None:
    assert_problem(client.put("/x" + query, json=body), 400, "ttl")
    assert client.get("/x").status_code == 404


def test_max_ttl_is_accepted(client: FlaskClient) -> None:
    assert client.put("/x?ttl=311040000", json={}).get_json()["ttl"] == 311040000


def test_an_unsupported_method_is_405_with_allow(client: FlaskClient) -> None:
    response = client.open("/x", method="TRACE")
    assert_problem(response, 405)
    assert "PUT" in response.headers["Allow"]


def test_put_and_patch_on_a_folder_are_405(client: FlaskClient) -> None:
    for method in ("PUT", "PATCH"):
        response = client.open("/box/", method=method, json={})
        assert_problem(response, 405, "folder")
        assert "POST" in response.headers["Allow"]
        assert "PUT" not in response.headers["Allow"]


def test_deleting_a_folder_needs_recursive(client: FlaskClient) -> None:
    client.put("/box/a", json={})
    assert_problem(client.delete("/box/"), 400, "recursive")
    assert client.get("/box/a").status_code == 200


def test_reserved_names(client: FlaskClient) -> None:
    assert_problem(client.get("/_nothing"), 404, "reserved")
    assert_problem(client.put("/_nothing", json={}), 404, "reserved")
    assert_problem(client.put("/_health", json={}), 405)
    assert client.put("/a/_fine", json={}).status_code == 201  # only the top level is reserved


def test_a_missing_thing_is_404_thing_doesnt_exist(client: FlaskClient) -> None:
    body = assert_problem(client.get("/nothing/here"), 404)
    assert body["title"] == "thing doesn't exist"


def test_redis_down_is_503_with_retry_after(client: FlaskClient, app) -> None:
    store = app.extensions["thingstash.store"]
    with mock.patch.object(
        store.client, "execute_command", side_effect=redis.ConnectionError("refused")
    ):
        response = client.get("/x")
        assert_problem(response, 503)
        assert response.headers["Retry-After"]
        assert_problem(client.put("/x", json={}), 503)
        assert client.get("/_health").status_code == 503
    assert client.put("/x", json={}).status_code == 201  # and it recovers by itself


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "flask app"])
def test_a_full_redis_is_507_and_nothing_is_stored(
    make_app, redis_client: redis.Redis, fast: bool
) -> None:
    # Redis past its maxmemory refuses writes ("OOM command not allowed"): an ordinary day for a
    # small server, never a bare 500, on either road a PUT may take.
    app = make_app()
    app.extensions["thingstash.fastpath"].on = fast
    client = app.test_client()
    redis_client.config_set("maxmemory", 1)
    try:
        body = assert_problem(client.put("/full/a", json={"v": 1}), 507, "out of memory")
        assert "nothing was written" in body["detail"]
        assert_problem(client.patch("/full/a", json={"v": 1}), 404)  # reads still answer
    finally:
        redis_client.config_set("maxmemory", 0)
    assert client.get("/full/a").status_code == 404
    assert client.put("/full/a", json={"v": 1}).status_code == 201


@pytest.mark.parametrize("length", ["\u00b2", "1\u00b9", "\u0663"])
def test_a_content_length_of_other_digits_is_400(client: FlaskClient, length: str) -> None:
    # str.isdigit() takes superscripts and Arabic-Indic digits; a Content-Length is ASCII only.
    response = client.put(
        "/cl/a",
        data=b"{}",
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": length},
    )
    assert_problem(response, 400, "content-length")
    assert client.get("/cl/a").status_code == 404


def test_a_folder_named_static_is_a_folder_like_any_other(client: FlaskClient) -> None:
    # Flask's default /static/ route once took GET /static/a: written, listed, never readable.
    assert client.put("/static/a", json={"v": 1}).status_code == 201
    assert client.get("/static/a").get_json()["v"] == 1
    assert [t["path"] for t in client.get("/static/").get_json()["things"]] == ["static/a"]
    assert client.delete("/static/a").status_code == 204

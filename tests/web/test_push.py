"""POST to a folder: things with server-made IDs that sort by creation time."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from thingstash.core.pushids import push_id

pytestmark = pytest.mark.cluster


def test_post_creates_a_thing_with_a_new_id(client: FlaskClient) -> None:
    response = client.post("/messages/", json={"text": "hi"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["text"] == "hi"
    assert body["path"].startswith("messages/")
    assert response.headers["Location"] == "/" + body["path"]
    assert body["ttl"] == 31104000
    stored = client.get(response.headers["Location"])
    assert stored.status_code == 200
    assert stored.get_json()["text"] == "hi"
    assert "path" not in stored.get_json()
    assert stored.headers["ETag"] == response.headers["ETag"]


def test_ids_sort_by_creation(client: FlaskClient) -> None:
    paths = [client.post("/log/", json={"n": n}).get_json()["path"] for n in range(30)]
    assert paths == sorted(paths)
    assert len(set(paths)) == 30
    listed = [t["path"] for t in client.get("/log/").get_json()["things"]]
    assert listed == paths


def test_push_ids_within_one_millisecond_still_sort() -> None:
    ids = [push_id(1_700_000_000_000) for _ in range(500)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 500
    assert push_id(1_700_000_000_001) > ids[-1]


def test_post_at_the_top_level_and_with_ttl(client: FlaskClient) -> None:
    response = client.post("/?ttl=60", json={"a": 1})
    assert response.status_code == 201
    assert "/" not in response.get_json()["path"]
    assert response.get_json()["ttl"] == 60


def test_post_to_a_thing_path_is_405(client: FlaskClient) -> None:
    response = client.post("/not-a-folder", json={})
    assert response.status_code == 405
    assert "PUT" in response.headers["Allow"]


def test_post_with_a_bad_body_stores_nothing(client: FlaskClient) -> None:
    assert client.post("/box/", data=b"[1]", content_type="application/json").status_code == 422
    assert client.get("/box/").get_json()["things"] == []

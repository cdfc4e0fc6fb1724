"""Things through HTTP: create, replace, read, delete, faithful JSON, lifetimes, headers."""

from __future__ import annotations

import json
import time

import pytest
import redis
from flask.testing import FlaskClient
from werkzeug.http import parse_date

from thingstash.core.model import version_time_ms

from ..support.jsoncheck import strictly_equal, without_reserved

pytestmark = pytest.mark.cluster


def put_raw(client: FlaskClient, path: str, raw: bytes | str, **kwargs: object):
    return client.put(path, data=raw, content_type="application/json", **kwargs)


def test_create_is_201_and_replace_is_200(client: FlaskClient) -> None:
    assert client.put("/a", json={"n": 1}).status_code == 201
    replaced = client.put("/a", json={"m": 2})
    assert replaced.status_code == 200
    body = client.get("/a").get_json()
    assert "n" not in body  # replaced whole, not merged
    assert body["m"] == 2


def test_json_comes_back_exactly_as_sent(client: FlaskClient) -> None:
    raw = (
        '{"s":"42","i":42,"neg":-7,"f":1.5,"whole_float":2.0,"exp":1e-7,"t":true,"fa":false,'
        '"nul":null,"big":123456789012345678901234567890,"nbig":-98765432109876543210,'
        '"nested":{"deep":{"list":[1,"two",[3],{"four":4}]}},"empty_obj":{},"empty_list":[],'
        '"uni":"h\u00e9llo \u2603 \U0001f600","z":1,"a":2}'
    )
    assert put_raw(client, "/faithful", raw).status_code == 201
    returned = without_reserved(client.get("/faithful").get_data(as_text=True))
    assert strictly_equal(returned, json.loads(raw))
    assert returned["big"] == 123456789012345678901234567890


def test_key_order_is_kept(client: FlaskClient) -> None:
    put_raw(client, "/order", '{"zebra":1,"apple":2,"mango":3}')
    assert list(client.get("/order").get_json())[:3] == ["zebra", "apple", "mango"]


def test_reserved_fields_are_not_stored_as_user_data(client: FlaskClient) -> None:
    response = client.put("/r", json={"v": 1, "ttl": 60, "last_updated": 5})
    body = response.get_json()
    assert body["ttl"] == 60
    assert body["last_updated"] != 5
    assert list(body) == ["v", "ttl", "last_updated"]


def test_ttl_from_query_and_null_means_default(client: FlaskClient) -> None:
    assert client.put("/q?ttl=100", json={}).get_json()["ttl"] == 100
    assert client.put("/q", json={"ttl": None}).get_json()["ttl"] == 31104000
    assert client.put("/q?ttl=50", json={"ttl": 50}).get_json()["ttl"] == 50


def test_every_write_gives_a_fresh_lifetime(client: FlaskClient) -> None:
    client.put("/life", json={"ttl": 100})
    assert client.put("/life", json={}).get_json()["ttl"] == 31104000
    assert 31103990 < client.get("/life").get_json()["ttl"] <= 31104000


def test_a_thing_expires(client: FlaskClient) -> None:
    client.put("/short?ttl=1", json={"v": 1})
    assert client.get("/short").status_code == 200
    time.sleep(1.2)
    assert client.get("/short").status_code == 404


def test_head_is_get_without_a_body(client: FlaskClient) -> None:
    client.put("/h", json={"v": 1})
    response = client.head("/h")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["ETag"] == client.get("/h").headers["ETag"]
    assert client.head("/missing").status_code == 404


def test_delete(client: FlaskClient) -> None:
    client.put("/d", json={"v": 1})
    assert client.delete("/d").status_code == 204
    assert client.get("/d").status_code == 404
    missing = client.delete("/d")
    assert missing.status_code == 404
    assert missing.get_json()["title"] == "thing doesn't exist"


def test_etag_and_last_modified(client: FlaskClient) -> None:
    first = client.put("/e", json={"v": 1})
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert client.get("/e").headers["ETag"] == etag
    last_modified = parse_date(first.headers["Last-Modified"])
    assert last_modified is not None
    assert int(last_modified.timestamp()) == first.get_json()["last_updated"]
    again = client.put("/e", json={"v": 1})  # same content, new write: new tag
    assert again.headers["ETag"] != etag


def test_version_time_is_the_write_time() -> None:
    from thingstash.core.model import new_version

    assert version_time_ms(new_version(1_700_000_000_123)) == 1_700_000_000_123


def test_paths_are_case_sensitive_and_unicode(client: FlaskClient) -> None:
    client.put("/Caps", json={"v": 1})
    assert client.get("/caps").status_code == 404
    assert client.put("/caf%C3%A9/m%E2%98%83", json={"v": 2}).status_code == 201
    assert client.get("/café/m☃").get_json()["v"] == 2


def test_a_path_may_hold_braces_and_colons(client: FlaskClient) -> None:
    for path in ["/a{b}c", "/x}y{z", "/t:1"]:
        assert client.put(path, json={"p": path}).status_code == 201
        assert client.get(path).get_json()["p"] == path


def test_readers_never_see_a_thing_missing_while_it_is_replaced(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    # The write is a single SET inside one script: there is no moment without the key.
    client.put("/steady", json={"v": 0})
    for i in range(50):
        client.put("/steady", json={"v": i})
        assert client.get("/steady").status_code == 200


def test_top_level_listing_is_useful(client: FlaskClient) -> None:
    client.put("/one", json={})
    client.put("/box/two", json={})
    listing = client.get("/").get_json()
    assert [t["path"] for t in listing["things"]] == ["one"]
    assert listing["folders"] == ["box/"]


def test_health(client: FlaskClient) -> None:
    response = client.get("/_health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"

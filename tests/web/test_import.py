"""POST /_import (JSON Lines, the export's format) and Store.put_many, against a real Redis and,
through its `cluster` mark, a real Redis Cluster: lines stored as PUTs store them, a bad line or a
path the key may not write stores nothing, the body limit holds."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core import keys
from thingstash.core.store import Store
from thingstash.web import auth
from thingstash.web.context import store as current_store

from .test_watch import watching

pytestmark = pytest.mark.cluster

JSONL = "application/jsonl"


def lines(*records: dict) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in records)


def post(client: FlaskClient, body: bytes, content_type: str | None = JSONL, **kwargs):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post("/_import", data=body, headers={**headers, **kwargs.pop("headers", {})})


def stored_paths(client: FlaskClient) -> list[str]:
    """Every thing's path, walking the listings from the top."""
    found, folders = [], [""]
    while folders:
        page = client.get("/" + folders.pop() + "?limit=1000").get_json()
        found += [t["path"] for t in page["things"]]
        folders += page["folders"]
    return sorted(found)


def test_import_stores_each_line_as_a_put_would(client: FlaskClient) -> None:
    position = client.get("/").headers["Last-Event-ID"]
    things = {
        "imp/types": {"s": "42", "i": 42, "f": 1.5, "b": False, "n": None, "u": "\u00e9t\u00e9"},
        "imp/deep/nested": {"a": {"b": [1, {"c": []}]}, "e": {}},
        "imp/no-ttl": {},
    }
    body = (
        b'{"path": "imp/types", "thing": %s, "ttl": 100}\n'
        b'{"path": "imp/big", "thing": {"big": 123456789012345678901234567890}, "ttl": 200}\n'
        b"\n"  # blank lines are skipped
        b'{"path": "imp/deep/nested", "thing": %s, "ttl": 300}\n'
        b'{"path": "imp/no-ttl", "thing": {"ttl": 400, "last_updated": 5}}\n'
    ) % (orjson.dumps(things["imp/types"]), orjson.dumps(things["imp/deep/nested"]))
    response = post(client, body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"imported": 4, "created": 4}

    for path, thing in things.items():
        got = client.get("/" + path).get_json()
        assert {k: v for k, v in got.items() if k not in ("ttl", "last_updated")} == thing
    assert b'"big":123456789012345678901234567890,' in client.get("/imp/big").data
    assert 99 <= client.get("/imp/types").get_json()["ttl"] <= 100
    assert 299 <= client.get("/imp/deep/nested").get_json()["ttl"] <= 300
    assert 399 <= client.get("/imp/no-ttl").get_json()["ttl"] <= 400  # the thing's own ttl
    assert stored_paths(client) == sorted([*things, "imp/big"])
    assert client.get("/imp/").get_json()["folders"] == ["imp/deep/"]

    # Watchers see a put event per line, carrying the thing.
    with watching(client, "imp/", last_event_id=position) as stream:
        events = [stream.event() for _ in range(4)]
    assert [(e.kind, e.data["path"]) for e in events] == [
        ("put", "imp/types"),
        ("put", "imp/big"),
        ("put", "imp/deep/nested"),
        ("put", "imp/no-ttl"),
    ]
    assert events[0].data["thing"]["s"] == "42"

    # Importing again replaces (idempotent): nothing new.
    assert post(client, body).get_json() == {"imported": 4, "created": 0}


def test_a_bad_line_in_the_middle_stores_nothing(client: FlaskClient) -> None:
    position = client.get("/").headers["Last-Event-ID"]
    body = lines(
        {"path": "a/1", "thing": {}},
        {"path": "a/2", "thing": {}},
        {"path": "a/3", "thing": "not an object"},
        {"path": "a/4", "thing": {}},
    )
    response = post(client, body)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"].startswith("line 3: ")
    assert "JSON object" in response.get_json()["detail"]
    assert stored_paths(client) == []
    assert client.get("/").headers["Last-Event-ID"] == position  # no event either


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"{not json", "it is not valid JSON"),
        (b"[1, 2]", "expected an object"),
        (b'{"path": "x", "thing": {}, "extra": 1}', "unknown field 'extra'"),
        (b'{"thing": {}}', '"path" must be a string'),
        (b'{"path": "a//b", "thing": {}}', "empty segment"),
        (b'{"path": "a/../b", "thing": {}}', "'..' segment"),
        (b'{"path": "a\\u0001b", "thing": {}}', "control character"),
        (b'{"path": "' + b"x" * 1025 + b'", "thing": {}}', "longer than 1024 bytes"),
        (b'{"path": "_health", "thing": {}}', "reserved"),
        (b'{"path": "folder/", "thing": {}}', "is a folder"),
        (b'{"path": "x"}', '"thing" is missing'),
        (b'{"path": "x", "thing": null}', "JSON object, not null"),
        (b'{"path": "x", "thing": {}, "ttl": -5}', "between 1 and"),
        (b'{"path": "x", "thing": {}, "ttl": 311040001}', "between 1 and 311040000"),
        (b'{"path": "x", "thing": {}, "ttl": "60"}', "positive integer"),
        (b'{"path": "x", "thing": {}, "ttl": true}', "positive integer"),
        (b'{"path": "x", "thing": {"ttl": 5}, "ttl": 6}', "disagree"),
        (b'{"path": "x", "thing": {"ttl": -1}}', "between 1 and"),
        (b'{"path": "x", "thing": ' + b'{"a": ' * 65 + b"1" + b"}" * 65 + b"}", "nests 65"),
        (b'{"path": "x", "thing": {"t": {".sv": "yesterday"}}}', "server value"),
        (b'{"path": "x", "thing": {"t": {".sv": "timestamp", "b": 1}}}', "must hold nothing else"),
    ],
)
def test_each_bad_line_is_refused_naming_it(client: FlaskClient, line: bytes, says: str) -> None:
    response = post(client, lines({"path": "good", "thing": {}}) + b"\n" + line)
    assert response.status_code == 400, response.get_json()
    detail = response.get_json()["detail"]
    assert detail.startswith("line 2: ") and says in detail, detail
    assert client.get("/good").status_code == 404


def test_timestamps_are_resolved_and_increments_refused(client: FlaskClient) -> None:
    body = lines({"path": "sv/when", "thing": {"at": {".sv": "timestamp"}}, "ttl": 50})
    response = post(client, body)
    assert response.status_code == 200, response.get_json()
    when = client.get("/sv/when").get_json()
    assert when["at"] > 1_600_000_000_000 and when["ttl"] <= 50

    client.put("/sv/count", json={"n": 10})
    refused = post(
        client,
        lines(
            {"path": "sv/other", "thing": {}},
            {"path": "sv/count", "thing": {"n": {".sv": {"increment": 5}}}},
        ),
    )
    assert refused.status_code == 400
    assert refused.get_json()["detail"].startswith("line 2: an increment can't be imported")
    assert client.get("/sv/other").status_code == 404
    assert client.get("/sv/count").get_json()["n"] == 10


def test_an_exported_ttl_of_0_is_taken_as_1(client: FlaskClient) -> None:
    # An export lists a thing in its last second with ttl 0; posting the file as is works.
    response = post(client, lines({"path": "last/second", "thing": {"v": 1}, "ttl": 0}))
    assert response.status_code == 200, response.get_json()
    assert client.get("/last/second").get_json()["ttl"] <= 1


def test_content_types(client: FlaskClient) -> None:
    one = lines({"path": "ct", "thing": {}})
    assert post(client, one, "application/x-ndjson").status_code == 200
    assert post(client, one, "application/jsonl; charset=utf-8").status_code == 200
    for wrong in (None, "application/json", "text/plain", "application/x-www-form-urlencoded"):
        response = post(client, one, wrong)
        assert response.status_code == 415, wrong
        assert "application/jsonl" in response.get_json()["detail"]


def test_an_empty_import_imports_nothing(client: FlaskClient) -> None:
    assert post(client, b"").get_json() == {"imported": 0, "created": 0}
    assert post(client, b"\n\n").get_json() == {"imported": 0, "created": 0}


def test_other_methods_are_405(client: FlaskClient) -> None:
    response = client.get("/_import")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


# -- access ------------------------------------------------------------------------------------


@pytest.fixture
def no_presence_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keys are made outside the app here; don't wait for the key-presence cache to notice.
    monkeypatch.setattr(auth, "KEY_PRESENCE_SECONDS", -1.0)


def make_key(app: Flask, scope: str, prefix: str = "") -> dict[str, str]:
    with app.app_context():
        _, key = keys.create_key(current_store(), scope, prefix)
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.usefixtures("no_presence_cache")
def test_import_needs_write_access_to_every_line(app: Flask, client: FlaskClient) -> None:
    read, write, admin = (make_key(app, s) for s in ("read", "write", "admin"))
    limited = make_key(app, "write", "sensors/")
    inside = lines({"path": "sensors/a", "thing": {}}, {"path": "sensors/b/c", "thing": {}})
    mixed = lines({"path": "sensors/a", "thing": {}}, {"path": "other/x", "thing": {}})

    no_key = post(client, inside)
    assert no_key.status_code == 401
    assert no_key.headers["WWW-Authenticate"].startswith("Bearer")
    assert post(client, inside, headers=read).status_code == 403
    assert client.get("/_import", headers=read).status_code == 405  # the method, not the key
    refused = post(client, mixed, headers=limited)
    assert refused.status_code == 403
    assert refused.get_json()["detail"].startswith("line 2: ")
    assert "sensors/" in refused.get_json()["detail"]
    assert post(client, inside, headers=admin).status_code == 200  # nothing stored until here
    assert client.delete("/?recursive=true", headers=admin).get_json() == {"deleted": 2}

    assert post(client, inside, headers=limited).status_code == 200
    assert post(client, mixed, headers=write).status_code == 200
    listing = client.get("/sensors/", headers=read).get_json()
    assert [t["path"] for t in listing["things"]] == ["sensors/a"]
    assert client.get("/other/x", headers=read).status_code == 200


# -- the body limit ----------------------------------------------------------------------------


@pytest.fixture
def small_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(max_body=1000)


def test_a_body_over_the_limit_is_413_and_stores_nothing(small_app: Flask) -> None:
    client = small_app.test_client()
    body = lines(*({"path": f"big/{i}", "thing": {"pad": "x" * 50}} for i in range(20)))
    assert len(body) > 1000
    response = post(client, body)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert client.get("/big/0").status_code == 404
    assert post(client, body[:900].rsplit(b"\n", 1)[0]).status_code == 200


def test_a_line_alone_may_hold_the_largest_thing_and_a_grown_one_restores(
    small_app: Flask, redis_client: redis.Redis
) -> None:
    client = small_app.test_client()
    # The largest thing a write may store, with its path and ttl: longer than the body limit,
    # yet every line an export writes imports (the client sends such a line alone).
    largest = {"pad": "x" * (1000 - len('{"pad":""}'))}
    line = lines({"path": "imp/largest", "thing": largest, "ttl": 100})
    assert len(line) > 1000
    assert post(client, line).status_code == 200
    assert client.get("/imp/largest").json["pad"] == largest["pad"]
    # One that grew past the limit before every write was checked (a PATCH could) restores,
    # up to four times the limit, and keeps every byte.
    grown = {"pad": "y" * (4000 - len('{"pad":""}'))}
    assert post(client, lines({"path": "imp/grown", "thing": grown, "ttl": 100})).status_code == 200
    assert redis_client.get("ts:t:{imp/grown}")[16:] == orjson.dumps(grown)
    huge = {"pad": "z" * 4000}
    refused = post(
        client, lines({"path": "imp/ok", "thing": {}}, {"path": "imp/huge", "thing": huge})
    )
    assert refused.status_code == 413  # several lines: held to the body limit
    refused = post(client, lines({"path": "imp/huge", "thing": huge}))
    assert refused.status_code == 413
    assert refused.mimetype == "application/problem+json"
    assert refused.json["detail"] == "line 1: the thing would be 4010 bytes, over the limit of 4000"
    assert client.get("/imp/huge").status_code == 404 and client.get("/imp/ok").status_code == 404


# -- storage -----------------------------------------------------------------------------------


def test_put_many_writes_as_put_does_in_chunks(app: Flask, redis_client: redis.Redis) -> None:
    store: Store = app.extensions["thingstash.store"]
    things = [(f"pm/{i % 3}/{i}", b'{"i":%d}' % i, 100 + i) for i in range(25)]
    # A flushed script cache (a restarted Redis) must not lose a write: NOSCRIPT is retried.
    if isinstance(redis_client, redis.RedisCluster):
        redis_client.execute_command("SCRIPT FLUSH", target_nodes=redis.RedisCluster.ALL_NODES)
    else:
        redis_client.script_flush()
    results = store.put_many(things, chunk=10)
    assert [r.created for r in results] == [True] * 25
    assert all(r.event_id for r in results)
    again = store.put_many(things[:5], chunk=2)
    assert [r.created for r in again] == [False] * 5
    assert len({r.version for r in [*results, *again]}) == 30  # a new version per write
    written = zip([*things, *things[:5]], results + again, strict=True)
    latest = {path: result.version for (path, _, _), result in written}
    for path, body, ttl in things:
        thing = store.get(path)
        assert thing is not None and thing.body == body and thing.version == latest[path]
        assert ttl - 2 <= thing.ttl <= ttl
    page = store.list_folder("pm/", None, 100)
    assert [e.name for e in page.entries] == ["0/", "1/", "2/"]
    assert len(store.list_folder("pm/1/", None, 100).entries) == 8
    events = store.feed_since("0-0", 100).events
    assert [(e.kind, e.path) for e in events] == [("put", p) for p, _, _ in [*things, *things[:5]]]
    assert events[0].thing is not None and events[0].thing.body == b'{"i":0}'

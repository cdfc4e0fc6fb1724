"""The Firebase face over plain HTTP, for what the SDK does not exercise: print, shallow with
other parameters, timeouts, error bodies, ETags, the method override, ttl, keys, and one store
seen through both faces. On one Redis and on the cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from thingstash.client.http import Client
from thingstash.core import keys
from thingstash.store import open_store

from ..support.clusters import LocalCluster
from ..support.fbserve import FirebaseServed, firebase, firebase_server, start_firebase  # noqa: F401
from ..support.servers import RedisServer
from .test_layout import stored_things

pytestmark = pytest.mark.cluster


@pytest.fixture
def fb(firebase: FirebaseServed) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=firebase.url, timeout=30) as client:
        yield client


@pytest.fixture
def native(firebase: FirebaseServed) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=firebase.native.url, timeout=30) as client:
        yield client


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    return str(body["error"])


# -- the REST surface ----------------------------------------------------------------------------


def test_put_get_post_patch_delete(fb: httpx.Client) -> None:
    assert fb.put("/users/ada.json", json={"name": "Ada", "born": 1815}).json() == {
        "name": "Ada",
        "born": 1815,
    }
    assert fb.get("/users/ada/name.json").json() == "Ada"
    pushed = fb.post("/users.json", json={"name": "Grace"})
    assert pushed.status_code == 200
    name = pushed.json()["name"]
    assert fb.get(f"/users/{name}.json").json() == {"name": "Grace"}
    assert fb.patch("/users/ada.json", json={"born": 1816, "died": 1852}).status_code == 200
    assert fb.get("/users/ada.json").json() == {"name": "Ada", "born": 1816, "died": 1852}
    deleted = fb.delete("/users/ada.json")
    assert deleted.status_code == 200 and deleted.json() is None
    assert fb.get("/users/ada.json").json() is None
    assert fb.get("/.json").json() == {"users": {name: {"name": "Grace"}}}


def test_print_pretty_and_silent(fb: httpx.Client) -> None:
    fb.put("/p.json", json={"a": {"b": 1}})
    pretty = fb.get("/p.json", params={"print": "pretty"})
    assert pretty.text == '{\n  "a": {\n    "b": 1\n  }\n}'
    silent = fb.put("/p/a/b.json", params={"print": "silent"}, json=2)
    assert silent.status_code == 204 and silent.content == b""
    assert fb.get("/p/a/b.json").json() == 2
    assert "print" in error_of(fb.get("/p.json", params={"print": "loud"}))


def test_shallow(fb: httpx.Client) -> None:
    fb.put("/s.json", json={"a": {"deep": 1}, "b": 2, "c": [1, 2]})
    assert fb.get("/s.json", params={"shallow": "true"}).json() == {
        "a": True,
        "b": True,
        "c": True,
    }
    assert fb.get("/s/b.json", params={"shallow": "true"}).json() == 2
    fb.put("/folder/x.json", json={"big": "x" * 1000})
    fb.put("/folder/y.json", json=1)
    assert fb.get("/folder.json", params={"shallow": "true"}).json() == {"x": True, "y": True}
    mixed = fb.get("/s.json", params={"shallow": "true", "orderBy": '"$key"'})
    assert mixed.status_code == 400 and "shallow" in error_of(mixed)


def test_format_export_and_timeout(fb: httpx.Client) -> None:
    fb.put("/e.json", json={"v": 1})
    assert fb.get("/e.json", params={"format": "export"}).json() == {"v": 1}
    assert fb.get("/e.json", params={"timeout": "3s"}).json() == {"v": 1}
    assert fb.get("/e.json", params={"timeout": "150ms"}).json() == {"v": 1}
    assert fb.get("/e.json", params={"timeout": "1min"}).json() == {"v": 1}
    for bad in ("3", "3h", "16min", "-1s"):
        refused = fb.get("/e.json", params={"timeout": bad})
        assert refused.status_code == 400 and "timeout" in error_of(refused)


def test_timeout_passed_mid_read_is_400(fb: httpx.Client) -> None:
    for folder in range(30):  # one folder page each: the deadline is checked between them
        fb.put(f"/slow/f{folder}/t.json", json={"n": folder})
    late = fb.get("/slow.json", params={"timeout": "0ms"})
    assert late.status_code == 400 and "timeout" in error_of(late)


def test_etags_if_match_and_if_none_match(fb: httpx.Client) -> None:
    empty = fb.get("/counter.json", headers={"X-Firebase-ETag": "true"})
    assert empty.json() is None and empty.headers["ETag"]
    created = fb.put("/counter.json", json=1, headers={"if-match": empty.headers["ETag"]})
    assert created.status_code == 200 and created.json() == 1
    stale = fb.put("/counter.json", json=5, headers={"if-match": empty.headers["ETag"]})
    assert stale.status_code == 412
    assert stale.json() == 1  # the value now, and its ETag, to retry with
    retried = fb.put("/counter.json", json=2, headers={"if-match": stale.headers["ETag"]})
    assert retried.status_code == 200 and retried.headers["ETag"] != stale.headers["ETag"]
    unchanged = fb.get("/counter.json", headers={"if-none-match": retried.headers["ETag"]})
    assert unchanged.status_code == 304
    gone = fb.delete("/counter.json", headers={"if-match": "wrong"})
    assert gone.status_code == 412 and gone.json() == 2
    assert fb.get("/counter.json").json() == 2
    refused = fb.patch("/counter.json", json={"a": 1}, headers={"if-match": "x"})
    assert refused.status_code == 400 and "if-match" in error_of(refused)


def test_if_match_inside_a_thing(fb: httpx.Client) -> None:
    fb.put("/doc.json", json={"a": {"n": 1}, "b": 2})
    etag = fb.get("/doc/a.json", headers={"X-Firebase-ETag": "true"}).headers["ETag"]
    fb.put("/doc/b.json", json=3)  # a sibling changed: this location did not
    assert fb.put("/doc/a/n.json", json=9).status_code == 200
    assert fb.put("/doc/a.json", json={"n": 2}, headers={"if-match": etag}).status_code == 412
    assert fb.get("/doc.json").json() == {"a": {"n": 9}, "b": 3}


def test_method_override(fb: httpx.Client) -> None:
    fb.post("/o.json", json={"a": 1}, headers={"X-HTTP-Method-Override": "PUT"})
    assert fb.get("/o.json").json() == {"a": 1}
    fb.post("/o.json", json={"b": 2}, headers={"X-HTTP-Method-Override": "PATCH"})
    assert fb.get("/o.json").json() == {"a": 1, "b": 2}
    fb.post("/o.json", params={"x-http-method-override": "DELETE"})
    assert fb.get("/o.json").json() is None


def test_ns_is_ignored_and_any_token_passes_an_open_store(fb: httpx.Client) -> None:
    fb.put("/n.json", params={"ns": "project-a"}, json=1)
    assert fb.get("/n.json", params={"ns": "project-b", "auth": "whatever"}).json() == 1
    assert fb.get("/n.json", headers={"Authorization": "Bearer owner"}).json() == 1


def test_null_deletes_and_empty_objects_are_no_data(fb: httpx.Client) -> None:
    fb.put("/z.json", json={"a": 1, "b": {"c": None}, "d": {}})
    assert fb.get("/z.json").json() == {"a": 1}
    fb.put("/z/a.json", content=b"null")
    assert fb.get("/z.json").json() is None
    fb.put("/w.json", json={".value": 5, ".priority": 1})
    assert fb.get("/w.json").json() == 5


def test_writes_above_and_below_things(fb: httpx.Client, native: httpx.Client) -> None:
    fb.put("/tree/a.json", json={"x": 1})
    fb.put("/tree/b.json", json=2)
    assert fb.get("/tree.json").json() == {"a": {"x": 1}, "b": 2}
    fb.put("/tree.json", json={"c": 3})  # above the things: they go, the new value stays
    assert fb.get("/tree.json").json() == {"c": 3}
    assert native.get("/tree/a").status_code == 404
    fb.put("/tree/c/d.json", json=4)  # inside the thing: the scalar becomes an object
    assert fb.get("/tree.json").json() == {"c": {"d": 4}}


def test_server_values_and_ttl(fb: httpx.Client, native: httpx.Client) -> None:
    written = fb.put("/sv.json", json={"at": {".sv": "timestamp"}, "n": {".sv": {"increment": 2}}})
    assert isinstance(written.json()["at"], int) and written.json()["n"] == 2
    fb.put("/sv/n.json", json={".sv": {"increment": 3}})
    assert fb.get("/sv/n.json").json() == 5
    fb.put("/short.json", params={"ttl": "60"}, json="soon gone")
    assert 55 <= native.get("/short").json()["ttl"] <= 60
    assert native.get("/sv").json()["ttl"] > 60


def test_queries_over_http_keep_order(fb: httpx.Client) -> None:
    fb.put("/q.json", json={"b": 2, "a": 3, "10": 1, "9": 1, "c": None})
    by_key = fb.get("/q.json", params={"orderBy": '"$key"'})
    assert list(json.loads(by_key.text)) == ["9", "10", "a", "b"]  # integer keys first
    by_value = fb.get("/q.json", params={"orderBy": '"$value"', "limitToLast": "2"})
    assert list(json.loads(by_value.text)) == ["b", "a"]
    after = fb.get("/q.json", params={"orderBy": '"$value"', "startAfter": "1"})
    assert list(json.loads(after.text)) == ["b", "a"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limitToFirst": "2"}, "orderBy must be defined"),
        ({"orderBy": "$key"}, "orderBy must be a valid JSON"),
        ({"orderBy": '"$key"', "limitToFirst": "0"}, "limitToFirst"),
        ({"orderBy": '"$key"', "limitToFirst": "1", "limitToLast": "1"}, "limitToLast"),
        ({"orderBy": '"$key"', "startAt": "3"}, "string"),
        ({"orderBy": '"a"', "equalTo": "1", "startAt": "0"}, "equalTo"),
        ({"orderBy": '"a"', "startAt": "{bad"}, "startAt"),
    ],
)
def test_bad_queries_are_400_with_firebase_words(
    fb: httpx.Client, params: dict[str, str], words: str
) -> None:
    refused = fb.get("/q.json", params=params)
    assert refused.status_code == 400 and words in error_of(refused)


def test_error_bodies(fb: httpx.Client) -> None:
    bad_json = fb.put("/e.json", content=b"{nope")
    assert bad_json.status_code == 400 and error_of(bad_json).startswith("Invalid data")
    bad_key = fb.put("/e.json", json={"a$b": 1})
    assert bad_key.status_code == 400 and "a$b" in error_of(bad_key)
    bad_path = fb.get("/a.b/c.json")
    assert bad_path.status_code == 400 and error_of(bad_path).startswith("Invalid path")
    not_json = fb.get("/e")
    assert not_json.status_code == 404 and ".json" in error_of(not_json)
    overlapping = fb.patch("/e.json", json={"a": 1, "a/b": 2})
    assert overlapping.status_code == 400 and "ancestor" in error_of(overlapping)
    too_big = fb.put("/e.json", content=b'"' + b"x" * (1024 * 1024 + 10) + b'"')
    assert too_big.status_code == 413 and error_of(too_big)
    assert fb.get("/e.json").json() is None  # nothing of any of them was stored


def test_the_root_holds_a_scalar_until_entries_come(fb: httpx.Client) -> None:
    fb.put("/a.json", json={"b": 1})
    assert fb.put("/.json", json="bar").json() == "bar"  # replaces everything, as Firebase
    assert fb.get("/.json").json() == "bar"
    assert fb.get("/a.json").json() is None
    assert fb.get("/.json", params={"shallow": "true"}).json() == "bar"
    fb.put("/c.json", json=2)
    assert fb.get("/.json").json() == {"c": 2}
    fb.delete("/c.json")
    assert fb.get("/.json").json() is None
    fb.put("/.json", json=[1, 2])
    assert fb.get("/.json").json() == [1, 2]
    fb.put("/.json", json={"d": 3})
    assert fb.get("/.json").json() == {"d": 3}
    fb.delete("/.json")
    assert fb.get("/.json").json() is None


# -- one store, two faces ------------------------------------------------------------------------


def test_native_writes_read_through_firebase(fb: httpx.Client, native: httpx.Client) -> None:
    native.put("/sensors/kitchen", json={"temp": 21.5})
    native.put("/sensors/hall", json={"temp": 19})
    assert fb.get("/sensors/kitchen.json").json() == {"temp": 21.5}
    assert fb.get("/sensors/kitchen/temp.json").json() == 21.5
    assert fb.get("/sensors.json").json() == {"hall": {"temp": 19}, "kitchen": {"temp": 21.5}}
    ordered = fb.get("/sensors.json", params={"orderBy": '"temp"', "limitToFirst": "1"})
    assert ordered.json() == {"hall": {"temp": 19}}


def test_firebase_writes_read_natively(fb: httpx.Client, native: httpx.Client) -> None:
    fb.put("/devices/esp.json", json=23)
    fb.put("/devices/pi.json", json={"up": True})
    esp = native.get("/devices/esp").json()
    assert esp[".value"] == 23 and esp["ttl"] > 0
    assert native.get("/devices/pi").json()["up"] is True
    listing = native.get("/devices/").json()
    assert [thing["path"] for thing in listing["things"]] == ["devices/esp", "devices/pi"]
    fb.put("/devices/pi/up.json", json=False)  # a write inside the thing: one patch of it
    assert native.get("/devices/pi").json()["up"] is False


# -- keys ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(redis_server: RedisServer | LocalCluster) -> Iterator[FirebaseServed]:
    """A server of its own, whose store gets keys (the shared one stays open); its reads are
    capped at 4 KB of JSON."""
    served = start_firebase(redis_server.url, {"THINGSTASH_FIREBASE_MAX_READ": "4096"})
    yield served
    served.native.stop()


def test_reads_past_the_cap_are_400(keyed: FirebaseServed, redis_client: redis.Redis) -> None:
    with httpx.Client(base_url=keyed.url, timeout=30) as client:
        for n in range(5):
            client.put(f"/big/t{n}.json", json={"text": "x" * 1000})
        assert client.get("/big/t0.json").status_code == 200
        assert client.get("/big.json", params={"shallow": "true"}).status_code == 200
        refused = client.get("/big.json")
        assert refused.status_code == 400
        assert error_of(refused) == (
            "Data requested exceeds the maximum size that can be accessed with a single request."
        )


def create_keys(redis_server: RedisServer | LocalCluster, *specs: tuple[str, str]) -> list[str]:
    """Keys of these (scope, prefix), in order."""
    store = open_store(redis_server.url)
    try:
        return [keys.create_key(store, scope, prefix)[1] for scope, prefix in specs]
    finally:
        store.close()


def wait_until_keyed(client: httpx.Client) -> None:
    deadline = time.monotonic() + 5  # the open-store answer is kept a second per process
    while client.get("/x.json").status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_keys_scope_and_prefix(
    keyed: FirebaseServed, redis_server: RedisServer | LocalCluster, redis_client: redis.Redis
) -> None:
    writer, reader = create_keys(redis_server, ("write", "sensors/"), ("read", ""))
    with httpx.Client(base_url=keyed.url, timeout=30) as client:
        wait_until_keyed(client)
        assert error_of(client.get("/x.json", params={"auth": "owner"})) == "Permission denied"
        assert client.put("/sensors/a.json", params={"auth": writer}, json=1).status_code == 200
        bearer = {"Authorization": f"Bearer {writer}"}
        assert client.get("/sensors/a.json", headers=bearer).json() == 1
        outside = client.put("/other.json", params={"auth": writer}, json=1)
        assert outside.status_code == 401 and error_of(outside) == "Permission denied"
        above = client.get("/.json", params={"auth": writer})
        assert above.status_code == 401
        assert client.get("/.json", params={"auth": reader}).json() == {"sensors": {"a": 1}}
        read_only = client.put("/sensors/b.json", params={"auth": reader}, json=1)
        assert read_only.status_code == 401
        rules = client.get("/.settings/rules.json", params={"auth": writer})
        assert rules.status_code == 401


def test_a_prefixed_key_writing_inside_a_thing_above_its_prefix_leaves_its_lifetime(
    keyed: FirebaseServed, redis_server: RedisServer | LocalCluster, redis_client: redis.Redis
) -> None:
    admin, ada = create_keys(redis_server, ("admin", ""), ("write", "users/ada"))
    with httpx.Client(base_url=keyed.url, timeout=30) as client:
        wait_until_keyed(client)
        everyone = {"ada": {"x": 1}, "bob": {"secret": "b"}}
        put = client.put("/users.json", params={"auth": admin, "ttl": "600"}, json=everyone)
        assert put.status_code == 200
        # The thing `users` holds bob too: ada's key may not decide when it ends.
        refused = client.put("/users/ada/x.json", params={"auth": ada, "ttl": "1"}, json=2)
        assert refused.status_code == 401
        assert error_of(refused).startswith(
            "Permission denied: this request may not set the lifetime"
        )
        assert client.put("/users/ada/x.json", params={"auth": ada}, json=2).status_code == 200
        patched = client.patch("/users/ada.json", params={"auth": ada}, json={"y": 3})
        assert patched.status_code == 200
        native = httpx.get(
            keyed.native.url + "/users", headers={"Authorization": f"Bearer {admin}"}, timeout=30
        )
        assert 590 <= native.json()["ttl"] <= 600  # kept, not renewed to the default
        assert client.get("/users.json", params={"auth": admin}).json() == {
            "ada": {"x": 2, "y": 3},
            "bob": {"secret": "b"},
        }


def test_native_watchers_see_firebase_writes(fb: httpx.Client, native: httpx.Client) -> None:
    headers = {"Accept": "text/event-stream"}
    with native.stream("GET", "/devices/", headers=headers, timeout=30) as events:
        lines = events.iter_lines()
        assert next(lines).startswith(": watching")
        fb.put("/devices/esp.json", json=7)
        fb.patch("/devices.json", json={"esp": 8, "pi": {"up": True}})
        seen: list[tuple[str, str]] = []
        kind = ""
        for line in lines:
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                seen.append((kind, json.loads(line.removeprefix("data: "))["path"]))
                if len(seen) == 3:
                    break
    assert seen == [("put", "devices/esp"), ("put", "devices/esp"), ("put", "devices/pi")]


def test_things_written_with_a_ttl_expire_from_firebase_reads(fb: httpx.Client) -> None:
    fb.put("/brief.json", params={"ttl": "1"}, json={"a": 1})
    fb.put("/brief/inside.json", params={"ttl": "1"}, json=2)  # inside the thing: its ttl anew
    fb.put("/kept.json", json=1)
    assert fb.get("/.json").json() == {"brief": {"a": 1, "inside": 2}, "kept": 1}
    deadline = time.monotonic() + 10
    while fb.get("/brief.json").json() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert fb.get("/.json").json() == {"kept": 1}


def test_an_export_leaves_out_names_the_native_face_reserves(
    fb: httpx.Client,
    firebase: FirebaseServed,  # noqa: F811
) -> None:
    fb.put("/_sdk/python/x.json", json=1)  # allowed here, reserved on the native face
    fb.put("/.settings/rules.json", json={"rules": {".read": True, ".write": True}})
    fb.put("/plain/y.json", json={"n": 2})
    with Client(firebase.native.url) as native_client:
        exported = [record["path"] for record in native_client.walk("")]
    assert exported == ["plain/y"]  # and so `thingstash import` takes the export back


def test_a_write_that_would_grow_a_thing_past_the_size_limit_lands_in_things_of_its_own(
    fb: httpx.Client, redis_server: RedisServer | LocalCluster
) -> None:
    # Each body is under the limit (1 MiB); the thing the two would make is not. The Firebase
    # face lays the value out over several things (docs/firebase.md, "Where things begin"),
    # each within the limit, rather than refusing it (a native PATCH would be 413).
    first = {"a": "x" * 700_000}
    assert fb.put("/big/t.json", json=first).status_code == 200
    assert fb.patch("/big/t.json", json={"b": "y" * 700_000}).status_code == 200
    assert fb.get("/big/t.json").json() == {**first, "b": "y" * 700_000}
    sizes = stored_things(redis_server)
    assert len(sizes) >= 2 and max(sizes.values()) <= 1024 * 1024

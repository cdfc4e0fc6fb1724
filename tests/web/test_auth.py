"""API keys through HTTP against a real Redis: scopes, prefixes, revocation, storage, logs."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core import keys
from thingstash.core.store import Store
from thingstash.web import auth
from thingstash.web.context import store as current_store

pytestmark = pytest.mark.cluster


def make_key(app: Flask, scope: str, prefix: str = "") -> str:
    with app.app_context():
        _, key = keys.create_key(current_store(), scope, prefix)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def store(app: Flask) -> Store:
    return app.extensions["thingstash.store"]


@pytest.fixture
def no_presence_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests create keys outside the app; don't wait for the key-presence cache to notice.
    monkeypatch.setattr(auth, "KEY_PRESENCE_SECONDS", -1.0)


def test_no_keys_means_open(client: FlaskClient) -> None:
    assert client.put("/a", json={"v": 1}).status_code == 201
    assert client.get("/a").status_code == 200
    assert client.delete("/a").status_code == 204


@pytest.mark.usefixtures("no_presence_cache")
def test_missing_or_bad_key_is_401_with_challenge(app: Flask, client: FlaskClient) -> None:
    key = make_key(app, "admin")
    for headers in (
        {},
        bearer(key[:-1] + ("A" if key[-1] != "A" else "B")),
        bearer("tsk_000000000000_nope"),
        bearer("garbage"),
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ):
        response = client.get("/a", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.mimetype == "application/problem+json"
    assert client.get("/a", headers=bearer(key)).status_code == 404


@pytest.mark.usefixtures("no_presence_cache")
def test_scopes(app: Flask, client: FlaskClient) -> None:
    read, write, admin = (make_key(app, s) for s in ("read", "write", "admin"))
    assert client.put("/x", json={"v": 1}, headers=bearer(write)).status_code == 201
    assert client.get("/x", headers=bearer(read)).status_code == 200
    assert client.head("/x", headers=bearer(read)).status_code == 200
    assert client.get("/", headers=bearer(read)).status_code == 200
    for method in ("put", "patch", "delete"):
        response = getattr(client, method)("/x", json={"v": 2}, headers=bearer(read))
        assert response.status_code == 403, method
    assert client.post("/f/", json={"v": 1}, headers=bearer(read)).status_code == 403
    assert client.post("/f/", json={"v": 1}, headers=bearer(write)).status_code == 201
    assert client.get("/_keys", headers=bearer(write)).status_code == 403
    assert client.get("/_metrics", headers=bearer(read)).status_code == 403
    assert client.get("/_keys", headers=bearer(admin)).status_code == 200
    assert client.get("/_metrics", headers=bearer(admin)).status_code == 200
    assert client.delete("/x", headers=bearer(admin)).status_code == 204
    # The health check stays open for load balancers, CORS preflights too.
    assert client.get("/_health").status_code == 200
    assert client.options("/x", headers={"Origin": "https://a.example"}).status_code == 200


@pytest.mark.usefixtures("no_presence_cache")
def test_prefix(app: Flask, client: FlaskClient) -> None:
    sensors = make_key(app, "write", "sensors/")
    admin = make_key(app, "admin")
    for path in ("/sensors/a", "/other/b", "/top", "/sensorsx"):
        client.put(path, json={"v": 1}, headers=bearer(admin))
    assert client.get("/sensors/a", headers=bearer(sensors)).status_code == 200
    assert client.put("/sensors/b/c", json={}, headers=bearer(sensors)).status_code == 201
    assert client.post("/sensors/", json={}, headers=bearer(sensors)).status_code == 201
    assert client.get("/other/b", headers=bearer(sensors)).status_code == 403
    assert client.put("/other/b", json={}, headers=bearer(sensors)).status_code == 403
    assert client.put("/sensors", json={}, headers=bearer(sensors)).status_code == 403
    assert client.get("/sensorsx", headers=bearer(sensors)).status_code == 403
    assert client.post("/", json={}, headers=bearer(sensors)).status_code == 403
    assert client.delete("/?recursive=true", headers=bearer(sensors)).status_code == 403
    # A prefix-limited admin key cannot manage keys (it could mint a wider one).
    narrow_admin = make_key(app, "admin", "sensors/")
    assert client.get("/_keys", headers=bearer(narrow_admin)).status_code == 403


@pytest.mark.usefixtures("no_presence_cache")
def test_listing_shows_only_what_the_key_may_read(app: Flask, client: FlaskClient) -> None:
    admin = make_key(app, "admin")
    deep = make_key(app, "read", "sensors/kitchen/")
    for path in ("/sensors/kitchen/t", "/sensors/hall/t", "/top", "/other/x"):
        client.put(path, json={"v": 1}, headers=bearer(admin))
    root = client.get("/", headers=bearer(deep)).get_json()
    assert root["things"] == [] and root["folders"] == ["sensors/"]
    middle = client.get("/sensors/", headers=bearer(deep)).get_json()
    assert middle["folders"] == ["sensors/kitchen/"]
    inside = client.get("/sensors/kitchen/", headers=bearer(deep)).get_json()
    assert [t["path"] for t in inside["things"]] == ["sensors/kitchen/t"]
    full = client.get("/", headers=bearer(admin)).get_json()
    assert full["folders"] == ["other/", "sensors/"] and len(full["things"]) == 1


def test_revocation_is_immediate(app: Flask, client: FlaskClient) -> None:
    admin = make_key(app, "admin")
    response = client.post("/_keys", json={"scope": "write", "prefix": "s/"}, headers=bearer(admin))
    assert response.status_code == 201
    created = response.get_json()
    assert response.headers["Location"] == f"/_keys/{created['id']}"
    assert response.headers["Cache-Control"] == "no-store"
    key = created["key"]
    assert client.put("/s/1", json={}, headers=bearer(key)).status_code == 201
    assert client.delete(f"/_keys/{created['id']}", headers=bearer(admin)).status_code == 204
    assert client.put("/s/1", json={}, headers=bearer(key)).status_code == 401
    assert client.delete(f"/_keys/{created['id']}", headers=bearer(admin)).status_code == 404


def test_keys_over_http_never_show_secrets(app: Flask, client: FlaskClient) -> None:
    admin = make_key(app, "admin")
    client.put("/x", json={}, headers=bearer(admin))
    listed = client.get("/_keys", headers=bearer(admin))
    assert listed.status_code == 200
    (only,) = listed.get_json()["keys"]
    assert set(only) == {"id", "scope", "prefix", "created", "last_used"}
    assert only["last_used"] is not None
    assert admin not in listed.get_data(as_text=True)
    assert hashlib.sha256(admin.encode()).hexdigest() not in listed.get_data(as_text=True)
    assert client.get(f"/_keys/{only['id']}", headers=bearer(admin)).get_json() == only
    for bad in ({"scope": "root"}, {"scope": "read", "prefix": 3}, [1]):
        assert client.post("/_keys", json=bad, headers=bearer(admin)).status_code == 400
    bad_json = client.post("/_keys", data=b"{", headers=bearer(admin))
    assert bad_json.status_code == 400


def test_key_is_stored_only_as_a_hash(app: Flask, redis_client: redis.Redis) -> None:
    key = make_key(app, "write", "p/")
    dump = b""
    for name in redis_client.scan_iter():
        kind = redis_client.type(name)
        if kind == b"hash":
            dump += b"".join(k + v for k, v in redis_client.hgetall(name).items())
        elif kind == b"string":
            dump += redis_client.get(name) or b""
    assert key.encode() not in dump
    secret = key.split("_", 2)[2]
    assert secret.encode() not in dump
    assert hashlib.sha256(key.encode()).hexdigest().encode() in dump
    assert len(secret) >= 22  # at least 128 bits of base64url


@pytest.mark.usefixtures("no_presence_cache")
def test_keys_never_logged(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = make_key(app, "admin")
    client.put("/x", json={}, headers=bearer(key))
    client.get("/x", headers=bearer(key + "x"))
    response = client.post("/_keys", json={"scope": "read"}, headers=bearer(key))
    new_key = response.get_json()["key"]
    assert any('"path":"/x"' in r.getMessage() for r in caplog.records)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert key not in text and new_key not in text and "Bearer" not in text


@pytest.fixture
def anonymous_read_client(make_app: Callable[..., Flask]) -> tuple[Flask, FlaskClient]:
    app = make_app(anonymous_read=True)
    return app, app.test_client()


@pytest.mark.usefixtures("no_presence_cache")
def test_anonymous_read(anonymous_read_client: tuple[Flask, FlaskClient]) -> None:
    app, client = anonymous_read_client
    writer = make_key(app, "write")
    assert client.put("/x", json={"v": 1}).status_code == 401
    assert client.put("/x", json={"v": 1}, headers=bearer(writer)).status_code == 201
    assert client.get("/x").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/_keys").status_code == 401
    assert client.get("/x", headers=bearer("tsk_bad")).status_code == 401


def test_an_open_store_makes_no_key_over_http(client: FlaskClient) -> None:
    # Whoever minted the first admin key would lock everyone else out (issue 12, item 10).
    assert client.get("/_keys").status_code == 200  # open: no key yet
    refused = client.post("/_keys", json={"scope": "admin"})
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert "thingstash keys create" in refused.get_json()["detail"]
    assert client.get("/_keys").get_json() == {"keys": []}  # nothing made, still open


@pytest.mark.usefixtures("no_presence_cache")
def test_watch_shows_only_what_the_key_may_read(app: Flask, client: FlaskClient) -> None:
    from thingstash.web import metrics

    from .test_watch import Stream

    admin = make_key(app, "admin")
    narrow = make_key(app, "read", "s/in/")
    headers = {"Accept": "text/event-stream", **bearer(narrow)}
    assert client.get("/s/out/", headers=headers).status_code == 403
    open_before = metrics.WATCHES._value.get()
    response = client.get("/s/", headers=headers, buffered=False)
    assert response.status_code == 200
    stream = Stream(iter(response.response))
    try:
        assert stream.frame().kind == "comment"
        assert metrics.WATCHES._value.get() == open_before + 1
        for path in ("/s/out/x", "/s/in/y", "/s/other", "/s/in/z/w"):
            client.put(path, json={}, headers=bearer(admin))
        assert [stream.event().data["path"] for _ in range(2)] == ["s/in/y", "s/in/z/w"]
    finally:
        response.close()
    assert metrics.WATCHES._value.get() == open_before

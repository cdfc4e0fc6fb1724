"""Doors that were open (issue 12, items 8-11 and 17): watch streams after a revocation, a store
reopened by revoking its last key, keys minted and stores reached from web pages (CORS, DNS
rebinding), refusals the rate limit did not count, Vary on refused origins."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core.store import Store
from thingstash.store import open_store
from thingstash.web import auth

from ..e2e.test_serve_internet import thingstash
from ..support.servers import RedisServer, Served
from .test_auth import bearer, make_key
from .test_watch import Stream


@pytest.fixture
def no_presence_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keys made or revoked outside the app are seen at once, not within a second.
    monkeypatch.setattr(auth, "KEY_PRESENCE_SECONDS", -1.0)


def revoke_outside(app: Flask, key: str) -> None:
    """Revoke as another process would (`thingstash keys revoke`): straight in the store."""
    store: Store = app.extensions["thingstash.store"]
    assert store.revoke_key(key.split("_")[1])


# -- 8: a watch stream ends when its key is revoked ---------------------------------------------


def open_stream(client: FlaskClient, path: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    response = client.get(path, headers={"Accept": "text/event-stream", **headers}, buffered=False)
    assert response.status_code == 200
    stream = Stream(iter(response.response))
    assert stream.frame().kind == "comment"  # subscribed
    return response, stream


def rest_of(stream: Stream, most: int = 5) -> list[str]:
    """The frames until the stream ends, as their kinds (events) or texts (comments); a stream
    that goes on past `most` frames (a keep-alive a second) has not ended."""
    seen: list[str] = []
    try:
        while len(seen) < most:
            frame = stream.frame()
            seen.append(frame.comment if frame.kind == "comment" else frame.kind)  # type: ignore[arg-type]
    except StopIteration:
        return seen
    raise AssertionError(f"the stream goes on: {seen}")


@pytest.mark.usefixtures("no_presence_cache")
def test_a_watch_stream_ends_when_its_key_is_revoked(make_app: Callable[..., Flask]) -> None:
    app = make_app(keepalive=1)
    client = app.test_client()
    admin = make_key(app, "admin")
    reader = make_key(app, "read")
    response, stream = open_stream(client, "/w/", bearer(reader))
    try:
        client.put("/w/before", json={"v": 1}, headers=bearer(admin))
        assert stream.event().data["path"] == "w/before"  # type: ignore[index]
        revoke_outside(app, reader)
        client.put("/w/after", json={"v": 2}, headers=bearer(admin))
        # The stream ends instead of delivering the write made after the revocation.
        assert rest_of(stream) == ["access revoked"]
    finally:
        response.close()
    assert client.get("/w/", headers=bearer(reader)).status_code == 401


@pytest.mark.usefixtures("no_presence_cache")
def test_an_idle_watch_stream_ends_at_its_keep_alive_after_a_revocation(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(keepalive=1)
    client = app.test_client()
    reader = make_key(app, "read")
    response, stream = open_stream(client, "/w/", bearer(reader))
    try:
        revoke_outside(app, reader)
        assert rest_of(stream) == ["access revoked"]  # within one keep-alive (1 s)
    finally:
        response.close()


@pytest.mark.usefixtures("no_presence_cache")
def test_a_keyless_watch_of_an_open_store_ends_when_the_store_closes(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(keepalive=1)
    client = app.test_client()
    response, stream = open_stream(client, "/w/", {})
    try:
        client.put("/w/open", json={})
        assert stream.event().data["path"] == "w/open"  # type: ignore[index]
        admin = make_key(app, "admin")
        client.put("/w/closed", json={}, headers=bearer(admin))
        assert rest_of(stream) == ["access revoked"]
    finally:
        response.close()


# -- 9: a store that has had a key stays closed --------------------------------------------------


@pytest.mark.usefixtures("no_presence_cache")
def test_revoking_the_last_key_leaves_the_store_closed(
    app: Flask, client: FlaskClient, make_app: Callable[..., Flask]
) -> None:
    admin = make_key(app, "admin")
    key_id = admin.split("_")[1]
    assert client.delete(f"/_keys/{key_id}", headers=bearer(admin)).status_code == 204
    for asking in (client, make_app().test_client()):  # this process, and a fresh one
        refused = asking.get("/_keys")
        assert refused.status_code == 401 and refused.mimetype == "application/problem+json"
        assert asking.put("/x", json={}).status_code == 401
    # A new key made on the store works as ever.
    assert client.get("/_keys", headers=bearer(make_key(app, "admin"))).status_code == 200


@pytest.mark.usefixtures("no_presence_cache")
def test_only_the_command_line_reopens_a_store(
    app: Flask, client: FlaskClient, redis_server: RedisServer
) -> None:
    key = make_key(app, "read")
    kept = thingstash("keys", "reopen", "--yes", "--redis-url", redis_server.url)
    assert kept.returncode == 1 and "revoke them first" in kept.stderr
    assert client.get("/x").status_code == 401
    revoke_outside(app, key)
    assert client.get("/x").status_code == 401  # no key left, still closed
    asked = thingstash("keys", "reopen", "--redis-url", redis_server.url)  # no --yes, no "y"
    assert asked.returncode == 1 and client.get("/x").status_code == 401
    reopened = thingstash("keys", "reopen", "--yes", "--redis-url", redis_server.url)
    assert reopened.returncode == 0, reopened.stderr
    assert client.get("/x").status_code == 404  # open again


@pytest.mark.usefixtures("no_presence_cache")
def test_a_server_on_a_public_address_never_serves_an_open_store(
    make_app: Callable[..., Flask], redis_server: RedisServer
) -> None:
    public_bind = make_app(host="0.0.0.0")
    client = public_bind.test_client()
    key = make_key(public_bind, "read")
    assert client.get("/x", headers=bearer(key)).status_code == 404
    # The last key revoked and the store reopened while the server runs: still no open door.
    revoke_outside(public_bind, key)
    assert thingstash("keys", "reopen", "--yes", "--redis-url", redis_server.url).returncode == 0
    assert client.get("/x").status_code == 401
    assert client.post("/_keys", json={"scope": "admin"}).status_code == 401
    # Unless an open store on it was asked for (--public).
    assert make_app(host="0.0.0.0", public=True).test_client().get("/x").status_code == 404


# -- 10: keys minted over HTTP, web pages and DNS rebinding --------------------------------------


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8080", "127.0.0.1:1", "[::1]:8080", "[::1]", "app.localhost"]
)
def test_a_loopback_server_answers_loopback_names(client: FlaskClient, host: str) -> None:
    assert client.get("/x", headers={"Host": host}).status_code == 404


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io", "a b"],
)
def test_a_loopback_server_refuses_other_names(client: FlaskClient, host: str) -> None:
    # A DNS-rebinding page reaches 127.0.0.1 as "same origin", but under its own name.
    for method in ("get", "put"):
        refused = getattr(client, method)("/x", json={}, headers={"Host": host})
        assert refused.status_code == 421, (method, host)
        assert refused.mimetype == "application/problem+json"
        assert "THINGSTASH_ALLOWED_HOSTS" in refused.get_json()["detail"]
    assert client.post("/_keys", json={"scope": "admin"}, headers={"Host": host}).status_code == 421
    assert client.get("/x").status_code == 404  # nothing was written


def test_allowed_hosts_add_names(make_app: Callable[..., Flask]) -> None:
    client = make_app(allowed_hosts=("box.lan", ".home.arpa")).test_client()
    for host in ("box.lan:8080", "nas.home.arpa", "home.arpa", "localhost"):
        assert client.get("/x", headers={"Host": host}).status_code == 404, host
    assert client.get("/x", headers={"Host": "other.lan"}).status_code == 421
    public = make_app(host="0.0.0.0", public=True).test_client()
    assert public.get("/x", headers={"Host": "thingstash.example.com"}).status_code == 404
    listed = make_app(host="0.0.0.0", public=True, allowed_hosts=("a.example",)).test_client()
    assert listed.get("/x", headers={"Host": "a.example"}).status_code == 404
    assert listed.get("/x", headers={"Host": "b.example"}).status_code == 421


@pytest.mark.usefixtures("no_presence_cache")
def test_an_open_store_allows_loopback_origins_only(app: Flask, client: FlaskClient) -> None:
    for origin in ("http://localhost:5173", "https://127.0.0.1", "http://[::1]:3000"):
        allowed = client.get("/", headers={"Origin": origin})
        assert allowed.headers["Access-Control-Allow-Origin"] == origin
    preflight = client.options(
        "/_keys",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    for origin in ("https://evil.example", "http://localhost.evil.example", "null"):
        refused = client.get("/", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in refused.headers, origin
        assert "Origin" in refused.headers["Vary"]
    # Once the store is closed, any page may call it: it must be given a key first.
    make_key(app, "read")
    closed = client.get("/", headers={"Origin": "https://evil.example"})
    assert closed.status_code == 401
    assert closed.headers["Access-Control-Allow-Origin"] == "https://evil.example"


def test_configured_origins_win(make_app: Callable[..., Flask]) -> None:
    client = make_app(cors_origins="https://app.example").test_client()
    assert (
        "Access-Control-Allow-Origin"
        not in client.get("/", headers={"Origin": "http://localhost:5173"}).headers
    )
    allowed = client.get("/", headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    everyone = make_app(cors_origins="*").test_client()
    assert everyone.get("/", headers={"Origin": "https://evil.example"}).headers[
        "Access-Control-Allow-Origin"
    ] in {"*", "https://evil.example"}


# -- 17: Vary: Origin on a refused origin too ----------------------------------------------------


def test_a_refused_origin_gets_vary_origin(make_app: Callable[..., Flask]) -> None:
    client = make_app(cors_origins="https://good.example, https://also.example").test_client()
    refused = client.get("/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert refused.headers.getlist("Vary") == ["Origin"]
    allowed = client.get("/", headers={"Origin": "https://good.example"})
    assert allowed.headers.getlist("Vary") == ["Origin"]
    single = make_app(cors_origins="https://good.example").test_client()
    assert single.get("/", headers={"Origin": "https://evil.example"}).headers["Vary"] == "Origin"


# -- 11: refusals count against the rate limit ---------------------------------------------------


@pytest.mark.usefixtures("no_presence_cache")
def test_refused_requests_count_against_the_rate_limit(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit="3/minute")
    client = app.test_client()
    key = make_key(app, "read", "mine/")
    # Key guessing from one address: the fourth guess is throttled, not checked.
    for attempt in range(3):
        assert (
            client.get("/x", headers=bearer(f"tsk_00000000000{attempt}_guess")).status_code == 401
        )
    throttled = client.get("/x", headers=bearer("tsk_000000000009_guess"))
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers
    assert client.get("/x").status_code == 429  # the address, with or without a key
    # A valid key's requests outside its scope count against that key.
    for _ in range(3):
        assert client.put("/mine/a", json={}, headers=bearer(key)).status_code == 403
    assert client.get("/mine/a", headers=bearer(key)).status_code == 429


def test_revoking_a_key_that_does_not_exist_leaves_an_open_store_open(
    app: Flask, redis_server: RedisServer
) -> None:
    # A revoke of a key that does not exist closes nothing (anyone could ask on an open store).
    client = app.test_client()
    assert client.delete("/_keys/000000000000").status_code == 404
    assert client.get("/x").status_code == 404
    store = open_store(redis_server.url)
    try:
        assert not store.is_closed()
    finally:
        store.close()


def test_served_workers_check_the_host_of_the_address_bound(served: Served) -> None:
    # `serve` hands its --host to the workers: a rebinding page's name is refused end to end.
    refused = requests.put(f"{served.url}/x", json={}, headers={"Host": "evil.example"}, timeout=5)
    assert refused.status_code == 421
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert requests.get(f"{served.url}/_health", timeout=5).ok

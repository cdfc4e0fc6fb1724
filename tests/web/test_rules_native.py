"""The rules at the native face's doors, against a real Redis: who is judged (signed out, an
admin acting as a user with `auth_variable_override`, keys not at all), each door allowed and
denied (401 without a credential, 403 with one), streams that end when the rules change, the
fast path stepping aside, `/_rules` and its 400."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import jwt
import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core import keys
from thingstash.firebase import rules as firebase_rules
from thingstash.web import auth, fastpath, users
from thingstash.web.context import store as current_store
from thingstash.web.watch import REVOKED

pytestmark = pytest.mark.cluster

RULES_TEXT = """{
  // Each user reads and writes only below users/<uid>; anyone reads public/.
  "rules": {
    "users": {
      "$uid": {
        ".read": "auth != null && auth.uid == $uid",
        ".write": "auth != null && auth.uid == $uid"
      }
    },
    "public": {".read": true},
    "posts": {".read": "query.orderByChild == 'n' && query.limitToFirst <= 10"},
    "counters": {"$c": {".write": "newData.child('n').val() <= 3"}},
    "notes": {
      "$uid": {
        "$note": {
          "score": {".write": "newData.val() < 10"},
          "text": {".write": "auth != null && auth.uid == $uid"}
        }
      }
    }
  }
}"""
OWNER = {"Authorization": "Bearer owner"}
JSON = "application/json"


def as_user(uid: str | None) -> str:
    """The query string an admin adds to act as `uid` (None: signed out)."""
    auth_value = None if uid is None else {"uid": uid, "provider": "custom", "token": {}}
    return "auth_variable_override=" + quote(orjson.dumps(auth_value).decode())


def url(path: str, uid: str | None, extra: str = "") -> str:
    return f"/{path}?{as_user(uid)}" + (f"&{extra}" if extra else "")


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(keepalive=0.2)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ruled(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    """An open loopback store with RULES_TEXT in force and some things the owner wrote."""
    monkeypatch.setattr(users, "RECHECK_SECONDS", 0.0)
    for path, value in (
        ("users/ada/x", {"v": 1}),
        ("users/bob/x", {"v": 2}),
        ("public/news", {"v": 3}),
        ("posts/p1", {"n": 1}),
        ("notes/ada/n1", {"score": 1, "text": "a"}),
    ):
        assert client.put("/" + path, json=value, headers=OWNER).status_code in (200, 201)
    answer = client.put("/_rules", data=RULES_TEXT, headers=OWNER)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return client


def denied(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["title"] == "permission denied"
    detail: str = problem["detail"]
    return detail


# -- /_rules -----------------------------------------------------------------------------------


def test_rules_round_trip_and_a_bad_document_is_400_naming_the_place(
    client: FlaskClient,
) -> None:
    missing = client.get("/_rules", headers=OWNER)
    assert missing.status_code == 404
    assert client.put("/_rules", data=RULES_TEXT, headers=OWNER).status_code == 200
    stored = client.get("/_rules", headers=OWNER)
    assert stored.status_code == 200
    document = stored.get_json()
    assert document["rules"]["users"]["$uid"][".read"] == "auth != null && auth.uid == $uid"

    bad = '{"rules": {"users": {".read": "auth.uid ==="}}}'
    refused = client.put("/_rules", data=bad, headers=OWNER)
    assert refused.status_code == 400
    assert refused.mimetype == "application/problem+json"
    assert "users" in refused.get_json()["detail"]  # names the place
    assert client.put("/_rules", data="{not json", headers=OWNER).status_code == 400
    assert client.get("/_rules", headers=OWNER).get_json() == document  # unchanged


def test_rules_need_an_admin(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        _, writer = keys.create_key(current_store(), "write")
        _, admin = keys.create_key(current_store(), "admin")
        auth.key_created()
    assert client.get("/_rules").status_code == 401
    assert client.put("/_rules", data=RULES_TEXT).status_code == 401
    as_writer = {"Authorization": f"Bearer {writer}"}
    assert client.put("/_rules", data=RULES_TEXT, headers=as_writer).status_code == 403
    as_admin = {"Authorization": f"Bearer {admin}"}
    assert client.put("/_rules", data=RULES_TEXT, headers=as_admin).status_code == 200
    assert client.get("/_rules", headers=as_admin).status_code == 200


def test_on_an_open_store_with_rules_only_the_owner_manages_it(ruled: FlaskClient) -> None:
    wide_open = '{"rules": {".read": true, ".write": true}}'
    assert ruled.get("/_rules").status_code == 401
    assert ruled.put("/_rules", data=wide_open).status_code == 401
    assert ruled.get("/_keys").status_code == 401
    assert ruled.get("/_rules", headers=OWNER).status_code == 200
    assert ruled.get("/users/ada/x").status_code == 401  # the rules in force are unchanged


# -- who is judged -------------------------------------------------------------------------------


def test_without_a_rules_document_nothing_changes(client: FlaskClient) -> None:
    assert client.put("/users/ada/x", json={"v": 1}).status_code == 201
    assert client.get("/users/ada/x").status_code == 200
    assert client.get(url("users/ada/x", "bob"), headers=OWNER).status_code == 200


def test_signed_out_is_401_and_an_admin_acting_as_a_user_403(ruled: FlaskClient) -> None:
    assert "users/ada/x" in denied(ruled.get("/users/ada/x"), 401)
    assert ruled.get("/public/news").status_code == 200  # `.read: true` lets anyone
    denied(ruled.get(url("users/ada/x", "bob"), headers=OWNER), 403)
    denied(ruled.get(url("users/ada/x", None), headers=OWNER), 403)  # a credential was sent
    assert ruled.get(url("users/ada/x", "ada"), headers=OWNER).get_json()["v"] == 1
    # the admin itself is not judged
    assert ruled.get("/users/ada/x", headers=OWNER).status_code == 200


def test_keys_are_not_judged_an_admin_key_may_act_as_a_user(app: Flask, ruled: FlaskClient) -> None:
    with app.app_context():
        _, reader = keys.create_key(current_store(), "read", "users/")
        _, admin = keys.create_key(current_store(), "admin")
        auth.key_created()
    as_reader = {"Authorization": f"Bearer {reader}"}
    assert ruled.get("/users/bob/x", headers=as_reader).status_code == 200
    assert ruled.get(url("users/bob/x", "ada"), headers=as_reader).status_code == 200
    as_admin = {"Authorization": f"Bearer {admin}"}
    assert ruled.get("/users/bob/x", headers=as_admin).status_code == 200
    denied(ruled.get(url("users/bob/x", "ada"), headers=as_admin), 403)
    # now closed: `owner` is no admin, and keyless requests are still judged by the rules
    assert ruled.get("/users/bob/x", headers=OWNER).status_code == 401
    assert ruled.get("/public/news").status_code == 200
    denied(ruled.get("/users/bob/x"), 401)


def test_a_bad_override_is_400(ruled: FlaskClient) -> None:
    answer = ruled.get("/users/ada/x?auth_variable_override=%5B1%5D", headers=OWNER)
    assert answer.status_code == 400


def test_a_bad_id_token_is_401_and_stores_nothing(ruled: FlaskClient) -> None:
    garbage = {"Authorization": "Bearer eyJub3QiOiJqc29uIn0.bm90.c2ln"}
    answer = ruled.put("/users/ada/y", json={"v": 1}, headers=garbage)
    assert answer.status_code == 401
    assert answer.mimetype == "application/problem+json"
    assert "token" in answer.get_json()["detail"]
    assert ruled.get("/users/ada/y", headers=OWNER).status_code == 404


# -- the doors: reads ----------------------------------------------------------------------------


def test_listings_are_read_at_the_folder_rules_are_not_filters(ruled: FlaskClient) -> None:
    listing = ruled.get(url("users/ada/", "ada"), headers=OWNER)
    assert listing.status_code == 200
    assert [t["path"] for t in listing.get_json()["things"]] == ["users/ada/x"]
    denied(ruled.get(url("users/", "ada"), headers=OWNER), 403)  # not filtered to ada's
    denied(ruled.get("/users/"), 401)
    assert ruled.head(url("users/ada/x", "ada"), headers=OWNER).status_code == 200
    assert ruled.head(url("users/ada/x", "bob"), headers=OWNER).status_code == 403


def test_queries_are_read_at_the_folder_with_query_rules(ruled: FlaskClient) -> None:
    mine = ruled.get(url("users/ada/", "ada", "order_by=v"), headers=OWNER)
    assert mine.status_code == 200
    assert [t["path"] for t in mine.get_json()["things"]] == ["users/ada/x"]
    denied(ruled.get(url("users/ada/", "bob", "order_by=v"), headers=OWNER), 403)
    # query.orderByChild and query.limitToFirst (limit) as the rules see them
    assert ruled.get("/posts/?order_by=n&limit=5").status_code == 200
    denied(ruled.get("/posts/?order_by=n&limit=50"), 401)
    denied(ruled.get("/posts/?order_by=m&limit=5"), 401)
    denied(ruled.get("/posts/?order_by=n&limit=5&desc=true"), 401)  # limitToLast
    denied(ruled.get("/posts/"), 401)  # a plain listing is no such query


# -- the doors: writes ---------------------------------------------------------------------------


def test_put_delete_and_push(ruled: FlaskClient) -> None:
    assert ruled.put(url("users/ada/y", "ada"), json={"v": 5}, headers=OWNER).status_code == 201
    denied(ruled.put(url("users/ada/z", "bob"), json={"v": 5}, headers=OWNER), 403)
    denied(ruled.put("/users/ada/z", json={"v": 5}), 401)
    assert ruled.get("/users/ada/z", headers=OWNER).status_code == 404

    denied(ruled.delete(url("users/ada/y", "bob"), headers=OWNER), 403)
    assert ruled.delete(url("users/ada/y", "ada"), headers=OWNER).status_code == 204
    denied(ruled.delete(url("users/ada/", "bob", "recursive=true"), headers=OWNER), 403)
    assert ruled.get("/users/ada/x", headers=OWNER).status_code == 200

    pushed = ruled.post(url("users/ada/", "ada"), json={"v": 6}, headers=OWNER)
    assert pushed.status_code == 201
    assert pushed.get_json()["path"].startswith("users/ada/")
    denied(ruled.post(url("users/ada/", "bob"), json={"v": 6}, headers=OWNER), 403)
    listing = ruled.get("/users/ada/", headers=OWNER).get_json()
    assert len(listing["things"]) == 2  # x and the one pushed


def test_patch_is_judged_as_the_writes_of_its_leaves(ruled: FlaskClient) -> None:
    def patch(body: dict[str, Any], uid: str) -> Any:
        return ruled.patch(url("notes/ada/n1", uid), json=body, headers=OWNER)

    assert patch({"score": 5}, "bob").status_code == 200  # score's rule asks only its value
    denied(patch({"score": 50}, "ada"), 403)
    assert patch({"text": "mine"}, "ada").status_code == 200
    denied(patch({"text": "theirs"}, "bob"), 403)
    denied(patch({"score": 6, "text": "both"}, "bob"), 403)  # all leaves or none
    stored = ruled.get("/notes/ada/n1", headers=OWNER).get_json()
    assert (stored["score"], stored["text"]) == (5, "mine")


def test_increments_are_judged_on_the_value_they_resolve_to(ruled: FlaskClient) -> None:
    bump = {"n": {".sv": {"increment": 1}}}
    for expected in (1, 2, 3):
        answer = ruled.put(url("counters/c", "ada"), json=bump, headers=OWNER)
        assert answer.status_code in (200, 201), answer.get_data(as_text=True)
        assert answer.get_json()["n"] == expected
    denied(ruled.put(url("counters/c", "ada"), json=bump, headers=OWNER), 403)
    assert ruled.get("/counters/c", headers=OWNER).get_json()["n"] == 3


def test_import_judges_every_line_before_writing_any(ruled: FlaskClient) -> None:
    lines = b"\n".join(
        orjson.dumps({"path": path, "ttl": 60, "thing": {"v": 1}})
        for path in ("users/ada/i1", "users/bob/i2")
    )
    headers = {**OWNER, "Content-Type": "application/jsonl"}
    refused = ruled.post("/_import?" + as_user("ada"), data=lines, headers=headers)
    assert "line 2" in denied(refused, 403)
    assert ruled.get("/users/ada/i1", headers=OWNER).status_code == 404
    allowed = ruled.post("/_import?" + as_user("ada"), data=lines.split(b"\n")[0], headers=headers)
    assert allowed.status_code == 200, allowed.get_data(as_text=True)
    assert allowed.get_json() == {"imported": 1, "created": 1}
    assert ruled.get("/users/ada/i1", headers=OWNER).status_code == 200
    signed_out = ruled.post("/_import", data=lines, headers={"Content-Type": "application/jsonl"})
    denied(signed_out, 401)


# -- streams ---------------------------------------------------------------------------------------


def _reader(response: Any) -> queue.Queue[bytes | None]:
    """The stream's chunks as they come (None at its end), read by a thread."""
    chunks: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        try:
            for chunk in response.response:
                chunks.put(chunk)
        finally:
            chunks.put(None)

    threading.Thread(target=read, daemon=True).start()
    return chunks


def _until_end(chunks: queue.Queue[bytes | None], seconds: float) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = chunks.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if chunk is None:
            return got
        got.append(chunk)
    raise AssertionError(f"the stream did not end: {got!r}")


@pytest.mark.parametrize("path", ["users/ada/x", "users/ada/", "users/ada/?order_by=v"])
def test_a_stream_ends_when_the_rules_no_longer_allow_it(ruled: FlaskClient, path: str) -> None:
    events = {**OWNER, "Accept": "text/event-stream"}
    thing, _, query = path.partition("?")
    denied(ruled.get(url(thing, "bob", query), headers=events), 403)
    denied(ruled.get("/" + path, headers={"Accept": "text/event-stream"}), 401)
    response = ruled.get(url(thing, "ada", query), headers=events, buffered=False)
    assert response.status_code == 200
    chunks = _reader(response)
    first = chunks.get(timeout=5)
    assert first is not None and first.startswith(b": watching")
    closed = RULES_TEXT.replace('"auth != null && auth.uid == $uid",\n', '"false",\n', 1)
    assert closed != RULES_TEXT
    assert ruled.put("/_rules", data=closed, headers=OWNER).status_code == 200
    ruled.put("/users/ada/x", json={"v": 9}, headers=OWNER)  # an event to (not) deliver
    rest = _until_end(chunks, 5)
    assert rest[-1] == REVOKED
    assert not any(b'"v":9' in chunk for chunk in rest)
    response.close()


# -- the fast path ---------------------------------------------------------------------------------


def test_the_fast_path_steps_aside_for_a_store_with_rules(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = app.extensions[fastpath.EXTENSION]
    assert fast.on  # it answers plain requests of a store without rules
    assert client.put("/users/ada/x", json={"v": 1}).status_code == 201
    assert client.get("/users/ada/x").status_code == 200
    # A rules document stored elsewhere (another process, the Firebase face): this process's
    # fast path learns of it within auth.RULES_PRESENCE_SECONDS.
    with app.app_context():
        document = firebase_rules.parse_rules_text(RULES_TEXT)
        firebase_rules.write_rules(current_store(), document, 3600)
    time.sleep(auth.RULES_PRESENCE_SECONDS + 0.1)
    for answer in (
        client.get("/users/ada/x"),
        client.head("/users/ada/x"),
        client.get("/users/ada/"),
        client.put("/users/ada/x", json={"v": 2}),
        client.patch("/users/ada/x", json={"v": 2}),
    ):
        assert answer.status_code == 401, answer.get_data(as_text=True)
    assert client.get("/users/ada/x", headers=OWNER).get_json()["v"] == 1
    assert client.get("/public/news").status_code == 404  # allowed, and missing


def test_owner_is_the_admin_only_on_loopback(make_app: Callable[..., Flask]) -> None:
    public = make_app(host="0.0.0.0", public=True).test_client()
    assert public.put("/_rules", data=RULES_TEXT, headers=OWNER).status_code == 401
    assert public.put("/users/ada/x", json={"v": 1}, headers=OWNER).status_code == 401


def _token(claims: dict[str, Any]) -> dict[str, str]:
    """An emulator's unsigned ID token (THINGSTASH_AUTH_EMULATOR), as Authorization."""
    return {"Authorization": "Bearer " + jwt.encode(claims, None, algorithm="none")}


def test_users_with_id_tokens_are_judged_as_themselves(make_app: Callable[..., Flask]) -> None:
    client = make_app(auth_emulator=True).test_client()
    assert client.put("/users/ada/x", json={"v": 1}, headers=OWNER).status_code == 201
    assert client.put("/_rules", data=RULES_TEXT, headers=OWNER).status_code == 200
    ada, bob = _token({"sub": "ada"}), _token({"sub": "bob"})
    assert client.get("/users/ada/x", headers=ada).get_json()["v"] == 1
    assert "users/ada/x" in denied(client.get("/users/ada/x", headers=bob), 403)
    assert client.put("/users/ada/y", json={"v": 2}, headers=ada).status_code == 201
    denied(client.put("/users/ada/z", json={"v": 2}, headers=bob), 403)
    assert client.get("/users/ada/z", headers=OWNER).status_code == 404
    # A token is for things: the service's admin endpoints want a key.
    assert client.get("/_rules", headers=ada).status_code == 403
    expired = _token({"sub": "ada", "exp": int(time.time()) - 3600})
    answer = client.get("/users/ada/x", headers=expired)
    assert answer.status_code == 401
    assert "expired" in answer.get_json()["detail"]


def test_without_an_identity_provider_every_token_is_401(ruled: FlaskClient) -> None:
    answer = ruled.get("/users/ada/x", headers=_token({"sub": "ada"}))
    assert answer.status_code == 401
    assert "takes no ID tokens" in answer.get_json()["detail"]

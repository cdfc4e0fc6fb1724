"""Every door of the Firebase face judged by the rules, for users signed in with real ID tokens
(RS256, from a real JWKS served locally, `?auth=` as the SDKs send them): reads, shallow reads,
queries, streams (ended when the rules stop allowing them), PUT, PATCH (all or nothing), POST,
DELETE, increments (judged on the value they resolve to); every kind of bad token refused with
a 401 that stores nothing; on one Redis and on the cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from thingstash.core import documents, keys
from thingstash.firebase.reading import RULES_PATH
from thingstash.firebase.rules import CHECK_SECONDS
from thingstash.store import open_store

from ..support.clusters import LocalCluster
from ..support.fbserve import FirebaseServed, start_firebase
from ..support.servers import RedisServer
from ..support.tokens import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    Key,
    claims,
    hs256_with,
    rsa_key,
    unsigned,
)

pytestmark = pytest.mark.cluster

OWNER = {"Authorization": "Bearer owner"}
RULES: dict[str, Any] = {
    "rules": {
        "public": {".read": True},
        "todos": {
            "$uid": {
                ".read": "auth != null && auth.uid === $uid",
                ".write": "auth != null && auth.uid === $uid",
                "$item": {
                    ".validate": "newData.hasChildren(['title', 'done'])",
                    "title": {".validate": "newData.isString() && newData.val().length <= 20"},
                    "done": {".validate": "newData.isBoolean()"},
                    "$other": {".validate": False},
                },
            }
        },
        "counters": {
            "$uid": {
                ".write": "auth.uid === $uid",
                ".validate": "newData.isNumber() && newData.val() <= 10",
            }
        },
        "feed": {
            ".read": "query.limitToFirst != null && query.limitToFirst <= 10",
            ".indexOn": ["at"],
        },
    }
}


@pytest.fixture(scope="module")
def signer() -> Key:
    return rsa_key("fb-doors")


@pytest.fixture(scope="module")
def served(
    redis_server: RedisServer | LocalCluster, signer: Key
) -> Iterator[tuple[FirebaseServed, JwksServer]]:
    provider = JwksServer(keys=[signer])
    provider.start()
    env = {
        "THINGSTASH_AUTH_JWKS_URL": provider.url,
        "THINGSTASH_AUTH_ISSUER": ISSUER,
        "THINGSTASH_AUTH_AUDIENCE": AUDIENCE,
    }
    face = start_firebase(redis_server.url, env=env)
    yield face, provider
    face.native.stop()
    provider.stop()


@pytest.fixture
def fb(served: tuple[FirebaseServed, JwksServer], redis_client: redis.Redis) -> Iterator[Any]:
    face, _ = served
    with httpx.Client(base_url=face.url, timeout=10) as client:
        # A test that gave the store a key leaves it closed for up to a second in the server's
        # memory (web/auth.py's KEY_PRESENCE_SECONDS): wait until the emptied store is open.
        deadline = time.monotonic() + 10
        while not client.put("/.settings/rules.json", json=RULES, headers=OWNER).is_success:
            assert time.monotonic() < deadline, "the emptied store is still closed"
            time.sleep(0.05)
        yield client


def token(signer: Key, uid: str = "ada", **changes: Any) -> str:
    return signer.sign(claims(sub=uid, **changes))


def as_user(signer: Key, uid: str = "ada") -> dict[str, str]:
    return {"auth": token(signer, uid)}


def denied(answer: httpx.Response) -> bool:
    return answer.status_code == 401 and answer.json()["error"].startswith("Permission denied")


def admin_get(fb: httpx.Client, path: str) -> Any:
    return fb.get(f"/{path}.json", headers=OWNER).json()


def test_a_user_reads_and_writes_only_their_own(fb: httpx.Client, signer: Key) -> None:
    ada, bob = as_user(signer, "ada"), as_user(signer, "bob")
    item = {"title": "milk", "done": False}
    assert fb.put("/todos/ada/milk.json", params=ada, json=item).json() == item
    assert fb.get("/todos/ada.json", params=ada).json() == {"milk": item}
    assert denied(fb.get("/todos/ada.json", params=bob))
    assert denied(fb.put("/todos/ada/eggs.json", params=bob, json=item))
    assert denied(fb.get("/todos/ada.json"))  # signed out
    assert denied(fb.get("/todos.json", params=ada))  # rules are not filters
    assert denied(fb.get("/todos/bob.json", params={**ada, "shallow": "true"}))
    assert fb.get("/todos/ada.json", params={**ada, "shallow": "true"}).json() == {"milk": True}
    assert admin_get(fb, "todos") == {"ada": {"milk": item}}


def test_validate_refuses_what_the_app_does_not_take(fb: httpx.Client, signer: Key) -> None:
    ada = as_user(signer)
    assert denied(fb.put("/todos/ada/x.json", params=ada, json={"title": "x"}))
    assert denied(fb.put("/todos/ada/x.json", params=ada, json={"title": "x" * 21, "done": True}))
    assert denied(
        fb.put("/todos/ada/x.json", params=ada, json={"title": "x", "done": True, "more": 1})
    )
    assert admin_get(fb, "todos") is None
    # A delete runs no .validate: the item goes.
    fb.put("/todos/ada/x.json", params=ada, json={"title": "x", "done": True})
    assert fb.delete("/todos/ada/x.json", params=ada).status_code == 200
    assert admin_get(fb, "todos") is None


def test_a_multi_path_update_is_all_or_nothing(fb: httpx.Client, signer: Key) -> None:
    ada = as_user(signer)
    fine = {"title": "a", "done": False}
    both = {"todos/ada/a": fine, "todos/bob/b": fine}
    assert denied(fb.patch("/.json", params=ada, json=both))
    assert admin_get(fb, "todos") is None
    assert denied(fb.patch("/todos/ada.json", params=ada, json={"a": fine, "b/done": True}))
    assert fb.patch("/todos/ada.json", params=ada, json={"a": fine}).json() == {"a": fine}


def test_a_push_is_judged_at_its_new_child(fb: httpx.Client, signer: Key) -> None:
    ada = as_user(signer)
    pushed = fb.post("/todos/ada.json", params=ada, json={"title": "p", "done": False})
    name = pushed.json()["name"]
    assert admin_get(fb, f"todos/ada/{name}") == {"title": "p", "done": False}
    assert denied(fb.post("/todos/bob.json", params=ada, json={"title": "p", "done": False}))


def test_an_increment_is_judged_on_the_value_it_makes(fb: httpx.Client, signer: Key) -> None:
    ada = as_user(signer)
    step = {".sv": {"increment": 4}}
    assert fb.put("/counters/ada.json", params=ada, json=step).json() == 4
    assert fb.put("/counters/ada.json", params=ada, json=step).json() == 8
    assert denied(fb.put("/counters/ada.json", params=ada, json=step))  # 12 > 10
    assert admin_get(fb, "counters/ada") == 8


def test_query_rules_see_the_query(fb: httpx.Client, signer: Key) -> None:
    fb.put("/feed.json", headers=OWNER, json={f"e{n}": {"at": n} for n in range(20)})
    ada = as_user(signer)
    small = {"orderBy": '"at"', "limitToFirst": "3"}
    assert set(fb.get("/feed.json", params={**ada, **small}).json()) == {"e0", "e1", "e2"}
    assert denied(fb.get("/feed.json", params={**ada, "orderBy": '"at"', "limitToFirst": "11"}))
    assert denied(fb.get("/feed.json", params=ada))


def test_every_kind_of_bad_token_is_a_401_that_stores_nothing(
    fb: httpx.Client, signer: Key
) -> None:
    other = rsa_key("unknown-kid")
    now = int(time.time())
    public_pem = signer.public_pem
    bad = {
        "expired": signer.sign(claims(sub="ada", exp=now - 3600, iat=now - 7200)),
        "not yet valid": signer.sign(claims(sub="ada", nbf=now + 3600)),
        "wrong audience": signer.sign(claims(sub="ada", aud="someone-else")),
        "wrong issuer": signer.sign(claims(sub="ada", iss="https://evil.example")),
        "alg none": unsigned(claims(sub="ada")),
        "hs256 with the public key": hs256_with(public_pem, claims(sub="ada"), signer.kid),
        "unknown key id": other.sign(claims(sub="ada")),
        "garbage": "not.a.token",
    }
    item = {"title": "x", "done": True}
    for kind, credential in bad.items():
        answer = fb.put("/todos/ada/x.json", params={"auth": credential}, json=item)
        assert answer.status_code == 401, kind
        assert answer.json()["error"].startswith("Permission denied: "), kind
        assert len(answer.json()["error"]) > len("Permission denied: "), kind
    assert admin_get(fb, "todos") is None


def _events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    kind = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: ") and kind is not None:
            yield kind, json.loads(line[len("data: ") :])


def test_a_stream_is_judged_at_its_start_and_ends_when_the_rules_deny_it(
    fb: httpx.Client, served: tuple[FirebaseServed, JwksServer], signer: Key
) -> None:
    face, _ = served
    headers = {"Accept": "text/event-stream"}
    assert denied(fb.get("/todos/bob.json", params=as_user(signer), headers=headers))
    fb.put("/public/note.json", headers=OWNER, json="hello")
    with httpx.Client(base_url=face.url, timeout=30) as streaming:
        with streaming.stream("GET", "/public.json", headers=headers) as response:
            assert response.status_code == 200
            events = _events(response)
            assert next(events) == ("put", {"path": "/", "data": {"note": "hello"}})
            closed = dict(RULES["rules"])
            closed["public"] = {".read": False}
            fb.put("/.settings/rules.json", json={"rules": closed}, headers=OWNER)
            time.sleep(1.2)  # a stream asks the rules again at most every second
            fb.put("/public/note.json", headers=OWNER, json="changed")
            kinds = [kind for kind, _ in events]
    assert "cancel" in kinds and ("put", {"path": "/note", "data": "changed"}) not in kinds


def test_on_a_closed_store_keys_pass_and_the_rules_judge_the_rest(
    fb: httpx.Client,
    served: tuple[FirebaseServed, JwksServer],
    redis_server: RedisServer | LocalCluster,
    signer: Key,
) -> None:
    store = open_store(redis_server.url)
    try:
        admin = keys.create_key(store, "admin", "")[1]
        store.put(RULES_PATH, documents.dumps(RULES), 3600)
    finally:
        store.close()
    deadline = time.monotonic() + 5  # the open-store answer is kept a second per process
    while fb.get("/todos/x.json", headers=OWNER).status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    item = {"title": "tea", "done": True}
    assert fb.put("/todos/bob/x.json", params={"auth": admin}, json=item).json() == item
    ada = as_user(signer)
    assert fb.put("/todos/ada/tea.json", params=ada, json=item).json() == item
    assert denied(fb.get("/todos/bob.json", params=ada))
    assert fb.get("/public.json").json() is None  # signed out, judged: allowed, and empty
    fb.put("/public/note.json", params={"auth": admin}, json="hi")
    assert fb.get("/public.json").json() == {"note": "hi"}  # now the rules allow it
    store = open_store(redis_server.url)
    try:
        store.delete(RULES_PATH)  # no rules: a closed store refuses users and nobody alike
    finally:
        store.close()
    time.sleep(CHECK_SECONDS * 2)  # not a deploy: the processes learn of it within this long
    assert denied(fb.get("/todos/ada.json", params=ada))
    assert denied(fb.get("/public.json"))
    assert fb.get("/todos/ada.json", params={"auth": admin}).json() == {"tea": item}


def test_only_the_admin_reads_or_changes_the_rules(fb: httpx.Client, signer: Key) -> None:
    for params in ({}, as_user(signer)):
        assert denied(fb.get("/.settings/rules.json", params=params))
        wide_open = {"rules": {".read": True, ".write": True}}
        assert denied(fb.put("/.settings/rules.json", params=params, json=wide_open))
    assert denied(fb.put("/todos/ada/x.json", json={"title": "x", "done": True}))  # unchanged
    assert fb.get("/.settings/rules.json", headers=OWNER).json() == RULES


def test_a_user_sets_no_lifetime_above_where_it_may_write(fb: httpx.Client, signer: Key) -> None:
    shared = {"ada": 1, "bob": 2}
    fb.put("/counters.json", headers=OWNER, params={"ttl": "600"}, json=shared)  # one thing
    ada = as_user(signer)
    refused = fb.put("/counters/ada.json", params={**ada, "ttl": "1"}, json=3)
    assert denied(refused) and "lifetime" in refused.json()["error"]
    assert fb.put("/counters/ada.json", params=ada, json=3).json() == 3
    native = httpx.get(f"{str(fb.base_url).rstrip('/')}/counters.json", headers=OWNER)
    assert native.json() == {"ada": 3, "bob": 2}


def test_a_bad_query_gets_its_own_words_whoever_asks(fb: httpx.Client, signer: Key) -> None:
    for params in ({}, as_user(signer)):
        answer = fb.get("/feed.json", params={**params, "orderBy": "at"})
        assert answer.status_code == 400
        assert answer.json()["error"] == "orderBy must be a valid JSON value"


def test_a_stream_ends_when_its_token_expires(
    fb: httpx.Client, served: tuple[FirebaseServed, JwksServer], signer: Key
) -> None:
    face, _ = served
    brief = signer.sign(claims(sub="ada", exp=int(time.time()) + 2))
    fb.put("/todos/ada/a.json", headers=OWNER, json={"title": "a", "done": False})
    with httpx.Client(base_url=face.url, timeout=30) as streaming:
        with streaming.stream(
            "GET",
            "/todos/ada.json",
            params={"auth": brief},
            headers={"Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200
            events = _events(response)
            assert next(events)[0] == "put"
            time.sleep(3.2)
            fb.put("/todos/ada/b.json", headers=OWNER, json={"title": "b", "done": False})
            kinds = [kind for kind, _ in events]
    assert kinds == ["cancel"]


def test_without_rules_an_open_store_takes_any_credential_as_before(
    fb: httpx.Client, redis_server: RedisServer | LocalCluster
) -> None:
    store = open_store(redis_server.url)
    try:
        store.delete(RULES_PATH)
    finally:
        store.close()
    time.sleep(CHECK_SECONDS * 2)  # not a deploy: the processes learn of it within this long
    assert fb.put("/x.json", params={"auth": "not.a.token"}, json=1).json() == 1
    assert fb.get("/x.json").json() == 1

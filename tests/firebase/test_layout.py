"""Where the Firebase face's writes live (docs/firebase.md, "Where things begin"): pushes are
things of their own, no write grows a thing past half the thing size limit, and one key's data
never makes its neighbour's unreadable. Over HTTP, on one Redis and on the cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingstash.core import keys
from thingstash.core.config import Settings
from thingstash.core.pushids import push_id
from thingstash.store import open_store
from thingstash.web.firebase.app import create_firebase_app

from ..support.clusters import LocalCluster
from ..support.fbserve import FirebaseServed, firebase, firebase_server, start_firebase  # noqa: F401
from ..support.firebasemodel import model_set, pruned
from ..support.servers import RedisServer

pytestmark = pytest.mark.cluster

LIMIT = 4096  # THINGSTASH_MAX_BODY of the server here: things split past half of it
READ_CAP = 32768  # THINGSTASH_FIREBASE_MAX_READ


@pytest.fixture(scope="module")
def small(redis_server: RedisServer | LocalCluster) -> Iterator[FirebaseServed]:
    """A server of its own with a small thing size limit and read cap, so that splitting and
    the cap are reached in a few writes."""
    served = start_firebase(
        redis_server.url,
        {"THINGSTASH_MAX_BODY": str(LIMIT), "THINGSTASH_FIREBASE_MAX_READ": str(READ_CAP)},
    )
    yield served
    served.native.stop()


@pytest.fixture
def fb(small: FirebaseServed, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=small.url, timeout=30) as client:
        while client.get("/.json", params={"shallow": "true"}).status_code == 401:
            assert time.monotonic() < deadline, "the emptied store is still closed"
            time.sleep(0.05)
        yield client


@pytest.fixture
def native(small: FirebaseServed) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small.native.url, timeout=30) as client:
        yield client


def stored_things(redis_server: RedisServer | LocalCluster) -> dict[str, int]:
    """Every thing in the store: its path and the size of its JSON."""
    store = open_store(redis_server.url)
    found: dict[str, int] = {}
    try:
        folders = [""]
        while folders:
            folder = folders.pop()
            after = None
            while True:
                page = store.list_folder(folder, after, 1000, True)
                for entry in page.entries:
                    if entry.thing is None:
                        folders.append(folder + entry.name)
                    else:
                        found[folder + entry.name] = len(entry.thing.body)
                if page.next_cursor is None:
                    break
                after = page.next_cursor
    finally:
        store.close()
    return found


def stored_tree(redis_server: RedisServer | LocalCluster) -> Any:
    """The tree the things make, put together from their JSON read natively (no read cap)."""
    store = open_store(redis_server.url)
    tree: dict[str, Any] = {}
    try:
        for path in sorted(stored_things(redis_server), key=lambda path: path.count("/")):
            thing = store.get(path)
            assert thing is not None
            value = json.loads(thing.body)
            *above, name = path.split("/")
            node = tree
            for key in above:
                node = node.setdefault(key, {})
            node[name] = value.get(".value", value) if len(value) == 1 else value
    finally:
        store.close()
    return tree


def test_a_push_inside_a_thing_is_a_thing_of_its_own(
    fb: httpx.Client, native: httpx.Client
) -> None:
    room = {"title": "general", "messages": {"m1": {"text": "hi"}}}
    assert fb.put("/rooms/r1.json", json=room).status_code == 200
    pushed = fb.post("/rooms/r1/messages.json", json={"text": "yo"})
    assert pushed.status_code == 200
    name = pushed.json()["name"]
    # The native face sees the message as a thing of its own ...
    own = native.get(f"/rooms/r1/messages/{name}")
    assert own.status_code == 200, own.text
    assert own.json()["text"] == "yo"
    # ... and the Firebase face the same tree as before, from every place.
    messages = {"m1": {"text": "hi"}, name: {"text": "yo"}}
    assert fb.get("/rooms/r1.json").json() == {"title": "general", "messages": messages}
    assert fb.get("/rooms/r1/messages.json").json() == messages
    assert fb.get("/rooms.json").json() == {"r1": {"title": "general", "messages": messages}}
    assert fb.get(f"/rooms/r1/messages/{name}/text.json").json() == "yo"
    # Writes and deletes at and inside the pushed message work on its thing.
    assert fb.put(f"/rooms/r1/messages/{name}/text.json", json="yo!").status_code == 200
    assert native.get(f"/rooms/r1/messages/{name}").json()["text"] == "yo!"
    assert fb.delete(f"/rooms/r1/messages/{name}.json").status_code == 200
    assert fb.get("/rooms/r1.json").json() == room


def test_thousands_of_pushes_leave_the_room_thing_as_it_was(
    fb: httpx.Client, native: httpx.Client, redis_server: RedisServer | LocalCluster
) -> None:
    room = {"title": "general", "topic": "anything"}
    assert fb.put("/rooms/r1.json", json=room).status_code == 200
    before = native.get("/rooms/r1").json()
    before.pop("ttl")  # counts down meanwhile
    names = [
        fb.post("/rooms/r1/messages.json", json={"n": n, "text": "hello"}).json()["name"]
        for n in range(2000)
    ]
    after = native.get("/rooms/r1").json()
    after.pop("ttl")
    assert after == before  # not even rewritten (same last_updated)
    things = stored_things(redis_server)
    assert set(things) == {"rooms/r1", *(f"rooms/r1/messages/{name}" for name in names)}
    assert fb.get(f"/rooms/r1/messages/{names[1234]}.json").json() == {"n": 1234, "text": "hello"}


def test_a_push_into_an_old_big_thing_splits_it_and_reads_the_same(
    fb: httpx.Client, redis_server: RedisServer | LocalCluster
) -> None:
    # A room whose messages were written inside its thing (as before this layout): pushes
    # move them out, and every place reads as before.
    old = {f"-Old{n:016d}": {"text": f"m{n}"} for n in range(20)}
    room = {"title": "general", "meta": {"by": "ada", "tags": ["a"]}, "messages": old}
    store = open_store(redis_server.url)
    try:
        store.put("rooms/r1", json.dumps(room).encode(), 600)
    finally:
        store.close()
    name = fb.post("/rooms/r1/messages.json", json={"text": "new"}).json()["name"]
    expected = {**room, "messages": {**old, name: {"text": "new"}}}
    assert fb.get("/rooms/r1.json").json() == expected
    assert fb.get("/rooms.json").json() == {"r1": expected}
    assert fb.get("/rooms/r1/meta.json").json() == room["meta"]
    things = stored_things(redis_server)
    assert (
        f"rooms/r1/messages/{name}" in things and "rooms/r1/messages/-Old0000000000000007" in things
    )


def test_an_old_thing_past_the_read_cap_is_laid_out_by_the_next_write(
    fb: httpx.Client, redis_server: RedisServer | LocalCluster
) -> None:
    # A thing grown past the read cap before this layout: the neighbour inside it is unreadable
    # until a Firebase write inside it lays it out; then every place reads, each thing small.
    team = {"ada": {f"n{n}": "x" * 1500 for n in range(30)}, "bob": {"name": "Bob"}}
    store = open_store(redis_server.url)
    try:
        store.put("team", json.dumps(team).encode(), 600)
    finally:
        store.close()
    assert fb.get("/team/bob.json").status_code == 400  # 45 KB past the 32 KB cap
    assert fb.patch("/team/ada.json", json={"n0": "y"}).status_code == 200
    team["ada"]["n0"] = "y"
    assert fb.get("/team/bob.json").json() == {"name": "Bob"}
    assert fb.get("/team/ada/n29.json").json() == "x" * 1500
    things = stored_things(redis_server)
    assert len(things) > 1 and all(size <= LIMIT // 2 for size in things.values())
    # Its things put together are the value as written (too large for one Firebase read).
    assert stored_tree(redis_server) == {"team": team}


def test_a_key_for_one_prefix_never_makes_a_neighbour_unreadable(
    fb: httpx.Client, small: FirebaseServed, redis_server: RedisServer | LocalCluster
) -> None:
    team = {"ada": {"name": "Ada"}, "bob": {"name": "Bob"}}
    assert fb.put("/team.json", json=team).status_code == 200
    store = open_store(redis_server.url)
    try:
        ada, bob = (keys.create_key(store, "write", f"team/{who}/")[1] for who in ("ada", "bob"))
    finally:
        store.close()
    deadline = time.monotonic() + 5
    while fb.get("/x.json").status_code != 401:  # the open-store answer is kept a second
        assert time.monotonic() < deadline
        time.sleep(0.1)
    note = "x" * 1500
    for n in range(40):  # 60 KB under team/ada/: past the read cap of 32 KB
        written = fb.put(f"/team/ada/notes/n{n}.json", params={"auth": ada}, json=note)
        assert written.status_code == 200, written.text
    assert fb.get("/team/bob/name.json", params={"auth": bob}).json() == "Bob"
    assert fb.put("/team/bob/mood.json", params={"auth": bob}, json="fine").status_code == 200
    assert fb.get("/team/bob/mood.json", params={"auth": bob}).json() == "fine"
    assert fb.get("/team/ada/notes/n39.json", params={"auth": ada}).json() == note
    assert fb.get("/team/ada/name.json", params={"auth": ada}).json() == "Ada"
    assert all(size <= LIMIT // 2 for size in stored_things(redis_server).values())


def test_writes_past_the_limit_split_and_read_back_the_same(
    fb: httpx.Client, redis_server: RedisServer | LocalCluster
) -> None:
    # One body of 3.5 KB (past half the limit) as one place, then small writes inside it
    # growing it to several times the limit: every write lands, the value reads back whole.
    doc = {f"u{n}": {"name": f"user {n}", "bio": "b" * 150} for n in range(20)}
    assert len(json.dumps(doc)) > LIMIT // 2
    assert fb.put("/doc.json", json=doc).json() == doc
    assert fb.get("/doc.json").json() == doc
    for n in range(20, 60):
        doc[f"u{n}"] = {"name": f"user {n}", "bio": "b" * 150}
        assert fb.put(f"/doc/u{n}.json", json=doc[f"u{n}"]).status_code == 200
    for n in range(0, 60, 7):
        doc[f"u{n}"]["bio"] = "c" * 300
        patch = {f"u{n}/bio": "c" * 300, f"u{n + 1}/name": "renamed"}
        doc[f"u{n + 1}"]["name"] = "renamed"
        assert fb.patch("/doc.json", json=patch).status_code == 200
    assert fb.get("/doc.json").json() == doc
    assert fb.get("/doc/u33.json").json() == doc["u33"]
    things = stored_things(redis_server)
    assert len(things) > 1
    assert all(size <= LIMIT // 2 for size in things.values())
    # A PUT above replaces all of it, as one value again.
    assert fb.put("/doc.json", json={"small": 1}).status_code == 200
    assert fb.get("/doc.json").json() == {"small": 1}
    assert set(stored_things(redis_server)) == {"doc"}


def test_a_scalar_past_the_limit_is_413_and_nothing_is_stored(
    fb: httpx.Client, redis_server: RedisServer | LocalCluster
) -> None:
    refused = fb.put("/s.json", json="x" * (LIMIT - 8))
    assert refused.status_code == 413
    assert "thing size limit" in refused.json()["error"]
    assert fb.get("/s.json").json() is None
    assert stored_things(redis_server) == {}


# -- one tree, whatever the layout: the face in process against a plain model of Firebase's tree --

PUSHED = ["-Aaaaaaaaaaaaaaaaaaa", "-Bbbbbbbbbbbbbbbbbbb"]  # keys the layout puts in things
model_keys = st.sampled_from(["a", "b", *PUSHED])
model_paths = st.lists(model_keys, min_size=1, max_size=3).map(tuple)
model_values = st.recursive(
    st.one_of(st.none(), st.integers(0, 9), st.text("xy", min_size=60, max_size=120)),
    lambda inner: st.dictionaries(model_keys, inner, max_size=3),
    max_leaves=3,
)
model_steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), model_paths, model_values),
        st.tuples(
            st.just("patch"), model_paths, st.dictionaries(model_keys, model_values, max_size=2)
        ),
        st.tuples(st.just("delete"), model_paths, st.none()),
        st.tuples(st.just("post"), model_paths, model_values),
    ),
    min_size=1,
    max_size=10,
)
SMALL = 1024  # the thing size limit in process: things split past 512 bytes


@pytest.fixture(scope="module")
def small_app(redis_server: RedisServer | LocalCluster) -> Iterator[Flask]:
    config = Settings(redis_url=redis_server.url, max_body=SMALL)
    store = open_store(redis_server.url)
    yield create_firebase_app(config, store)
    store.close()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(model_steps)
def test_every_layout_reads_as_one_tree(
    small_app: Flask,
    redis_client: redis.Redis,
    redis_server: RedisServer | LocalCluster,
    steps: list[tuple[str, Any, Any]],
) -> None:
    redis_client.flushall()
    client = small_app.test_client()
    model: Any = None
    for kind, path, value in steps:
        url = "/" + "/".join(path) + ".json"
        if kind == "put":
            answer = client.put(url, data=json.dumps(value))
            model = model_set(model, path, value)
        elif kind == "patch":
            answer = client.patch(url, json=value)
            for key, child in value.items():
                model = model_set(model, (*path, key), child)
        elif kind == "delete":
            answer = client.delete(url)
            model = model_set(model, path, None)
        else:
            answer = client.post(url, data=json.dumps(value))
            if pruned(value) is not None:
                model = model_set(model, (*path, answer.get_json()["name"]), value)
        assert answer.status_code == 200, (kind, path, value, answer.get_json())
        assert client.get("/.json").get_json() == model, (kind, path, value)
        assert max(stored_things(redis_server).values(), default=0) <= SMALL // 2


@pytest.fixture
def default_fb(firebase: FirebaseServed) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=firebase.url, timeout=60) as client:
        yield client


def test_writes_of_more_things_than_a_batch_land_whole(
    default_fb: httpx.Client,
    firebase: FirebaseServed,  # noqa: F811
    redis_server: RedisServer | LocalCluster,
) -> None:
    # An import of 1,200 pushed messages (a PUT), and 1,200 more as a multi-path PATCH inside
    # the room's thing: more things than one transaction takes (placement.BATCH), all written.
    first = {push_id(): {"n": n} for n in range(1200)}
    assert default_fb.put("/rooms/r1/messages.json", json=first).status_code == 200
    assert default_fb.put("/rooms/r1/title.json", json="general").status_code == 200
    more = {push_id(): {"n": n} for n in range(1200, 2400)}
    patch = {f"messages/{name}": value for name, value in more.items()}
    assert default_fb.patch("/rooms/r1.json", json=patch).status_code == 200
    assert default_fb.get("/rooms/r1.json").json() == {
        "title": "general",
        "messages": {**first, **more},
    }
    name = next(iter(more))
    assert httpx.get(f"{firebase.native.url}/rooms/r1/messages/{name}").json()["n"] == 1200
    assert len(stored_things(redis_server)) == 2401

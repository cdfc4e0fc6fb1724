"""Firebase streams over HTTP (`Accept: text/event-stream` on `GET <path>.json`) from
`thingstash serve --firebase-port`: the real SDK's `Reference.listen`, raw httpx for resuming
with `Last-Event-ID`, keep-alives and `cancel`, and both faces seeing each other's writes; on
one Redis and on the cluster."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import firebase_admin
import httpx
import orjson
import pytest
import redis
from firebase_admin import db

from thingstash.core import keys
from thingstash.store import open_store

from ..support.clusters import LocalCluster
from ..support.fbserve import FirebaseServed, start_firebase
from ..support.servers import RedisServer

pytestmark = pytest.mark.cluster

_names = itertools.count()


# A namespace of their own: the keys a test here makes close no other test's store.
PREFIX = "fbstreams"


@pytest.fixture(scope="module")
def served(redis_server: RedisServer | LocalCluster) -> Iterator[FirebaseServed]:
    """A server of its own: keep-alives every second, and a store that gets keys (last)."""
    started = start_firebase(
        redis_server.url,
        {"THINGSTASH_FIREBASE_KEEPALIVE": "1", "THINGSTASH_KEY_PREFIX": PREFIX},
    )
    yield started
    started.native.stop()


@pytest.fixture
def fb(served: FirebaseServed, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        deadline = time.monotonic() + 5  # a store just emptied of keys: open again within 1 s
        while client.get("/.json", params={"shallow": "true"}).status_code == 401:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield client


@pytest.fixture
def native(served: FirebaseServed, fb: httpx.Client) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.native.url, timeout=10) as client:
        yield client


@dataclass(frozen=True)
class Event:
    kind: str
    id: str | None
    data: Any


class Events:
    """The events of a Server-Sent Events response, one at a time (a read timeout, not a hang,
    when none comes)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.chunks = response.iter_raw()
        self.buffer = b""

    def next(self) -> Event:
        while b"\n\n" not in self.buffer:
            self.buffer += next(self.chunks)
        raw, self.buffer = self.buffer.split(b"\n\n", 1)
        fields = dict(line.split(": ", 1) for line in raw.decode().split("\n"))
        return Event(fields["event"], fields.get("id"), orjson.loads(fields["data"]))

    def change(self) -> Event:
        """The next event other than a keep-alive."""
        while True:
            event = self.next()
            if event.kind != "keep-alive":
                return event

    def ended(self) -> bool:
        try:
            self.buffer += next(self.chunks)
        except StopIteration:
            return self.buffer == b""
        return False


@contextmanager
def listening(
    client: httpx.Client, path: str, last_event_id: str | None = None, **params: str
) -> Iterator[Events]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with client.stream("GET", f"/{path}.json", headers=headers, params=params) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response)


def newer(first: str | None, second: str | None) -> bool:
    assert first is not None and second is not None
    return tuple(map(int, second.split("-"))) > tuple(map(int, first.split("-")))


# -- raw HTTP ------------------------------------------------------------------------------------


def test_a_stream_opens_with_the_value_then_puts_changes_from_both_faces(
    fb: httpx.Client, native: httpx.Client
) -> None:
    fb.put("/rooms/kitchen.json", json={"t": 20})  # a thing each (none above them)
    fb.put("/rooms/hall.json", json={"t": 18})
    with listening(fb, "rooms") as events:
        first = events.change()
        assert (first.kind, first.data) == (
            "put",
            {"path": "/", "data": {"kitchen": {"t": 20}, "hall": {"t": 18}}},
        )
        # A native write of a thing below: a put where it is, its value whole.
        assert native.put("/rooms/attic", json={"t": 9}).status_code == 201
        attic = events.change()
        assert (attic.kind, attic.data) == ("put", {"path": "/attic", "data": {"t": 9}})
        assert newer(first.id, attic.id)
        # A Firebase write inside a thing: its thing's value.
        fb.put("/rooms/kitchen/t.json", json=21)
        assert events.change().data == {"path": "/kitchen", "data": {"t": 21}}
        # A native delete: null there.
        assert native.delete("/rooms/hall").status_code == 204
        assert events.change().data == {"path": "/hall", "data": None}
        # Elsewhere: nothing (the next event is the one after it).
        native.put("/roomsX/a", json={"t": 1})
        fb.put("/rooms/attic/t.json", json=10)
        assert events.change().data == {"path": "/attic", "data": {"t": 10}}
        # A write at the location itself makes it one thing, and the things below go.
        fb.put("/rooms.json", json={"cellar": {"t": 5}})
        shown = events.change()
        while shown.data["path"] != "/" or shown.data["data"] != {"cellar": {"t": 5}}:
            shown = events.change()  # the removals below may come after it


def test_a_stream_inside_a_thing_gets_its_whole_value_when_the_thing_changes(
    fb: httpx.Client, native: httpx.Client
) -> None:
    native.put("/dev/cfg", json={"net": {"ssid": "home", "dhcp": True}, "led": 1})
    with listening(fb, "dev/cfg/net") as events:
        assert events.change().data == {"path": "/", "data": {"ssid": "home", "dhcp": True}}
        native.patch("/dev/cfg", json={"net": {"dhcp": False}})
        assert events.change().data == {"path": "/", "data": {"ssid": "home", "dhcp": False}}
        native.delete("/dev/cfg")
        assert events.change().data == {"path": "/", "data": None}


def test_a_multi_path_update_reaches_a_stream(fb: httpx.Client) -> None:
    fb.put("/team/ann.json", json={"score": 1})  # two things: the update spans both
    fb.put("/team/bob.json", json={"score": 2})
    with listening(fb, "team") as events:
        events.change()
        fb.patch("/team.json", json={"ann/score": 5, "bob/score": 6, "cy": {"score": 7}})
        shown: dict[str, Any] = {}
        while len(shown) < 3:
            event = events.change()
            shown[event.data["path"]] = event.data["data"]
    assert shown == {"/ann": {"score": 5}, "/bob": {"score": 6}, "/cy": {"score": 7}}


def test_resuming_with_last_event_id_misses_nothing_and_repeats_nothing(
    fb: httpx.Client, native: httpx.Client
) -> None:
    fb.put("/log/a.json", json={"n": 1})
    with listening(fb, "log") as events:
        last = events.change().id
    # Changes while the client was away, through both faces, and one elsewhere.
    native.put("/log/b", json={"n": 2})
    native.put("/elsewhere", json={"n": 0})
    fb.put("/log/a/n.json", json=3)
    native.put("/log/c", json={"n": 4})
    with listening(fb, "log", last) as events:
        missed = [events.change() for _ in range(3)]
        assert [e.data for e in missed] == [
            {"path": "/b", "data": {"n": 2}},
            {"path": "/a", "data": {"n": 3}},
            {"path": "/c", "data": {"n": 4}},
        ]
        assert newer(last, missed[0].id)
        assert newer(missed[0].id, missed[1].id) and newer(missed[1].id, missed[2].id)
        # Then live, as any stream.
        native.delete("/log/b")
        assert events.change().data == {"path": "/b", "data": None}
    # From the last id seen: nothing missed, so nothing at all but keep-alives.
    with listening(fb, "log", missed[-1].id) as events:
        native.put("/log/d", json={"n": 5})
        event = events.change()
        assert event.data == {"path": "/b", "data": None}  # the delete came after missed[-1]
        assert events.change().data == {"path": "/d", "data": {"n": 5}}


def test_resuming_from_beyond_the_feed_gets_the_whole_value(fb: httpx.Client) -> None:
    fb.put("/old.json", json={"x": 1})
    with listening(fb, "old", "1-0") as events:
        event = events.change()
        assert (event.kind, event.data) == ("put", {"path": "/", "data": {"x": 1}})


def test_a_malformed_last_event_id_is_400(fb: httpx.Client) -> None:
    response = fb.get(
        "/x.json", headers={"Accept": "text/event-stream", "Last-Event-ID": "yesterday"}
    )
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["error"]


def test_a_quiet_stream_gets_keep_alives(fb: httpx.Client) -> None:
    with listening(fb, "quiet") as events:
        assert events.next().data == {"path": "/", "data": None}
        started = time.monotonic()
        keep_alive = events.next()
        assert (keep_alive.kind, keep_alive.data) == ("keep-alive", None)
        assert events.next().kind == "keep-alive"
        assert time.monotonic() - started < 8  # every second here (Firebase's 30 s by default)


# -- the SDK ---------------------------------------------------------------------------------------


@pytest.fixture
def sdk(
    served: FirebaseServed, fb: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> Iterator[firebase_admin.App]:
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", served.host)
    app = firebase_admin.initialize_app(
        None, {"databaseURL": "https://demo-thingstash.firebaseio.com"}, name=f"s{next(_names)}"
    )
    yield app
    firebase_admin.delete_app(app)


@contextmanager
def sdk_listening(ref: db.Reference) -> Iterator[queue.Queue[tuple[str, str, Any]]]:
    """`ref.listen` with each event as (type, path, data) in a queue. The SDK's close() shuts
    the response under its reader thread, which then dies of an AttributeError in http.client
    (the SDK's own race): an error of that thread after close is expected, any before fails."""
    got: queue.Queue[tuple[str, str, Any]] = queue.Queue()
    failures: list[tuple[bool, BaseException | None]] = []
    closing = threading.Event()
    previous = threading.excepthook
    threading.excepthook = lambda args: failures.append((closing.is_set(), args.exc_value))
    try:
        registration = ref.listen(lambda event: got.put((event.event_type, event.path, event.data)))
        try:
            yield got
        finally:
            closing.set()
            registration.close()
    finally:
        threading.excepthook = previous
    assert [error for after_close, error in failures if not after_close] == []


def test_the_sdk_listens_to_changes_from_both_faces(
    sdk: firebase_admin.App, native: httpx.Client
) -> None:
    ref = db.reference("listen/sensors", sdk)
    ref.child("s1").set({"temp": 20})
    with sdk_listening(ref) as got:
        assert got.get(timeout=10) == ("put", "/", {"s1": {"temp": 20}})
        ref.child("s2").set({"temp": 30})
        assert got.get(timeout=10) == ("put", "/s2", {"temp": 30})
        native.put("/listen/sensors/s3", json={"temp": 40})  # a native write, seen by the SDK
        assert got.get(timeout=10) == ("put", "/s3", {"temp": 40})
        ref.child("s1").delete()
        assert got.get(timeout=10) == ("put", "/s1", None)
        ref.update({"s2/temp": 31, "s3/temp": 41})
        updates = [got.get(timeout=10)[1:] for _ in range(2)]
        assert sorted(updates) == [("/s2", {"temp": 31}), ("/s3", {"temp": 41})]
        time.sleep(2.5)  # keep-alives every second meanwhile: not events to the SDK
        assert got.empty()


def test_the_sdk_sees_a_push_below_it(sdk: firebase_admin.App) -> None:
    """The upstream suite's listen test: a push() below the listened location."""
    python = db.reference("_adminsdk/python", sdk)
    with sdk_listening(python) as got:
        assert got.get(timeout=10) == ("put", "/", None)
        pushed = python.child("users").push()
        assert pushed.get() == ""
        assert got.get(timeout=10) == ("put", "/users/" + pushed.key, "")


def test_a_native_watch_sees_firebase_writes(sdk: firebase_admin.App, native: httpx.Client) -> None:
    headers = {"Accept": "text/event-stream"}
    with native.stream("GET", "/fbw/", headers=headers) as response:
        chunks = response.iter_raw()
        buffer = b""

        def frame() -> tuple[str, dict[str, Any]]:
            nonlocal buffer
            while True:
                while b"\n\n" not in buffer:
                    buffer += next(chunks)
                raw, buffer = buffer.split(b"\n\n", 1)
                if not raw.startswith(b":"):  # comments
                    fields = dict(line.split(": ", 1) for line in raw.decode().split("\n"))
                    return fields["event"], orjson.loads(fields["data"])

        ref = db.reference("fbw", sdk)
        ref.child("a").set({"x": 1})
        kind, data = frame()
        assert (kind, data["path"], data["thing"]["x"]) == ("put", "fbw/a", 1)
        ref.child("a/x").set(2)  # inside the thing: an update of it
        kind, data = frame()
        assert (data["path"], data["thing"]["x"]) == ("fbw/a", 2)
        ref.child("a").delete()
        assert frame() == ("delete", {"path": "fbw/a", "thing": None})


# -- keys (last: the store gets keys) --------------------------------------------------------------


def test_a_revoked_key_cancels_its_stream(
    fb: httpx.Client, native: httpx.Client, redis_server: RedisServer | LocalCluster
) -> None:
    store = open_store(redis_server.url, PREFIX)
    try:
        reader_record, reader = keys.create_key(store, "read")
        _, writer = keys.create_key(store, "write")
        deadline = time.monotonic() + 5  # the open-store answer is kept a second per process
        while fb.get("/x.json").status_code != 401:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with listening(fb, "watched", auth=reader) as events:
            assert events.change().data == {"path": "/", "data": None}
            fb.put("/watched/a.json", params={"auth": writer}, json=1)
            assert events.change().data == {"path": "/a", "data": 1}
            assert store.revoke_key(reader_record.id)
            cancel = events.change()  # at the next keep-alive or change, within a few seconds
            assert (cancel.kind, cancel.data) == ("cancel", "Permission denied")
            assert events.ended()
        refused = fb.get("/watched.json", params={"auth": reader})
        assert refused.status_code == 401
    finally:
        store.close()

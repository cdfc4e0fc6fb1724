"""Watch streams (Server-Sent Events) through the Flask test client against a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core.config import Settings
from thingstash.web.app import create_app

from ..support.servers import RedisServer

pytestmark = pytest.mark.cluster


@dataclass
class Frame:
    kind: str
    id: str | None
    data: dict[str, Any] | None
    comment: str | None = None


class Stream:
    """Reads SSE frames from a streamed response, one frame at a time."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = b""

    def frame(self) -> Frame:
        while b"\n\n" not in self.buffer:
            self.buffer += next(self.chunks)
        raw, self.buffer = self.buffer.split(b"\n\n", 1)
        fields: dict[str, str] = {}
        for line in raw.decode().split("\n"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "" in fields and len(fields) == 1:
            return Frame("comment", None, None, fields[""])
        return Frame(fields["event"], fields["id"], orjson.loads(fields["data"]))

    def event(self) -> Frame:
        """The next event, skipping comments."""
        while True:
            frame = self.frame()
            if frame.kind != "comment":
                return frame


@contextmanager
def watching(client: FlaskClient, path: str, last_event_id: str | None = None) -> Iterator[Stream]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    response = client.get("/" + path, headers=headers, buffered=False)
    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "text/event-stream"
    stream = Stream(iter(response.response))
    assert stream.frame().kind == "comment"  # subscribed from here on
    try:
        yield stream
    finally:
        response.close()


def number(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def test_thing_watch_starts_with_its_state_then_follows_changes(client: FlaskClient) -> None:
    with watching(client, "w/t") as stream:
        first = stream.event()
        assert first.kind == "put"
        assert first.data == {"path": "w/t", "thing": None}
        client.put("/w/t", json={"a": 1})
        client.put("/w/other", json={"b": 1})
        client.patch("/w/t", json={"b": 2})
        client.delete("/w/t")
        events = [stream.event() for _ in range(3)]
    assert [e.kind for e in events] == ["put", "patch", "delete"]
    assert events[0].data["thing"]["a"] == 1
    assert events[0].data["thing"]["ttl"] == 31104000
    assert events[1].data == {"path": "w/t", "thing": {**events[1].data["thing"], "a": 1, "b": 2}}
    assert events[2].data == {"path": "w/t", "thing": None}
    ids = [number(e.id) for e in [first, *events]]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_folder_watch_sees_any_depth_below_and_nothing_else(client: FlaskClient) -> None:
    with watching(client, "f/") as stream:
        for path in ["f/a", "g/x", "f2/y", "f/b/c/d", "f/b/e"]:
            client.put("/" + path, json={})
        events = [stream.event() for _ in range(3)]
    assert [e.data["path"] for e in events] == ["f/a", "f/b/c/d", "f/b/e"]


def test_root_watch_sees_everything(client: FlaskClient) -> None:
    with watching(client, "") as stream:
        client.put("/a", json={})
        client.put("/b/c", json={})
        assert [stream.event().data["path"] for _ in range(2)] == ["a", "b/c"]


def test_list_then_watch_from_the_listings_position_misses_nothing(client: FlaskClient) -> None:
    client.put("/l/a", json={"n": 1})
    position = client.get("/l/").headers["Last-Event-ID"]
    client.put("/l/b", json={"n": 2})  # after the listing, before the watch
    with watching(client, "l/", position) as stream:
        client.put("/l/c", json={"n": 3})
        assert [stream.event().data["path"] for _ in range(2)] == ["l/b", "l/c"]


def test_resume_gets_what_was_missed_in_order(client: FlaskClient) -> None:
    with watching(client, "r/") as stream:
        client.put("/r/a", json={"n": 1})
        last = stream.event().id
    for n in range(2, 6):
        client.put("/r/a", json={"n": n})
    client.delete("/r/a")
    with watching(client, "r/", last) as stream:
        client.put("/r/b", json={"n": 6})
        events = [stream.event() for _ in range(6)]
    assert [e.kind for e in events] == ["put"] * 4 + ["delete", "put"]
    assert [e.data["thing"]["n"] for e in events[:4]] == [2, 3, 4, 5]
    assert events[-1].data["path"] == "r/b"


def test_resume_of_a_thing_sends_no_snapshot(client: FlaskClient) -> None:
    client.put("/rt", json={"n": 1})
    with watching(client, "rt") as stream:
        last = stream.event().id
    client.put("/rt", json={"n": 2})
    with watching(client, "rt", last) as stream:
        event = stream.event()
    assert (event.kind, event.data["thing"]["n"]) == ("put", 2)


def test_expire_event(client: FlaskClient) -> None:
    with watching(client, "x/") as stream:
        client.put("/x/soon", json={}, query_string={"ttl": 1})
        assert stream.event().kind == "put"
        event = stream.event()  # Redis expires it by itself, nobody touches it
    assert event.kind == "expire"
    assert event.data == {"path": "x/soon", "thing": None}


def test_many_watchers_each_see_every_event(client: FlaskClient) -> None:
    app: Flask = client.application
    streams = []
    responses = []
    for i in range(60):
        path = "m/" if i % 2 else "m/t"
        response = app.test_client().get(
            "/" + path, headers={"Accept": "text/event-stream"}, buffered=False
        )
        responses.append(response)
        stream = Stream(iter(response.response))
        stream.frame()
        if path == "m/t":
            stream.event()  # the opening state
        streams.append(stream)
    try:
        for n in range(20):
            client.put("/m/t", json={"n": n})
        for stream in streams:
            assert [stream.event().data["thing"]["n"] for _ in range(20)] == list(range(20))
        assert app.extensions["thingstash.live"].hub.watchers == 60
    finally:
        for response in responses:
            response.close()
    assert app.extensions["thingstash.live"].hub.watchers == 0


def test_a_slow_watcher_catches_up_from_the_stream(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thingstash.live import hub as watch

    monkeypatch.setattr(watch, "LOG_SIZE", 3)
    with watching(client, "s/") as stream:
        for n in range(30):
            client.put("/s/a", json={"n": n})
        assert [stream.event().data["thing"]["n"] for _ in range(30)] == list(range(30))


@pytest.mark.parametrize("bad", ["abc", "1-2-3", "-1-0", "1.5-0", "99999999999999999999999-0"])
def test_malformed_last_event_id_is_400(client: FlaskClient, bad: str) -> None:
    response = client.get("/a/", headers={"Accept": "text/event-stream", "Last-Event-ID": bad})
    assert response.status_code == 400
    assert response.json["title"] == "bad Last-Event-ID"


def test_an_id_never_issued_gets_a_reset(client: FlaskClient) -> None:
    client.put("/n/t", json={"v": 1})
    with watching(client, "n/t", "99999999999999-0") as stream:
        reset = stream.event()
        assert reset.kind == "reset"
        assert reset.data == {"path": "n/t", "thing": {**reset.data["thing"], "v": 1}}
        client.put("/n/t", json={"v": 2})
        assert stream.event().data["thing"]["v"] == 2


@pytest.fixture
def short_feed_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(feed_retention=10)


def test_reset_when_asked_for_more_than_is_retained(short_feed_app: Flask) -> None:
    client = short_feed_app.test_client()
    client.put("/old/t", json={"v": 0})
    position = client.get("/old/").headers["Last-Event-ID"]
    store = short_feed_app.extensions["thingstash.store"]
    for n in range(300):  # trimming works in whole stream nodes (100 entries)
        store.put("old/t", b'{"v":%d}' % n, 60)
    with watching(client, "old/", position) as stream:
        reset = stream.event()
        assert reset.kind == "reset"
        assert reset.data == {"path": "old/"}
        client.put("/old/u", json={"v": "after"})
        event = stream.event()
    assert event.data["path"] == "old/u"
    assert number(event.id) > number(reset.id)


def test_head_of_a_stream_does_not_hang(client: FlaskClient) -> None:
    response = client.head("/a/", headers={"Accept": "text/event-stream"})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"


def test_expiry_notifications_are_turned_on_when_allowed(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--notify-keyspace-events", "")
    server.start()
    try:
        app = create_app(Settings(redis_url=server.url))
        try:
            raw = redis.Redis(port=server.port)
            flags = raw.config_get("notify-keyspace-events")["notify-keyspace-events"]
            assert set(flags.decode() if isinstance(flags, bytes) else flags) >= {"E", "x"}
            raw.close()
            assert app.test_client().get("/_health").json["expiry_events"] is True
        finally:
            app.extensions["thingstash.live"].close()
            app.extensions["thingstash.store"].close()
    finally:
        server.stop()


def test_health_says_when_expiry_events_cannot_be_heard(tmp_path: Path) -> None:
    # A managed Redis that forbids CONFIG and has notifications off.
    server = RedisServer(tmp_path, "--notify-keyspace-events", "", "--rename-command", "CONFIG", "")
    server.start()
    try:
        app = create_app(Settings(redis_url=server.url))
        try:
            health = app.test_client().get("/_health")
            assert health.status_code == 200
            assert health.json["expiry_events"] is False
        finally:
            app.extensions["thingstash.live"].close()
            app.extensions["thingstash.store"].close()
    finally:
        server.stop()

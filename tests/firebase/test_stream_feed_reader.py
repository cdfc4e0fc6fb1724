"""Firebase streams over a real store, below HTTP: the feed reader's tree subscriptions and the
stream's frames (web.firebase.stream), on one Redis and on the cluster."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import orjson
import pytest
import redis

from thingstash.core.store import Store
from thingstash.firebase.errors import TooMuchToRead
from thingstash.firebase.mapping import Location
from thingstash.firebase.streaming import KEEPALIVE_FRAME, event_location, location_of
from thingstash.live.hub import Hub
from thingstash.store import open_store
from thingstash.web.firebase import stream

from ..support.clusters import LocalCluster
from ..support.servers import RedisServer

pytestmark = pytest.mark.cluster


@pytest.fixture
def store(redis_server: RedisServer | LocalCluster, redis_client: redis.Redis) -> Iterator[Store]:
    opened = open_store(redis_server.url, "fbstream")
    yield opened
    opened.close()


@pytest.fixture
def hub(store: Store) -> Iterator[Hub]:
    the_hub = Hub(store)
    yield the_hub
    the_hub.close()


def put(store: Store, path: str, value: object) -> str:
    result = store.put(path, orjson.dumps(value), 60)
    assert result.event_id is not None
    return result.event_id


def delivered_paths(hub: Hub, path: str, writes: Callable[[], None]) -> list[str]:
    subscription = hub.subscribe(path, False, tree=True)
    try:
        writes()
        paths: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            taken = subscription.take(0.3)
            if taken is None:
                if paths:
                    break
                continue
            paths += [delivery.event.path for delivery in taken[0]]
        return paths
    finally:
        hub.unsubscribe(subscription)


def test_a_tree_gets_the_thing_there_the_things_below_and_above(hub: Hub, store: Store) -> None:
    def writes() -> None:
        for path in ("a/b", "a/b/c", "a", "a/bc", "x", "a/c/d", "a/b/c/d/e"):
            put(store, path, {})

    assert delivered_paths(hub, "a/b", writes) == ["a/b", "a/b/c", "a", "a/b/c/d/e"]
    assert delivered_paths(hub, "", writes) == [
        "a/b",
        "a/b/c",
        "a",
        "a/bc",
        "x",
        "a/c/d",
        "a/b/c/d/e",
    ]
    # Watches of other kinds at the same path are not affected by a tree's.
    assert hub.watchers == 0


def test_two_trees_share_nothing_but_the_reader(hub: Hub, store: Store) -> None:
    inner = hub.subscribe("a/b/c", False, tree=True)
    outer = hub.subscribe("a", False, tree=True)
    put(store, "a/b", {})
    put(store, "z", {})
    for subscription in (inner, outer):
        taken = subscription.take(10)
        assert taken is not None
        assert [delivery.event.path for delivery in taken[0]] == ["a/b"]
    hub.unsubscribe(inner)
    put(store, "a/b/c/d", {})
    taken = outer.take(10)
    assert taken is not None and [d.event.path for d in taken[0]] == ["a/b/c/d"]
    hub.unsubscribe(outer)
    assert hub.watchers == 0


# -- the stream's frames -------------------------------------------------------------------------


def thing_value(store: Store) -> stream.Read:
    """A stand-in for the Firebase face's value(L) where only whole things are involved."""

    def read(location: Location) -> bytes:
        thing = store.get("/".join(location))
        return thing.body if thing is not None else b"null"

    return read


def parsed(frame: bytes) -> list[tuple[str, str | None, object]]:
    """(event, id, data) of each event in a chunk of the stream."""
    events = []
    for block in frame.decode().split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], fields.get("id"), orjson.loads(fields["data"])))
    return events


def next_events(frames: Iterator[bytes], count: int) -> list[tuple[str, str | None, object]]:
    """The next `count` events other than keep-alives."""
    got: list[tuple[str, str | None, object]] = []
    deadline = time.monotonic() + 10
    while len(got) < count:
        assert time.monotonic() < deadline, got
        got += [event for event in parsed(next(frames)) if event[0] != "keep-alive"]
    return got


def test_a_stream_opens_with_the_value_then_puts_each_change(hub: Hub, store: Store) -> None:
    put(store, "rooms/kitchen", {"t": 20})
    read = thing_value(store)
    opened = stream.open_stream(hub, ("rooms", "kitchen"), read, None)
    frames = stream.events(hub, opened, ("rooms", "kitchen"), read, lambda: True, 0.2)
    try:
        [(kind, first_id, data)] = next_events(frames, 1)
        assert (kind, data) == ("put", {"path": "/", "data": {"t": 20}})
        written = put(store, "rooms/kitchen", {"t": 21})
        assert next_events(frames, 1) == [("put", written, {"path": "/", "data": {"t": 21}})]
        store.delete("rooms/kitchen")
        [(kind, _, data)] = next_events(frames, 1)
        assert (kind, data) == ("put", {"path": "/", "data": None})
    finally:
        frames.close()
    assert hub.watchers == 0


def test_a_quiet_stream_sends_keep_alives(hub: Hub, store: Store) -> None:
    read = thing_value(store)
    opened = stream.open_stream(hub, ("q",), read, None)
    frames = stream.events(hub, opened, ("q",), read, lambda: True, 0.1)
    try:
        next(frames)  # the opening put
        started = time.monotonic()
        assert next(frames) == KEEPALIVE_FRAME
        assert next(frames) == KEEPALIVE_FRAME
        assert time.monotonic() - started < 5
    finally:
        frames.close()


def test_a_revoked_stream_is_cancelled_and_ends(hub: Hub, store: Store) -> None:
    read = thing_value(store)
    still = [True]
    opened = stream.open_stream(hub, ("k",), read, None)
    frames = stream.events(hub, opened, ("k",), read, lambda: still[0], 0.1)
    next(frames)
    still[0] = False
    put(store, "k/x", {})
    assert next(frames) == b'event: cancel\ndata: "Permission denied"\n\n'
    with pytest.raises(StopIteration):
        next(frames)
    assert hub.watchers == 0


def test_a_resumed_stream_gets_what_it_missed_and_nothing_else(hub: Hub, store: Store) -> None:
    read = thing_value(store)
    last_seen = put(store, "log/a", {"n": 1})
    put(store, "elsewhere", {"n": 0})
    second = put(store, "log/b", {"n": 2})
    third = put(store, "log/a", {"n": 3})
    opened = stream.open_stream(hub, ("log",), read, last_seen)
    frames = stream.events(hub, opened, ("log",), read, lambda: True, 0.2)
    try:
        assert next_events(frames, 2) == [
            ("put", second, {"path": "/b", "data": {"n": 2}}),
            ("put", third, {"path": "/a", "data": {"n": 3}}),
        ]
        fourth = put(store, "log/b", {"n": 4})
        assert next_events(frames, 1) == [("put", fourth, {"path": "/b", "data": {"n": 4}})]
    finally:
        frames.close()


def test_a_resume_from_beyond_the_feed_gets_the_whole_value(hub: Hub, store: Store) -> None:
    read = thing_value(store)
    put(store, "gone", {"n": 1})
    opened = stream.open_stream(hub, ("gone",), read, "1-0")  # long trimmed (never issued)
    frames = stream.events(hub, opened, ("gone",), read, lambda: True, 0.2)
    try:
        [(kind, _, data)] = next_events(frames, 1)
        assert (kind, data) == ("put", {"path": "/", "data": {"n": 1}})
    finally:
        frames.close()


def test_a_value_grown_past_what_a_read_may_take_cancels_the_stream(hub: Hub, store: Store) -> None:
    read = thing_value(store)

    def capped(location: Location) -> bytes:
        value = read(location)
        if len(value) > 50:
            raise TooMuchToRead("Data requested exceeds the maximum size")
        return value

    opened = stream.open_stream(hub, ("big",), capped, None)
    frames = stream.events(hub, opened, ("big",), capped, lambda: True, 0.2)
    next(frames)
    put(store, "big", {"text": "x" * 100})
    assert next_events(frames, 1) == [("cancel", None, "Data requested exceeds the maximum size")]
    with pytest.raises(StopIteration):
        next(frames)
    assert hub.watchers == 0


def test_every_tree_gets_exactly_the_changes_its_stream_shows(hub: Hub) -> None:
    """Over every path of up to three names from a small alphabet (names that start alike
    included): the reader hands a thing's event to a tree exactly when the stream's mapping
    (firebase.streaming.event_location) shows it there."""
    names = ("a", "b", "ab")
    paths = [
        "/".join(parts) for depth in (1, 2, 3) for parts in itertools.product(names, repeat=depth)
    ]
    subscriptions = {tree: hub.subscribe(tree, False, tree=True) for tree in ["", *paths]}
    try:
        groups = {subscription.group: tree for tree, subscription in subscriptions.items()}
        for path in paths:
            reached = {groups[g] for g in hub._targets(path) if g in groups}
            shown = {
                tree
                for tree in subscriptions
                if event_location(location_of(tree), location_of(path)) is not None
            }
            assert reached == shown, path
    finally:
        for subscription in subscriptions.values():
            hub.unsubscribe(subscription)
    assert hub.watchers == 0
    assert not hub._trees and not hub._trees_below  # nothing left behind

"""Expiry reaches listings and watchers within ~2 s of a thing's end, whatever the store's size.

Redis finds expired keys at its own pace (a few hundred a second when most keys are long-lived),
so these tests store 100,000 long-lived things beside the short ones, as issue 12 found it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core.store import Store
from thingstash.store import open_store

from ..support.servers import RedisServer
from ..web.test_watch import Stream, watching

pytestmark = pytest.mark.cluster

LONG_LIVED = 100_000
SHORT_TTLS = (1, 2, 3)
SHORT_EACH = 300  # things per lifetime
REWRITTEN = 20
BOUND_S = 2.0  # from a thing's end to its `expire` event, and to its folder leaving the listing


def store_long_lived(store: Store) -> None:
    store.put_many(
        [(f"long/{i // 1000}/{i % 1000}", b'{"v":1}', 3600) for i in range(LONG_LIVED)],
        chunk=1000,
    )


def write_short_lived(client: FlaskClient, store: Store) -> tuple[dict[str, float], list[str]]:
    """SHORT_EACH things of each lifetime in SHORT_TTLS, and REWRITTEN things given a second,
    long lifetime before the end of their first. Returns when each short one ends (taken
    before it was written, so never later than its real end: delays measured from it are
    never too small) and the rewritten ones' paths."""
    ends: dict[str, float] = {}
    for ttl in SHORT_TTLS:
        paths = [f"short/{ttl}/{i}" for i in range(SHORT_EACH)]
        started = time.monotonic()
        store.put_many([(path, b'{"v":1}', ttl) for path in paths])
        ends.update(dict.fromkeys(paths, started + ttl))
    again = [f"short/again/{i}" for i in range(REWRITTEN)]
    for path in again:
        assert client.put(f"/{path}?ttl=1", json={"v": 1}).status_code == 201
    time.sleep(0.5)
    for path in again:
        assert client.put(f"/{path}?ttl=60", json={"v": 2}).status_code == 200
    return ends, again


def when_folders_leave(client: FlaskClient, until: Callable[[dict[str, float]], bool]) -> dict:
    """When each short/{ttl}/ folder left the listing of short/, polled until `until` says
    enough. Only short/ is listed: looking at the things themselves would repair the index."""
    gone: dict[str, float] = {}
    while not until(gone):
        listed = set(client.get("/short/").json["folders"])
        for ttl in SHORT_TTLS:
            if f"short/{ttl}/" not in listed:
                gone.setdefault(f"short/{ttl}/", time.monotonic())
        time.sleep(0.05)
    return gone


def test_expiries_reach_listings_and_watchers_within_2s_among_100000_things(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(keepalive=0.2)  # keep-alives let the reading thread see it may stop
    store: Store = app.extensions["thingstash.store"]
    store_long_lived(store)
    client = app.test_client()
    arrivals: dict[str, float] = {}  # path -> when its first `expire` event came
    others: list[tuple[str, str]] = []  # every other event of the rewritten things
    duplicates: list[str] = []
    done = threading.Event()

    def read(stream: Stream) -> None:
        while not done.is_set():
            frame = stream.frame()
            if frame.kind == "expire":
                if frame.data["path"] in arrivals:
                    duplicates.append(frame.data["path"])
                arrivals.setdefault(frame.data["path"], time.monotonic())
            elif frame.kind != "comment" and frame.data["path"].startswith("short/again/"):
                others.append((frame.kind, frame.data["path"]))

    with watching(client, "short/") as stream:
        reader = threading.Thread(target=read, args=(stream,), daemon=True)
        reader.start()
        try:
            ends, again = write_short_lived(client, store)
            deadline = max(ends.values()) + BOUND_S + 3
            gone = when_folders_leave(
                client,
                lambda gone: (
                    time.monotonic() > deadline
                    or (len(gone) == len(SHORT_TTLS) and len(arrivals) == len(ends))
                ),
            )
            time.sleep(0.5)  # a second `expire` event of a thing would come by now
        finally:
            done.set()
            reader.join(5)

    late = {path: arrivals.get(path, float("inf")) - end for path, end in ends.items()}
    worst = max(late.values())
    assert worst < BOUND_S, f"{sum(d >= BOUND_S for d in late.values())} late, worst {worst:.2f} s"
    for ttl in SHORT_TTLS:
        last_end = max(end for path, end in ends.items() if path.startswith(f"short/{ttl}/"))
        assert gone[f"short/{ttl}/"] - last_end < BOUND_S
    assert set(arrivals) == set(ends)  # the rewritten things did not expire
    assert duplicates == []
    assert others == [("put", path) for path in again] * 2
    assert client.get("/short/").json["folders"] == ["short/again/"]
    assert all(client.get(f"/{path}").status_code == 200 for path in again)
    # Their memory is freed: only the long-lived and the rewritten things are left in Redis.
    assert store.approximate_things() == LONG_LIVED + REWRITTEN


def test_two_reapers_at_once_give_one_expire_event_each(redis_server: RedisServer) -> None:
    # A namespace of their own: no other process of the session reaps there.
    stores = [open_store(redis_server.url, "pair"), open_store(redis_server.url, "pair")]
    try:
        first = stores[0]
        first.client.flushall()
        paths = [f"pair/{i // 50}/{i % 50}" for i in range(500)]
        first.put_many([(path, b"{}", 1) for path in paths])
        position = first.feed_position()
        time.sleep(1.2)
        together = threading.Barrier(2)

        def reap_all(store: Store) -> int:
            together.wait()
            logged, more = store.reap(batch=25)
            while more:
                count, more = store.reap(batch=25)
                logged += count
            return logged

        with ThreadPoolExecutor(2) as pool:
            logged = list(pool.map(reap_all, stores))
        events = first.feed_since(position, 5000).events
        expired = Counter(event.path for event in events if event.kind == "expire")
        assert expired == Counter(paths)  # each once, whichever reaper got to it
        assert sum(logged) == len(paths)
        assert first.list_folder("", None, 10).entries == []  # folders left empty pruned
    finally:
        for store in stores:
            store.close()


def test_a_thing_written_again_before_its_end_is_not_reaped(redis_server: RedisServer) -> None:
    store = open_store(redis_server.url, "again")
    try:
        store.client.flushall()
        store.put("again/x", b'{"v":1}', 1)
        store.put("again/x", b'{"v":2}', 60)
        position = store.feed_position()
        time.sleep(1.1)
        assert store.reap() == (0, False)
        thing = store.get("again/x")
        assert thing is not None and thing.body == b'{"v":2}'
        assert store.feed_since(position).events == []
        assert [entry.name for entry in store.list_folder("again/", None, 10).entries] == ["x"]
    finally:
        store.close()


def test_a_thing_the_schedule_does_not_hold_still_expires_through_notifications(
    make_app: Callable[..., Flask],
) -> None:
    """Things stored before the schedule existed have no entry in it: Redis's own expiry and its
    keyspace notification (the backstop) still make their `expire` event."""
    app = make_app(keepalive=0.2)
    store: Store = app.extensions["thingstash.store"]
    client = app.test_client()
    assert client.put("/old/x?ttl=1", json={"v": 1}).status_code == 201
    store.client.zrem(store.schedule_key("old/x"), "old/x")
    with watching(client, "old/") as stream:
        deadline = time.monotonic() + 10
        frame = stream.frame()
        while frame.kind == "comment" and time.monotonic() < deadline:
            frame = stream.frame()
    assert (frame.kind, frame.data and frame.data["path"]) == ("expire", "old/x")
    assert client.get("/").json["folders"] == []

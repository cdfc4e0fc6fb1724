"""Bounded Firebase reads (docs/firebase.md, the read cap): a read walks the tree level by level
in a few round trips, never one per folder; past its budget of folders or bytes it answers
Firebase's 400 at once, before doing the work; and what it answers is the tree both faces show.
On one Redis and on the cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingstash.core import documents
from thingstash.core.store import Store
from thingstash.firebase import mapping, reading
from thingstash.firebase.errors import Refusal
from thingstash.firebase.streaming import member_changes
from thingstash.store import open_store
from thingstash.web.firebase.errors import status_of

from ..support.clusters import LocalCluster
from ..support.fbserve import FirebaseServed, firebase, firebase_server, start_firebase  # noqa: F401
from ..support.servers import RedisServer
from .test_stream_over_http import listening

pytestmark = pytest.mark.cluster

TOO_LARGE = "Data requested exceeds the maximum size that can be accessed with a single request."


@pytest.fixture
def store(redis_server: RedisServer | LocalCluster, redis_client: redis.Redis) -> Iterator[Store]:
    """A store on the emptied Redis (redis_client flushes it first)."""
    opened = open_store(redis_server.url)
    yield opened
    opened.close()  # type: ignore[attr-defined]


def nodes(redis_server: RedisServer | LocalCluster) -> list[redis.Redis]:
    if isinstance(redis_server, LocalCluster):
        return [redis_server.node(port) for port in redis_server.primary_ports()]
    return [redis.Redis(port=redis_server.port)]


def load(redis_server: RedisServer | LocalCluster) -> tuple[int, int]:
    """(commands run, replies written) by the servers so far, over every primary: a reply
    written is one round trip of a client (a pipeline's replies go out together)."""
    commands = replies = 0
    for node in nodes(redis_server):
        stats = node.info("commandstats")
        commands += sum(int(entry["calls"]) for entry in stats.values())
        replies += int(node.info("stats")["total_writes_processed"])
        node.close()
    return commands, replies


def settle(redis_server: RedisServer | LocalCluster, quiet: int = 60, most_s: float = 10) -> None:
    """Wait (at most `most_s`) for a 0.2 s in which the servers run at most `quiet` commands."""
    deadline = time.monotonic() + most_s
    last, _ = load(redis_server)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now, _ = load(redis_server)
        if now - last <= quiet:
            return
        last = now


def commands_used(
    redis_server: RedisServer | LocalCluster, act: Callable[[], None]
) -> tuple[int, int]:
    """(Redis commands run while `act()` ran, net of what runs meanwhile anyway; that
    background, counted over as long with nothing done): on a cluster every process's reaper
    visits 16 shards twice a second. Waits first for the servers to go quiet: the work other
    processes do after a test's setup (indexing what it stored) is not `act`'s."""
    settle(redis_server)
    before, _ = load(redis_server)
    started = time.monotonic()
    act()
    after, _ = load(redis_server)
    took = time.monotonic() - started
    time.sleep(0.05)
    idle_before, _ = load(redis_server)
    time.sleep(took)
    idle, _ = load(redis_server)
    background = idle - idle_before
    return (after - before) - background, background


def put_things(store: Store, things: dict[str, Any]) -> None:
    store.put_many(
        [(path, documents.dumps(mapping.wrap(value)), 3600) for path, value in things.items()]
    )


# -- the work a read does ------------------------------------------------------------------------


def test_a_read_takes_a_few_round_trips_per_level(
    store: Store, redis_server: RedisServer | LocalCluster
) -> None:
    things = {f"lvl/f{i:03}/x": {"n": i} for i in range(300)}
    things.update({f"lvl/f{i:03}/g/y": i for i in range(0, 300, 3)})
    put_things(store, things)
    _, replies_before = load(redis_server)
    value = reading.read_value(store, ("lvl",))
    _, replies = load(redis_server)
    assert len(value) == 300
    assert value["f003"] == {"x": {"n": 3}, "g": {"y": 3}}
    assert value["f004"] == {"x": {"n": 4}}
    # Three levels below `lvl`, each a listing and a read of its things: a round trip or two
    # each on one Redis, per node on the cluster, not one per folder (400 folders).
    assert replies - replies_before <= 25 * len(nodes(redis_server)), replies - replies_before


def test_past_the_folder_budget_the_read_stops_before_reading_them(
    store: Store, redis_server: RedisServer | LocalCluster
) -> None:
    put_things(store, {f"wide/f{i:04}/x": i for i in range(1500)})
    put_things(store, {"wide/own": 1})
    # 100: the first listing (1,000 names) shows too many. 1,000: the second one does, and
    # the 1,000 sub-folders the first one showed are not read meanwhile: a level is listed
    # whole before the next one is read.
    for most in (100, 1000):
        budget = reading.Budget(reading.UNBOUNDED_BYTES, max_folders=most)
        commands_before, replies_before = load(redis_server)
        with pytest.raises(Refusal) as refused:
            reading.read_value(store, ("wide",), budget)
        commands, replies = load(redis_server)
        assert (status_of(refused.value), refused.value.message) == (400, TOO_LARGE)
        # Counted over the whole server: a cluster's background work (reapers, listeners) lands
        # in it too (46 once in CI, against 15 a node). Reading the sub-folders takes 1,000 or more.
        most_commands = 30 * len(nodes(redis_server))
        assert replies - replies_before <= most_commands, replies - replies_before
        assert commands - commands_before <= most_commands, commands - commands_before
    # Within the budget the same folder reads whole.
    assert len(reading.read_value(store, ("wide",), reading.Budget(1 << 30))) == 1501


def test_past_the_byte_budget_the_things_beyond_are_not_read(store: Store) -> None:
    put_things(store, {f"big/t{i:03}": {"text": "x" * 1000} for i in range(200)})
    budget = reading.Budget(20_000)
    with pytest.raises(Refusal) as refused:
        reading.read_value(store, ("big",), budget)
    assert refused.value.message == TOO_LARGE
    assert budget.used < 40_000  # stopped at the first batch that passed it
    assert len(reading.read_value(store, ("big",), reading.Budget(1 << 30))) == 200


# -- what a read answers -------------------------------------------------------------------------

keys = st.sampled_from(["a", "b", "c", "a!"])
scalars = st.one_of(st.integers(-5, 5), st.text("xy", max_size=2), st.booleans())
members = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.dictionaries(keys, inner, min_size=1, max_size=3), st.lists(inner, max_size=3)
    ),
    max_leaves=6,
)
trees = st.dictionaries(
    st.lists(keys, min_size=1, max_size=3).map("/".join), members, min_size=1, max_size=10
)


def reference(things: dict[str, Any], location: tuple[str, ...]) -> Any:
    """value(location) by the definition (docs/firebase.md), from the things as written: the
    member of the nearest thing above, overlaid with the folder's entries."""
    own = None
    for depth in range(len(location), 0, -1):
        path = "/".join(location[:depth])
        if path in things:
            own = mapping.get_member(things[path], location[depth:])
            break
    return mapping.overlay(own, entries(things, "/".join(location) + "/" if location else ""))


def entries(things: dict[str, Any], folder: str) -> dict[str, Any]:
    """The values of a folder's entries: each its thing (if any) overlaid with its own entries
    (an entry wins over the member of its name in the thing above, whole)."""
    names = {path[len(folder) :].split("/")[0] for path in things if path.startswith(folder)}
    values = {
        name: mapping.overlay(things.get(folder + name), entries(things, folder + name + "/"))
        for name in names
    }
    return {name: value for name, value in values.items() if value is not None}


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(trees)
def test_a_read_answers_the_tree_as_defined(
    store: Store, redis_client: redis.Redis, written: dict[str, Any]
) -> None:
    redis_client.flushall()
    things = {path: mapping.normalize(value) for path, value in written.items()}
    things = {path: value for path, value in things.items() if value is not None}
    put_things(store, things)
    locations = {()} | {tuple(path.split("/"))[:depth] for path in things for depth in range(1, 4)}
    locations |= {(*location, "a") for location in list(locations)}
    for location in sorted(locations):
        expected = reference(things, location)
        assert reading.read_value(store, location) == expected, (location, things)
        # The smallest budgets that hold it still do; one byte or folder less does not.
        budget = reading.Budget(1 << 30)
        reading.read_value(store, location, budget)
        exact = reading.Budget(budget.used, max_folders=budget.folders)
        assert reading.read_value(store, location, exact) == expected
        if budget.folders:
            with pytest.raises(Refusal):
                reading.read_value(
                    store, location, reading.Budget(1 << 30, max_folders=budget.folders - 1)
                )


# -- over HTTP -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capped(redis_server: RedisServer | LocalCluster) -> Iterator[FirebaseServed]:
    """A server of its own whose reads walk at most 100 sub-folders."""
    served = start_firebase(redis_server.url, {"THINGSTASH_FIREBASE_MAX_FOLDERS": "100"})
    yield served
    served.native.stop()


def test_a_get_past_the_folder_budget_is_400(
    capped: FirebaseServed, store: Store, redis_server: RedisServer | LocalCluster
) -> None:
    put_things(store, {f"wide/f{i:04}/x": i for i in range(1500)})
    put_things(store, {f"narrow/f{i:02}/x": i for i in range(100)})
    with httpx.Client(base_url=capped.url, timeout=30) as client:
        commands_before, _ = load(redis_server)
        refused = client.get("/wide.json")
        commands, _ = load(redis_server)
        assert refused.status_code == 400
        assert refused.json() == {"error": TOO_LARGE}
        # Not one command per sub-folder (1,500): the first listing showed too many. The
        # count takes in the servers' own background work meanwhile (on a cluster every
        # process's reaper visits 16 shards twice a second; it reached 306 once), hence a
        # margin of half of what one command per sub-folder would take.
        assert commands - commands_before < 750
        assert client.get("/wide/f0007.json").json() == {"x": 7}
        assert len(client.get("/wide.json", params={"shallow": "true"}).json()) == 1500
        assert client.get("/narrow.json").json() == {f"f{i:02}": {"x": i} for i in range(100)}
        with client.stream(
            "GET", "/wide.json", headers={"Accept": "text/event-stream"}
        ) as streamed:
            assert streamed.status_code == 400
            assert streamed.read() == documents.dumps({"error": TOO_LARGE})


# -- streams -------------------------------------------------------------------------------------


def apply(tree: Any, path: str, data: Any) -> Any:
    """A Firebase client's copy of a location after a `put` event at `path` (keys below it)."""
    keys = [key for key in path.split("/") if key]
    if not keys:
        return data
    tree = dict(tree) if isinstance(tree, dict) else {}
    tree[keys[0]] = apply(tree.get(keys[0]), "/".join(keys[1:]), data)
    return mapping.normalize(tree)


def test_a_write_inside_the_thing_at_a_stream_sends_the_place_not_the_location(
    firebase: FirebaseServed,  # noqa: F811
    store: Store,
    redis_server: RedisServer | LocalCluster,
) -> None:
    store.put("loc", documents.dumps({"meta": {"n": 0}, "tag": "a"}), 3600)
    put_things(store, {f"loc/f{i:03}/x": i for i in range(400)})
    with (
        httpx.Client(base_url=firebase.url, timeout=30) as client,
        listening(client, "loc") as events,
    ):
        first = events.change().data
        assert first["path"] == "/" and len(first["data"]) == 402

        def write() -> None:
            client.put("/loc/meta/n.json", json=5)
            assert events.change().data == {"path": "/meta/n", "data": 5}

        used, background = commands_used(redis_server, write)
        # The write and the stream's read of the thing `loc`: not the 400 folders below it and
        # their things (at least 800 commands), hence the margin.
        assert used < 400, (used, background)


def test_a_stream_client_holds_what_a_get_answers(
    capped: FirebaseServed, store: Store, redis_server: RedisServer | LocalCluster
) -> None:
    store.put("room", documents.dumps({"meta": {"n": 0}, "tag": "a"}), 3600)
    put_things(store, {f"room/f{i}/x": i for i in range(5)})
    native_url = capped.native.url
    with (
        httpx.Client(base_url=capped.url, timeout=30) as fb,
        httpx.Client(base_url=native_url, timeout=30) as native,
        listening(fb, "room") as events,
    ):
        held = events.change().data["data"]
        steps = [
            lambda: fb.put("/room/meta/n.json", json=1),
            lambda: fb.patch("/room.json", json={"meta/m": 2, "tag": None}),
            lambda: native.patch("/room", json={"extra": {"deep": {"x": 1}, "y": [1, 2]}}),
            lambda: native.patch("/room", json={"f1": "hidden by the entry f1"}),
            lambda: native.put("/room/f2/x", json={"n": 99}),
            lambda: fb.delete("/room/extra/deep.json"),
            lambda: native.patch("/room", json={"meta": None, "extra": None}),
            lambda: native.put("/room", json={"meta": {"n": 7}}),
        ]
        for step, write in enumerate(steps):
            assert write().status_code < 300
            shown = []
            while held != fb.get("/room.json").json():
                event = events.change()
                assert event.kind == "put"
                shown.append(event.data["path"])
                held = apply(held, event.data["path"], event.data["data"])
            if step < len(steps) - 1:
                # Changes inside the thing `room` are sent where they are: never "/" (the
                # location whole) while the folders below it hold things.
                assert "/" not in shown, (step, shown)


def test_a_stream_whose_location_grows_past_the_folder_budget_is_cancelled(
    capped: FirebaseServed, store: Store
) -> None:
    put_things(store, {f"grow/f{i:03}/x": i for i in range(50)})
    with (
        httpx.Client(base_url=capped.url, timeout=30) as client,
        listening(client, "grow") as events,
    ):
        assert len(events.change().data["data"]) == 50
        put_things(store, {f"grow/f{i:03}/x": i for i in range(50, 150)})
        store.put("grow", documents.dumps({"own": 1}), 3600)  # the thing at it: read whole
        event = events.change()
        while event.kind == "put" and event.data["path"] != "/":
            event = events.change()  # the puts of the things below, each where it is
        assert (event.kind, event.data) == ("cancel", TOO_LARGE)
        assert events.ended()


objects = st.dictionaries(keys, members, max_size=4).map(mapping.normalize)


@settings(max_examples=200, derandomize=True)
@given(objects, objects)
def test_member_changes_turn_one_object_into_the_other(old: Any, new: Any) -> None:
    changes = member_changes(old, new, limit=1000)
    assert changes is not None
    held = old
    for at, value in changes:
        held = apply(held, "/".join(at), value)
    assert held == new
    assert (changes == []) == (old == new)


def test_a_change_many_streams_watch_is_read_once_for_them_all(
    firebase: FirebaseServed,  # noqa: F811
    store: Store,
    redis_server: RedisServer | LocalCluster,
) -> None:
    """Fan-out once per change (streamreads.SharedReads): STREAMS streams of one folder get the
    new value of a place in it from one read of the process, not one read each."""
    streams = 30
    put_things(store, {f"many/t{i}": {"n": i} for i in range(3)})
    with httpx.Client(base_url=firebase.url, timeout=30) as client, ExitStack() as stack:
        watching = [stack.enter_context(listening(client, "many")) for _ in range(streams)]
        for events in watching:
            assert events.change().data["path"] == "/"

        def write() -> None:
            client.put("/many/t1.json", json={"n": 100, "deep": {"x": 1}})
            for events in watching:
                data = events.change().data
                assert data == {"path": "/t1", "data": {"n": 100, "deep": {"x": 1}}}

        used, background = commands_used(redis_server, write)
        # The write and one read of t1: about 40 commands (a read each: over 300, measured).
        assert used < 100, (used, background)

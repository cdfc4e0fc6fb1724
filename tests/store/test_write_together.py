"""Store.write_together: several things written and deleted as one (Firebase's multi-path
update). On one Redis all or nothing, and no reader sees half; on a cluster thing by thing.
Every change has the effects of its own put or delete: listings, the feed, expiry, queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

import orjson
import pytest
import redis

from thingstash.core.model import (
    Conditions,
    PartlyWritten,
    PreconditionFailed,
    ThingWrite,
    TooLarge,
)
from thingstash.core.queries import parse_query
from thingstash.core.store import Store
from thingstash.store import open_store

from ..support.clusters import LocalCluster
from ..support.servers import RedisServer

pytestmark = pytest.mark.cluster


@pytest.fixture
def store(redis_server: RedisServer | LocalCluster, redis_client: redis.Redis) -> Iterator[Store]:
    opened = open_store(redis_server.url, "together")
    yield opened
    opened.close()


def body(value: object) -> bytes:
    return orjson.dumps(value)


def read(store: Store, path: str) -> object:
    thing = store.get(path)
    return None if thing is None else orjson.loads(thing.body)


def test_writes_and_deletes_land_with_the_effects_of_single_writes(store: Store) -> None:
    store.put("old/gone", body({"v": 0}), 60)
    store.put("keep/me", body({"v": 1}), 60)
    start = store.feed_position()

    results = store.write_together(
        [
            ThingWrite("a/x", body({"v": 2}), 60),
            ThingWrite("b/c/y", body({"v": 3}), 60, event="patch"),
            ThingWrite("keep/me", body({"v": 4}), 60),
            ThingWrite("old/gone", None),
            ThingWrite("never/was", None),
        ]
    )

    assert [r is not None and r.created for r in results] == [True, True, False, False, False]
    assert results[3] is None and results[4] is None
    assert read(store, "a/x") == {"v": 2}
    assert read(store, "b/c/y") == {"v": 3}
    assert read(store, "keep/me") == {"v": 4}
    assert store.get("old/gone") is None
    # Listings: new folders appear, the folder left empty by the delete is gone.
    top = store.list_folder("", None, 100)
    assert [entry.name for entry in top.entries] == ["a/", "b/", "keep/"]
    assert [e.name for e in store.list_folder("b/c/", None, 100).entries] == ["y"]
    # The feed: one event per thing that changed, in the order given, each with its state.
    backlog = store.feed_since(start)
    assert [(e.kind, e.path) for e in backlog.events] == [
        ("put", "a/x"),
        ("patch", "b/c/y"),
        ("put", "keep/me"),
        ("delete", "old/gone"),
    ]
    assert backlog.events[1].thing is not None
    assert orjson.loads(backlog.events[1].thing.body) == {"v": 3}
    assert [e.id for e in backlog.events[:3]] == [r.event_id for r in results[:3] if r]


def test_the_things_written_get_their_lifetime_and_are_reaped(store: Store) -> None:
    store.write_together([ThingWrite("t/short", body({}), 1), ThingWrite("t/long", body({}), 600)])
    thing = store.get("t/short")
    assert thing is not None and 0 < thing.ttl_ms <= 1000
    start = store.feed_position()
    time.sleep(1.1)
    # The expiry schedule holds them: the reaper finds the short one (and only it) once due.
    reaped, _ = store.reap(now_ms=time.time_ns() // 1_000_000 + 5_000)
    assert reaped == 1
    assert [(e.kind, e.path) for e in store.feed_since(start).events] == [("expire", "t/short")]
    assert [e.name for e in store.list_folder("t/", None, 10).entries] == ["long"]


def test_query_indexes_follow(store: Store) -> None:
    store.create_index("scores/", "n")
    store.put("scores/a", body({"n": 5}), 60)
    deadline = time.monotonic() + 60
    while [index.state for index in store.indexes()] != ["ready"]:
        assert time.monotonic() < deadline
        store.build_indexes()
        time.sleep(0.05)

    store.write_together(
        [
            ThingWrite("scores/a", None),
            ThingWrite("scores/b", body({"n": 9}), 60),
            ThingWrite("scores/c", body({"n": 1}), 60),
        ]
    )

    query = parse_query({"order_by": ["n"]})
    assert query is not None
    answer = store.query("scores/", query)
    assert [(found.name, found.key) for found in answer.found] == [("c", 1), ("b", 9)]


def test_a_condition_that_fails_writes_nothing(store: Store) -> None:
    first = store.put("acct/a", body({"n": 10}), 60)
    store.put("acct/b", body({"n": 0}), 60)
    store.put("acct/a", body({"n": 7}), 60)  # someone else wrote since `first` was read
    current = store.get("acct/a")
    assert current is not None

    with pytest.raises(PreconditionFailed) as failed:
        store.write_together(
            [
                ThingWrite("acct/b", body({"n": 10}), 60, Conditions(if_none_match="*")),
                ThingWrite("acct/a", body({"n": 0}), 60, Conditions(if_match=(first.version,))),
            ]
        )
    assert failed.value.current is not None  # acct/b exists: its version
    with pytest.raises(PreconditionFailed) as failed:
        store.write_together(
            [
                ThingWrite("acct/b", body({"n": 10}), 60),
                ThingWrite("acct/a", None, conditions=Conditions(if_match=(first.version,))),
            ]
        )
    assert failed.value.current == current.version
    assert read(store, "acct/a") == {"n": 7}
    assert read(store, "acct/b") == {"n": 0}
    # With the versions read now it goes through.
    store.write_together(
        [ThingWrite("acct/a", None, conditions=Conditions(if_match=(current.version,)))]
    )
    assert store.get("acct/a") is None


def test_a_thing_over_the_size_limit_writes_nothing(store: Store) -> None:
    store.max_thing_bytes = 100
    store.put("big/a", body({"n": 1}), 60)
    with pytest.raises(TooLarge) as refused:
        store.write_together(
            [
                ThingWrite("big/a", body({"n": 2}), 60),
                ThingWrite("big/b", body({"pad": "x" * 100}), 60),
            ]
        )
    assert (refused.value.path, refused.value.size, refused.value.limit) == ("big/b", 110, 100)
    assert read(store, "big/a") == {"n": 1}
    assert store.get("big/b") is None


def test_a_path_given_twice_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.write_together([ThingWrite("d/x", body({}), 60), ThingWrite("d/x", None)])
    assert store.get("d/x") is None
    assert store.write_together([]) == []


# -- one Redis only: all or nothing, as seen by readers and by racing writers --------------------


@pytest.fixture
def single_store(single_server: RedisServer) -> Iterator[Store]:
    cleaner = redis.Redis.from_url(single_server.url)
    cleaner.flushall()
    cleaner.close()
    opened = open_store(single_server.url, "together1")
    yield opened
    opened.close()


def test_no_reader_sees_half_of_a_change_on_one_redis(single_store: Store) -> None:
    store = single_store
    paths = [f"pair/{name}" for name in ("left", "middle", "right")]
    store.write_together([ThingWrite(path, body({"round": 0}), 60) for path in paths])
    stop = threading.Event()
    seen: list[list[object]] = []

    def reader() -> None:
        while not stop.is_set():
            # One listing page with values reads its things in one script: one moment's view.
            page = store.list_folder("pair/", None, 10, values=True)
            seen.append([orjson.loads(entry.thing.body) for entry in page.entries if entry.thing])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(1, 301):
            store.write_together([ThingWrite(path, body({"round": round_}), 60) for path in paths])
    finally:
        stop.set()
        thread.join(30)
    assert len(seen) > 20  # the reader did read while the writes went on
    mixed = [view for view in seen if len({orjson.dumps(v) for v in view}) != 1]
    assert mixed == []
    assert all(len(view) == 3 for view in seen)


def test_racing_transfers_keep_the_sum_on_one_redis(single_store: Store) -> None:
    """Read both, compute, write both if neither changed, else read again: the caller's loop
    over PreconditionFailed that Firebase's multi-path update uses. The sum never changes."""
    store = single_store
    store.write_together(
        [ThingWrite("bank/a", body({"n": 1000}), 60), ThingWrite("bank/b", body({"n": 1000}), 60)]
    )
    conflicts = []

    def transfer(source: str, target: str, times: int) -> None:
        done = 0
        while done < times:
            a, b = store.get(source), store.get(target)
            assert a is not None and b is not None
            try:
                store.write_together(
                    [
                        ThingWrite(
                            source,
                            body({"n": orjson.loads(a.body)["n"] - 1}),
                            60,
                            Conditions(if_match=(a.version,)),
                        ),
                        ThingWrite(
                            target,
                            body({"n": orjson.loads(b.body)["n"] + 1}),
                            60,
                            Conditions(if_match=(b.version,)),
                        ),
                    ]
                )
                done += 1
            except PreconditionFailed:
                conflicts.append(1)

    threads = [
        threading.Thread(target=transfer, args=("bank/a", "bank/b", 150)),
        threading.Thread(target=transfer, args=("bank/b", "bank/a", 100)),
        threading.Thread(target=transfer, args=("bank/a", "bank/b", 50)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert read(store, "bank/a") == {"n": 1000 - 150 + 100 - 50}
    assert read(store, "bank/b") == {"n": 1000 + 150 - 100 + 50}


def test_a_conflict_part_way_on_a_cluster_says_what_was_written(
    store: Store, topology: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer changes the second thing between the conditions' check and its write (a
    fault injected at that moment): one Redis writes nothing and says PreconditionFailed; a
    cluster, thing by thing, has written the first and says PartlyWritten."""
    first = store.put("race/a", body({"n": 1}), 60)
    second = store.put("race/b", body({"n": 1}), 60)
    changes = [
        ThingWrite("race/a", body({"n": 2}), 60, Conditions(if_match=(first.version,))),
        ThingWrite("race/b", body({"n": 2}), 60, Conditions(if_match=(second.version,))),
    ]
    versions = store.versions

    def versions_then_a_rival_write(paths: Iterable[str]) -> dict[str, str | None]:
        found = versions(paths)
        monkeypatch.setattr(store, "versions", versions)
        store.put("race/b", body({"n": 9}), 60)  # the rival, after the check
        return found

    if topology == "cluster":
        monkeypatch.setattr(store, "versions", versions_then_a_rival_write)
        with pytest.raises(PartlyWritten) as partial:
            store.write_together(changes)
        assert partial.value.done == 1
        assert read(store, "race/a") == {"n": 2}
        assert read(store, "race/b") == {"n": 9}
    else:
        # One Redis checks under WATCH: the rival's write (between the check and EXEC) makes
        # the transaction do nothing, and the next round finds the conflict.
        real_queue = store._queue_change
        rivalled = []

        def queue_after_a_rival(change: ThingWrite, *args: object) -> object:
            if not rivalled:
                rivalled.append(True)
                rival = open_store(store.url, "together")
                rival.put("race/b", body({"n": 9}), 60)
                rival.close()
            return real_queue(change, *args)

        monkeypatch.setattr(store, "_queue_change", queue_after_a_rival)
        with pytest.raises(PreconditionFailed):
            store.write_together(changes)
        assert read(store, "race/a") == {"n": 1}
        assert read(store, "race/b") == {"n": 9}

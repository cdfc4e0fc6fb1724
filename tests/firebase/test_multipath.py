"""Firebase's multi-path update (`PATCH <path>.json` with places in several things) over HTTP:
one Store.write_together of the things; on one Redis no reader sees half of it, and on both
topologies racing updates lose nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from ..support.fbserve import FirebaseServed, firebase, firebase_server, start_firebase  # noqa: F401
from ..support.servers import RedisServer

pytestmark = pytest.mark.cluster


def open_again(client: httpx.Client) -> None:
    """Wait for a store just emptied of keys (by an earlier test) to be served as open: each
    process keeps its answer to "are there keys?" a second."""
    deadline = time.monotonic() + 5
    while client.get("/.json", params={"shallow": "true"}).status_code == 401:
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.fixture
def fb(firebase: FirebaseServed) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=firebase.url, timeout=30) as client:
        open_again(client)
        yield client


def test_places_in_several_things_and_new_ones_are_written(fb: httpx.Client) -> None:
    fb.put("/m/ann.json", json={"score": 1, "team": "red"})  # things of their own
    fb.put("/m/bob.json", json={"score": 2})
    answer = fb.patch(
        "/m.json",
        json={"ann/score": 5, "bob": {"score": 6}, "cy/score": 7, "dan": None, "ann/team": None},
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "ann/score": 5,
        "bob": {"score": 6},
        "cy/score": 7,
        "dan": None,
        "ann/team": None,
    }
    stored = fb.get("/m.json").json()
    assert stored == {"ann": {"score": 5}, "bob": {"score": 6}, "cy": {"score": 7}}


def test_racing_increments_over_two_things_lose_nothing(fb: httpx.Client, firebase) -> None:  # noqa: F811
    """Each update adds 1 in two things (server values, computed from what is stored): a
    conflict is read again and retried (on a cluster, only the thing that met it)."""
    fb.put("/c/a.json", json={"n": 0})
    fb.put("/c/b.json", json={"n": 0})
    step = {".sv": {"increment": 1}}

    def add(times: int) -> None:
        with httpx.Client(base_url=firebase.url, timeout=30) as client:
            for _ in range(times):
                assert client.patch("/c.json", json={"a/n": step, "b/n": step}).status_code == 200

    threads = [threading.Thread(target=add, args=(15,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert fb.get("/c.json").json() == {"a": {"n": 60}, "b": {"n": 60}}


# -- one Redis: nobody sees half -------------------------------------------------------------------


@pytest.fixture
def single(single_server: RedisServer) -> Iterator[FirebaseServed]:
    emptied = redis.Redis.from_url(single_server.url)
    emptied.flushall()  # keys an earlier test made among them
    emptied.close()
    started = start_firebase(single_server.url)
    yield started
    started.native.stop()


def test_no_reader_sees_half_an_update_on_one_redis(single: FirebaseServed) -> None:
    with httpx.Client(base_url=single.url, timeout=30) as client:
        open_again(client)
        client.put("/pair/left.json", json={"round": 0})
        client.put("/pair/right.json", json={"round": 0})
        stop = threading.Event()
        views: list[dict[str, dict[str, int]]] = []

        def reader() -> None:
            with httpx.Client(base_url=single.url, timeout=30) as own:
                while not stop.is_set():
                    views.append(own.get("/pair.json").json())  # one page: one moment's view

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for round_ in range(1, 201):
                update = {"left/round": round_, "right/round": round_}
                assert client.patch("/pair.json", json=update).status_code == 200
        finally:
            stop.set()
            thread.join(30)
    assert len(views) > 20
    assert [view for view in views if view["left"] != view["right"]] == []

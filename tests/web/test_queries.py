"""Queries of a folder over HTTP against real Redis (API.md, "Queries"): order, bounds, pages,
ranks, counts, around, indexes (declared, built beside writes, kept by every write, delete and
expiry), live queries, keys limited to a prefix, and every bad combination as a 400.

Ranks and counts are checked against a brute-force Python computation of Firebase's order
(tests/core/test_ordering.firebase_order), with and without an index."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock
from urllib.parse import quote

import orjson
import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingstash.core import documents

from ..core.test_ordering import firebase_order, scalars
from ..firebase.test_reads import commands_used
from ..support.clusters import LocalCluster
from ..support.servers import RedisServer
from .test_auth import bearer, make_key
from .test_errors import assert_problem

pytestmark = pytest.mark.cluster

MIXED = [None, False, True, -3, 0, 2.5, 3, 10**30, "", "B", "a", "é", [1], {"x": 1}]


def q(client: FlaskClient, folder: str, **params: Any) -> Any:
    """GET a query, 200 expected: its JSON."""
    response = client.get("/" + folder, query_string=params)
    assert response.status_code == 200, response.data
    return response.get_json()


def _range_query(order_by: str, desc: bool, limit: int, start: Any, end: Any) -> dict[str, Any]:
    """A query's parameters: ordered by `order_by`, from `start` to `end` (None: open)."""
    params: dict[str, Any] = {"order_by": order_by, "desc": str(desc).lower(), "limit": limit}
    if start is not None:
        params["start_at"] = documents.dumps(start).decode()
    if end is not None:
        params["end_at"] = documents.dumps(end).decode()
    return params


def _every_page(
    client: FlaskClient, folder: str, params: dict[str, Any], most: int
) -> list[dict[str, Any]]:
    """The query's answers page by page, following `next`: at most `most` pages."""
    pages: list[dict[str, Any]] = []
    cursor = None
    for _ in range(most):
        answer = q(client, folder, **params, **({"cursor": cursor} if cursor else {}))
        pages.append(answer)
        cursor = answer["next"]
        if cursor is None:
            break
    return pages


def names(answer: dict[str, Any]) -> list[str]:
    return [thing["path"].rsplit("/", 1)[1] for thing in answer["things"]]


def put_scores(client: FlaskClient, folder: str, scores: dict[str, Any]) -> None:
    for name, score in scores.items():
        body = {} if score is ... else {"score": score}
        assert client.put(f"/{folder}{name}", json=body).status_code in (200, 201)


def create_index(client: FlaskClient, folder: str, field: str, headers: Any = None) -> str:
    response = client.post("/_indexes", json={"folder": folder, "field": field}, headers=headers)
    assert response.status_code in (200, 201), response.data
    return response.get_json()["id"]


def wait_ready(client: FlaskClient, index_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/_indexes/{index_id}")
        assert response.status_code == 200, response.data
        if response.get_json()["state"] == "ready":
            return
        time.sleep(0.05)
    raise AssertionError(f"index {index_id} not ready in {timeout} s")


def brute(scores: dict[str, Any], desc: bool = False) -> list[str]:
    def value(name: str) -> Any:
        return None if scores[name] is ... else scores[name]

    return sorted(scores, key=lambda n: firebase_order(value(n), n), reverse=desc)


def settle(app: Flask) -> None:
    """Wait for what a new store's builder writes once at its start (the mark that the
    sub-folder sets are complete), so that a test can compare the keyspace before and after."""
    deadline = time.monotonic() + 30
    while not app.extensions["thingstash.store"].querying.subfolders_ready():
        assert time.monotonic() < deadline


@pytest.fixture(params=["computed", "indexed"])
def way(request: pytest.FixtureRequest, client: FlaskClient) -> str:
    """Each test of the answers runs on a folder without an index (computed in Python) and on
    one with a ready index: both must give the same answers."""
    if request.param == "indexed":
        wait_ready(client, create_index(client, "s/", "score"))
    return request.param


# -- order, pages, bounds, ranks -----------------------------------------------------------


def test_mixed_types_order_as_firebase_orders_them(client: FlaskClient, way: str) -> None:
    scores: dict[str, Any] = {f"t{i:02}": v for i, v in enumerate(MIXED)}
    scores["missing"] = ...
    put_scores(client, "s/", scores)
    answer = q(client, "s/", order_by="score")
    assert names(answer) == brute(scores)
    assert [t["rank"] for t in answer["things"]] == list(range(1, len(scores) + 1))
    keys = {t["path"]: t["key"] for t in answer["things"]}
    assert keys["s/t07"] == 10**30  # exact JSON, not a float
    assert keys["s/missing"] is None and keys["s/t13"] == {"x": 1}
    assert answer["next"] is None
    assert names(q(client, "s/", order_by="score", desc="true")) == brute(scores, desc=True)


def test_pages_follow_the_cursor_with_ranks_in_the_whole_order(
    client: FlaskClient, way: str
) -> None:
    scores = {f"p{i:02}": i % 7 for i in range(23)}
    put_scores(client, "s/", scores)
    for desc in (False, True):
        seen, ranks, cursor = [], [], None
        while True:
            params = {"order_by": "score", "limit": 5, "desc": str(desc).lower()}
            if cursor:
                params["cursor"] = cursor
            answer = q(client, "s/", **params)
            seen += names(answer)
            ranks += [t["rank"] for t in answer["things"]]
            cursor = answer["next"]
            if cursor is None:
                break
        assert seen == brute(scores, desc)
        assert ranks == list(range(1, 24))


def test_bounds_are_inclusive_and_ranks_ignore_them(client: FlaskClient, way: str) -> None:
    scores = {"a": 1, "b": 5, "c": 5, "d": 9, "e": "5", "f": None}
    put_scores(client, "s/", scores)
    answer = q(client, "s/", order_by="score", start_at="5", end_at="9")
    assert names(answer) == ["b", "c", "d"]
    assert [t["rank"] for t in answer["things"]] == [3, 4, 5]
    assert names(q(client, "s/", order_by="score", equal_to="5")) == ["b", "c"]
    assert names(q(client, "s/", order_by="score", equal_to='"5"')) == ["e"]
    assert names(q(client, "s/", order_by="score", equal_to="null")) == ["f"]
    # with desc the bounds are in the descending order: from 9 down to 5
    desc = q(client, "s/", order_by="score", desc="true", start_at="9", end_at="5")
    assert names(desc) == ["d", "c", "b"]
    assert [t["rank"] for t in desc["things"]] == [2, 3, 4]
    assert q(client, "s/", order_by="score", count="true", start_at="5", end_at="9") == {"count": 3}
    assert q(client, "s/", order_by="score", start_at="10", end_at="2")["things"] == []


def test_values_and_nested_fields(client: FlaskClient, way: str) -> None:
    client.put("/s/x", json={"score": 2, "stats": {"level": 7}})
    client.put("/s/y", json={"score": 1, "stats": {"level": 3}})
    answer = q(client, "s/", order_by="score", values="true")
    assert [t["value"] for t in answer["things"]] == [
        {"score": 1, "stats": {"level": 3}},
        {"score": 2, "stats": {"level": 7}},
    ]
    assert set(answer["things"][0]) == {"path", "ttl", "last_updated", "rank", "key", "value"}
    nested = q(client, "s/", order_by="stats/level", desc="true")
    assert names(nested) == ["x", "y"] and nested["things"][0]["key"] == 7
    assert "value" not in q(client, "s/", order_by="score")["things"][0]


def test_name_and_updated_orders(client: FlaskClient) -> None:
    for name in ["b", "a", "c"]:
        client.put(f"/n/{name}", json={})
        time.sleep(0.002)
    client.put("/n/sub/deeper", json={})  # a sub-folder is not a thing of n/
    assert names(q(client, "n/", order_by="$name")) == ["a", "b", "c"]
    assert names(q(client, "n/", order_by="$name", start_at='"b"')) == ["b", "c"]
    by_time = q(client, "n/", order_by="$updated", desc="true")
    assert names(by_time) == ["c", "a", "b"]
    assert all(isinstance(t["key"], int) for t in by_time["things"])
    assert q(client, "n/", count="true") == {"count": 3}


def test_around_centres_the_page_on_a_thing(client: FlaskClient, way: str) -> None:
    scores = {f"p{i:02}": i for i in range(20)}
    put_scores(client, "s/", scores)
    answer = q(client, "s/", order_by="score", around="p10", limit=5)
    assert names(answer) == ["p08", "p09", "p10", "p11", "p12"]
    assert [t["rank"] for t in answer["things"]] == [9, 10, 11, 12, 13]
    top = q(client, "s/", order_by="score", desc="true", around="p19", limit=3)
    assert names(top) == ["p19", "p18", "p17"] and top["things"][0]["rank"] == 1
    assert_problem(client.get("/s/?order_by=score&around=nobody"), 404, "thing doesn't exist")


def test_count(client: FlaskClient, way: str) -> None:
    put_scores(client, "s/", {"a": 1, "b": 2, "c": ...})
    client.put("/s/deeper/x", json={"score": 1})
    assert q(client, "s/", count="true") == {"count": 3}
    assert q(client, "s/", order_by="score", count="true", start_at="2") == {"count": 1}
    assert q(client, "empty/", count="true") == {"count": 0}


# -- against brute force ---------------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scores=st.dictionaries(
        st.text(alphabet="abcdéz😀", min_size=1, max_size=3), scalars, max_size=25
    ),
    start=st.one_of(st.none(), scalars),
    end=st.one_of(st.none(), scalars),
    desc=st.booleans(),
    limit=st.integers(1, 8),
)
def test_ranks_pages_and_counts_match_brute_force(
    client: FlaskClient,
    indexed_pattern: str,
    scores: dict[str, Any],
    start: Any,
    end: Any,
    desc: bool,
    limit: int,
) -> None:
    expected_all = brute(scores, desc)
    rank_of = {name: i + 1 for i, name in enumerate(expected_all)}

    def within(name: str) -> bool:
        mine = firebase_order(scores[name], "")
        low, high = (end, start) if desc else (start, end)
        return (low is None or firebase_order(low, "") <= mine) and (
            high is None or mine <= firebase_order(high, "")
        )

    expected = [n for n in expected_all if within(n)]
    for folder in (f"h/{uuid.uuid4().hex}/", f"plain/{uuid.uuid4().hex}/"):
        put_scores(client, folder, scores)
        params = _range_query("score", desc, limit, start, end)
        pages = _every_page(client, folder, params, 30)
        for answer in pages:
            assert [t["rank"] for t in answer["things"]] == [rank_of[n] for n in names(answer)]
        assert [n for answer in pages for n in names(answer)] == expected, folder
        count = q(client, folder, **{k: v for k, v in params.items() if k != "limit"}, count="true")
        assert count == {"count": len(expected)}


@pytest.fixture
def indexed_pattern(client: FlaskClient) -> str:
    """An index on every folder h/<anything>/ (ready before any thing is stored)."""
    index_id = create_index(client, "h/*/", "score")
    wait_ready(client, index_id)
    return index_id


# -- indexes ---------------------------------------------------------------------------------


def test_a_large_folder_needs_an_index_and_the_400_names_it(
    app: Flask, client: FlaskClient, redis_client: redis.Redis
) -> None:
    store = app.extensions["thingstash.store"]
    store.put_many([(f"big/t{i:04}", orjson.dumps({"score": i % 50}), 600) for i in range(1001)])
    settle(app)
    keys_before = set(redis_client.keys("*"))
    body = assert_problem(client.get("/big/?order_by=score&limit=3"), 400, "index")
    assert "thingstash index create big/ 'score'" in body["detail"]
    assert set(redis_client.keys("*")) == keys_before  # a refused query creates nothing
    index_id = create_index(client, "big/", "score")
    wait_ready(client, index_id)
    answer = q(client, "big/", order_by="score", desc="true", limit=3)
    assert [t["key"] for t in answer["things"]] == [49, 49, 49]
    assert q(client, "big/", order_by="score", count="true", equal_to="0") == {"count": 21}


def test_name_and_count_need_no_index_whatever_the_size(
    app: Flask, client: FlaskClient, redis_client: redis.Redis
) -> None:
    store = app.extensions["thingstash.store"]
    store.put_many([(f"big/t{i:04}", b"{}", 600) for i in range(1001)])
    client.put("/big/sub/deeper", json={})  # a sub-folder: not one of the folder's things
    client.put("/big/t0500/deeper", json={})  # nor this one, named as a thing is
    assert q(client, "big/", count="true") == {"count": 1001}
    last = q(client, "big/", order_by="$name", desc="true", limit=2)
    assert names(last) == ["t1000", "t0999"] and last["things"][0]["key"] == "t1000"
    assert [t["rank"] for t in last["things"]] == [1, 2]
    assert q(client, "big/", order_by="$name", start_at='"t0990"', count="true") == {"count": 11}
    around = q(client, "big/", order_by="$name", around="t0500", limit=3)
    assert names(around) == ["t0499", "t0500", "t0501"]
    assert [t["rank"] for t in around["things"]] == [500, 501, 502]
    assert_problem(client.get("/big/?order_by=$name&around=sub"), 404, "doesn't exist")
    assert len(q(client, "big/", order_by="$name", limit=1000, values="true")["things"]) == 1000
    assert [i.public()["field"] for i in store.indexes()] == []  # no index was needed


def test_an_index_built_while_writes_go_on_ends_equal_to_a_recount(
    app: Flask, client: FlaskClient
) -> None:
    store = app.extensions["thingstash.store"]
    store.put_many([(f"w/t{i:04}", orjson.dumps({"score": i}), 600) for i in range(3000)])
    stop = threading.Event()
    truth: dict[str, Any] = {f"t{i:04}": i for i in range(3000)}
    lock = threading.Lock()

    def writer(offset: int) -> None:
        other = app.test_client()
        step = 0
        while not stop.is_set():
            name = f"t{(offset + step * 7) % 3300:04}"
            step += 1
            if step % 5 == 0:
                with lock:
                    if other.delete(f"/w/{name}").status_code == 204:
                        truth.pop(name, None)
            else:
                score = (step * 31 + offset) % 1000
                with lock:
                    assert other.put(f"/w/{name}", json={"score": score}).status_code in (200, 201)
                    truth[name] = score

    threads = [threading.Thread(target=writer, args=(i * 1000,)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        index_id = create_index(client, "w/", "score")
        wait_ready(client, index_id)
        time.sleep(0.2)  # writes go on after the index is ready
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    with lock:
        expected = brute(truth)
    seen: list[str] = []
    cursor = None
    while True:
        answer = q(
            client, "w/", order_by="score", limit=1000, **({"cursor": cursor} if cursor else {})
        )
        seen += names(answer)
        cursor = answer["next"]
        if cursor is None:
            break
    assert seen == expected
    assert q(client, "w/", order_by="score", count="true") == {"count": len(truth)}


def test_writes_deletes_and_patches_keep_the_index(client: FlaskClient) -> None:
    wait_ready(client, create_index(client, "k/", "score"))
    put_scores(client, "k/", {"a": 1, "b": 2, "c": 3})
    client.patch("/k/a", json={"score": 10})
    client.delete("/k/b")
    client.put("/k/d", json={"score": {".sv": {"increment": 5}}})
    answer = q(client, "k/", order_by="score")
    assert names(answer) == ["c", "d", "a"]
    assert [t["key"] for t in answer["things"]] == [3, 5, 10]
    client.delete("/k/?recursive=true")
    assert q(client, "k/", order_by="score") == {"things": [], "next": None}


def test_expiry_leaves_no_index_entry(
    app: Flask, client: FlaskClient, redis_client: redis.Redis
) -> None:
    index_id = create_index(client, "e/", "score")
    wait_ready(client, index_id)
    client.put("/e/short?ttl=1", json={"score": 1})
    client.put("/e/long", json={"score": 2})
    assert names(q(client, "e/", order_by="score")) == ["short", "long"]
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline
        and redis_client.exists(f"ts:qm:{{{index_id}:e/}}")
        and redis_client.hexists(f"ts:qm:{{{index_id}:e/}}", "short")
    ):
        time.sleep(0.05)
    assert not redis_client.hexists(f"ts:qm:{{{index_id}:e/}}", "short")
    assert redis_client.zrange(f"ts:q:{{{index_id}:e/}}", 0, -1) == [
        redis_client.hget(f"ts:qm:{{{index_id}:e/}}", "long")
    ]
    assert names(q(client, "e/", order_by="score")) == ["long"]
    assert q(client, "e/", order_by="score", count="true") == {"count": 1}


def test_a_process_with_stale_declarations_still_keeps_the_index(
    make_app: Callable[..., Flask],
) -> None:
    first, second = make_app(), make_app()  # two processes' worth of caches
    # `second` only writes: without its builder thread nothing reloads its declarations
    second.extensions["thingstash.live"].close()
    one, two = first.test_client(), second.test_client()
    two.put("/stale/warm", json={"score": 0})  # `second` caches "no index" now
    wait_ready(one, create_index(one, "stale/", "score"))
    two.put("/stale/late", json={"score": 5})  # refused as stale inside Redis, sent again
    two.delete("/stale/warm")
    assert names(q(one, "stale/", order_by="score")) == ["late"]


def test_index_admin(app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from thingstash.web import auth

    monkeypatch.setattr(auth, "KEY_PRESENCE_SECONDS", -1.0)
    admin = bearer(make_key(app, "admin"))
    writer = bearer(make_key(app, "write"))
    assert_problem(client.get("/_indexes", headers=writer), 403, "admin")
    assert_problem(client.post("/_indexes", json={"folder": "a/", "field": "x"}), 401)
    created = client.post("/_indexes", json={"folder": "g/*/s", "field": "score"}, headers=admin)
    assert created.status_code == 201
    index = created.get_json()
    assert index["folder"] == "g/*/s/" and index["field"] == "score"
    assert created.headers["Location"] == f"/_indexes/{index['id']}"
    again = client.post("/_indexes", json={"folder": "g/*/s/", "field": "score"}, headers=admin)
    assert again.status_code == 200 and again.get_json()["id"] == index["id"]
    listed = client.get("/_indexes", headers=admin).get_json()["indexes"]
    assert [i["id"] for i in listed] == [index["id"]]
    for bad, says in [
        ({"folder": "a//b/", "field": "x"}, "empty segment"),
        ({"folder": "a/", "field": "x//y"}, "empty segment"),
        ({"folder": "g*/", "field": "x"}, "whole segment"),
        ({"folder": "a/", "field": "$name"}, "needs no index"),
        ({"folder": "a/"}, "strings"),
        ({"folder": "a/", "field": "x", "extra": 1}, "nothing else"),
        ([1], "json object"),
    ]:
        assert_problem(client.post("/_indexes", json=bad, headers=admin), 400, says)
    assert client.delete(f"/_indexes/{index['id']}", headers=admin).status_code == 204
    assert_problem(client.delete(f"/_indexes/{index['id']}", headers=admin), 404, "no index")
    assert client.get("/_indexes", headers=admin).get_json() == {"indexes": []}


def test_dropping_an_index_removes_its_entries(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    put_scores(client, "d/x/", {"a": 1})
    put_scores(client, "d/y/", {"b": 2})
    index_id = create_index(client, "d/*/", "score")
    wait_ready(client, index_id)
    assert redis_client.exists(f"ts:q:{{{index_id}:d/x/}}", f"ts:q:{{{index_id}:d/y/}}") == 2
    assert client.delete(f"/_indexes/{index_id}").status_code == 204
    assert redis_client.keys(f"ts:q*{index_id}*") == []
    assert names(q(client, "d/x/", order_by="score")) == ["a"]  # computed again


# -- bad queries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, status, words",
    [
        ("order_by=a&equal_to=1&start_at=0", 400, ["either equal_to"]),
        ("order_by=a&around=x&cursor=AQ", 400, ["drop cursor"]),
        ("order_by=a&around=x&end_at=3", 400, ["drop end_at"]),
        ("order_by=a&count=true&values=true", 400, ["drop values"]),
        ("order_by=a&start_at=abc", 400, ["json value"]),
        ("order_by=a%2F%2Fb", 400, ["empty segment"]),
        ("order_by=a&limit=0", 400, ["from 1 to 1000"]),
        ("order_by=a&limit=1001", 400, ["from 1 to 1000"]),
        ("order_by=a&order_by=b", 400, ["at most once"]),
        ("start_at=1", 400, ["add order_by"]),
        ("order_by=a&cursor=%21", 400, ["`next`"]),
        ("order_by=$size", 400, ["$name"]),
    ],
)
def test_bad_queries_are_400_saying_what_to_send(
    app: Flask,
    client: FlaskClient,
    redis_client: redis.Redis,
    query: str,
    status: int,
    words: list[str],
) -> None:
    client.put("/b/x", json={"a": 1})
    settle(app)
    before = set(redis_client.keys("*"))
    assert_problem(client.get("/b/?" + query), status, *words)
    assert set(redis_client.keys("*")) == before


# -- keys ----------------------------------------------------------------------------------


def test_a_prefix_limited_key_queries_inside_its_prefix_only(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thingstash.web import auth

    monkeypatch.setattr(auth, "KEY_PRESENCE_SECONDS", -1.0)
    admin = bearer(make_key(app, "admin"))
    reader = bearer(make_key(app, "read", "games/g1/"))
    for folder in ("games/g1/", "games/g2/"):
        client.put(f"/{folder}a", json={"score": 1}, headers=admin)
    ok = client.get("/games/g1/?order_by=score", headers=reader)
    assert ok.status_code == 200 and names(ok.get_json()) == ["a"]
    assert_problem(client.get("/games/g2/?order_by=score", headers=reader), 403)
    assert_problem(client.get("/games/?order_by=score", headers=reader), 403, "inside")
    assert_problem(client.get("/games/?count=true", headers=reader), 403)
    assert_problem(
        client.get(
            "/games/g2/?order_by=score",
            headers={**reader, "Accept": "text/event-stream"},
        ),
        403,
    )


# -- live ----------------------------------------------------------------------------------


class QueryStream:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = b""

    def answer(self) -> dict[str, Any]:
        """The next `query` event's answer, skipping comments."""
        while True:
            while b"\n\n" not in self.buffer:
                self.buffer += next(self.chunks)
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            fields = dict(
                line.partition(": ")[::2] for line in raw.decode().split("\n") if line[:1] != ":"
            )
            if fields:
                assert fields["event"] == "query"
                return orjson.loads(fields["data"])


@contextmanager
def watching_query(client: FlaskClient, url: str) -> Iterator[QueryStream]:
    response = client.get(url, headers={"Accept": "text/event-stream"}, buffered=False)
    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "text/event-stream"
    try:
        yield QueryStream(iter(response.response))
    finally:
        response.close()


def test_a_live_query_follows_its_answer(client: FlaskClient) -> None:
    put_scores(client, "live/", {"a": 1, "b": 2})
    with watching_query(client, "/live/?order_by=score&desc=true&limit=2") as stream:
        assert names(stream.answer()) == ["b", "a"]
        client.put("/live/c", json={"score": 3})  # an insert at the top
        assert names(stream.answer()) == ["c", "b"]
        client.put("/live/a", json={"score": 9})  # an update that moves one into the page
        assert names(stream.answer()) == ["a", "c"]
        client.put("/live/a", json={"score": 0})  # and out of it
        assert names(stream.answer()) == ["c", "b"]
        client.put("/live/deeper/x", json={"score": 99})  # not in the folder: no event
        client.delete("/live/c")  # a delete
        assert names(stream.answer()) == ["b", "a"]
        client.put("/live/brief?ttl=1", json={"score": 5})
        assert names(stream.answer()) == ["brief", "b"]
        assert names(stream.answer()) == ["b", "a"]  # its expiry, within about a second


def test_a_burst_of_writes_is_coalesced_and_ends_on_the_current_answer(
    client: FlaskClient,
) -> None:
    with watching_query(client, "/burst/?order_by=score&desc=true&limit=1") as stream:
        assert stream.answer()["things"] == []
        for i in range(50):
            client.put(f"/burst/t{i}", json={"score": i})
        answers = []
        while True:
            answers.append(stream.answer())
            if names(answers[-1]) == ["t49"]:
                break
        assert len(answers) < 50


def test_a_live_query_is_refused_like_the_query(client: FlaskClient) -> None:
    response = client.get(
        "/x/?order_by=a&equal_to=1&start_at=2", headers={"Accept": "text/event-stream"}
    )
    assert_problem(response, 400, "either")


def test_quote_free_field_names_work_encoded(client: FlaskClient) -> None:
    client.put("/u/a", json={"é t": {"x/y": 1, "z": 2}})
    client.put("/u/b", json={"é t": {"z": 1}})
    assert names(q(client, "u/", order_by="é t/z")) == ["b", "a"]
    assert names(client.get("/u/?order_by=" + quote("é t/z")).get_json()) == ["b", "a"]


# -- the command line ----------------------------------------------------------------------


def thingstash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thingstash", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_index_commands_on_the_store(app: Flask, client: FlaskClient, redis_server: Any) -> None:
    store = app.extensions["thingstash.store"]
    store.put_many([(f"cli/t{i:04}", orjson.dumps({"score": -i}), 600) for i in range(1500)])
    made = thingstash("index", "create", "cli", "score", "--redis-url", redis_server.url)
    assert made.returncode == 0, made.stderr
    assert "ready" in made.stderr
    index_id = made.stderr.split("index ", 1)[1].split()[0]
    listed = thingstash("index", "list", "--redis-url", redis_server.url)
    assert listed.returncode == 0 and index_id in listed.stdout and "ready" in listed.stdout
    assert "cli/" in listed.stdout and "score" in listed.stdout
    top = q(client, "cli/", order_by="score", limit=2)  # 1,500 things: served by the index
    assert names(top) == ["t1499", "t1498"]
    again = thingstash("index", "create", "cli/", "score", "--redis-url", redis_server.url)
    assert again.returncode == 0 and "already declared" in again.stderr
    bad = thingstash("index", "create", "cli", "a//b", "--redis-url", redis_server.url)
    assert bad.returncode == 2 and "empty segment" in bad.stderr
    by_name = thingstash("index", "create", "cli", "$name", "--redis-url", redis_server.url)
    assert by_name.returncode == 2 and "needs no index" in by_name.stderr
    dropped = thingstash("index", "drop", index_id, "--redis-url", redis_server.url)
    assert dropped.returncode == 0
    assert thingstash("index", "drop", index_id, "--redis-url", redis_server.url).returncode == 1
    assert_problem(client.get("/cli/?order_by=score"), 400, "index create cli/")


def test_the_query_command_over_http(served: Any) -> None:
    folder = f"cq{uuid.uuid4().hex[:8]}"
    with requests.Session() as http:
        for name, score in {"a": 3, "b": 1, "c": 2}.items():
            assert http.put(f"{served.url}/{folder}/{name}", json={"score": score}).ok

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return thingstash("query", folder, "--url", served.url, *args)

        top = run("--order-by", "score", "--desc", "--limit", "2")
        assert top.returncode == 0, top.stderr
        answer = orjson.loads(top.stdout)  # piped: the answer as the server sent it
        assert names(answer) == ["a", "c"] and answer["things"][0]["rank"] == 1
        ranged = orjson.loads(run("--order-by", "score", "--start-at", "2").stdout)
        assert names(ranged) == ["c", "a"]
        assert orjson.loads(run("--count").stdout) == {"count": 3}
        bad = run("--order-by", "score", "--start-at", "nope")
        assert bad.returncode == 3 and "start_at" in bad.stderr
        assert run().returncode == 2  # neither --order-by nor --count
        watcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "thingstash",
                "query",
                folder,
                "--url",
                served.url,
                "--order-by",
                "score",
                "--desc",
                "--limit",
                "1",
                "--watch",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stdout is not None
            assert names(orjson.loads(watcher.stdout.readline())) == ["a"]
            assert http.put(f"{served.url}/{folder}/d", json={"score": 9}).ok
            assert names(orjson.loads(watcher.stdout.readline())) == ["d"]
        finally:
            watcher.terminate()
            watcher.wait(10)
            if watcher.stdout is not None:
                watcher.stdout.close()


# -- by name, from the folder's own index, on any size ----------------------------------------

# Names that sort around "/" (0x2F) and its neighbours, beside sub-folders of the same names.
_NAME_CHARS = "!.0/:Aaé😀"


def _big_folder(app: Flask, folder: str, things: list[str], subfolders: list[str]) -> None:
    store = app.extensions["thingstash.store"]
    store.put_many([(folder + name, b"{}", 600) for name in things])
    store.put_many([(f"{folder}{sub}x", b"{}", 600) for sub in subfolders])


@pytest.fixture
def named(app: Flask) -> tuple[str, list[str]]:
    """A folder of 1,200 things and 300 sub-folders mixed in among them (some named as its
    things are, `t0005` and `t0005/`), and its things' names in order."""
    things = [f"t{i:04}" for i in range(0, 1200 * 3, 3)]
    things += ["a!", "a.", "a0", "z😀"]
    subfolders = [f"t{i:04}/" for i in range(0, 900 * 3, 9)] + ["a/", "zz/"]
    _big_folder(app, "nm/", things, subfolders)
    return "nm/", sorted(things)


def _expected_range(ordered: list[str], start: str | None, end: str | None, desc: bool) -> list:
    low, high = (end, start) if desc else (start, end)
    return [n for n in ordered if (low is None or n >= low) and (high is None or n <= high)]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    desc=st.booleans(),
    limit=st.integers(1, 300),
    start=st.one_of(st.none(), st.text(alphabet="t0123456789" + _NAME_CHARS, max_size=5)),
    end=st.one_of(st.none(), st.text(alphabet="t0123456789" + _NAME_CHARS, max_size=5)),
    around=st.integers(0, 1203),
)
def test_name_queries_over_a_large_folder_with_subfolders_match_brute_force(
    client: FlaskClient,
    named: tuple[str, list[str]],
    desc: bool,
    limit: int,
    start: str | None,
    end: str | None,
    around: int,
) -> None:
    folder, ascending = named
    ordered = list(reversed(ascending)) if desc else ascending
    rank_of = {name: i + 1 for i, name in enumerate(ordered)}
    expected = _expected_range(ordered, start, end, desc)
    params = _range_query("$name", desc, limit, start, end)
    pages = _every_page(client, folder, params, 1300)
    for answer in pages:
        assert [t["rank"] for t in answer["things"]] == [rank_of[n] for n in names(answer)]
        assert [t["key"] for t in answer["things"]] == names(answer)
    assert [n for answer in pages for n in names(answer)] == expected
    counted = {k: v for k, v in params.items() if k != "limit"}
    assert q(client, folder, **counted, count="true") == {"count": len(expected)}
    # around: the page of `limit` centred on one thing, kept whole at either end
    target = ordered[around % len(ordered)]
    first = max(0, min(rank_of[target] - 1 - (limit - 1) // 2, len(ordered) - limit))
    by_name = {"order_by": "$name", "desc": str(desc).lower(), "limit": limit}
    centred = q(client, folder, **by_name, around=target)
    assert names(centred) == ordered[first : first + limit]
    assert [t["rank"] for t in centred["things"]] == list(range(first + 1, first + limit + 1))[
        : len(ordered) - first
    ]
    assert q(client, folder, count="true") == {"count": len(ordered)}


def test_a_page_among_many_subfolders_ends_early_and_resumes(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget of 5 sub-folders per page, for a folder with runs of 40 between its things.
    monkeypatch.setattr("thingstash.store.querying.MAX_PASSED_SUBFOLDERS", 5)
    things = [f"k{i:03}" for i in range(0, 1200, 40)]
    subfolders = [f"k{i:03}x/" for i in range(1200) if i % 40]
    _big_folder(app, "dense/", things, subfolders)
    for desc in (False, True):
        ordered = sorted(things, reverse=desc)
        seen: list[str] = []
        ranks: list[int] = []
        short = 0
        cursor = None
        while True:
            params = {"order_by": "$name", "desc": str(desc).lower(), "limit": 4}
            answer = q(client, "dense/", **params, **({"cursor": cursor} if cursor else {}))
            seen += names(answer)
            ranks += [t["rank"] for t in answer["things"]]
            cursor = answer["next"]
            if cursor is None:
                break
            short += len(answer["things"]) < 4
        assert seen == ordered and ranks == list(range(1, len(things) + 1))
        assert short > 0  # pages did end early, and the cursor went on from there
    around = q(client, "dense/", order_by="$name", around="k600", limit=3)
    assert "k600" in names(around)
    assert [t["rank"] for t in around["things"]] == [
        sorted(things).index(n) + 1 for n in names(around)
    ]


def test_subfolders_coming_and_going_keep_counts_and_ranks(app: Flask, client: FlaskClient) -> None:
    store = app.extensions["thingstash.store"]
    things = [f"t{i:04}" for i in range(1001)]
    store.put_many([(f"cg/{name}", b"{}", 600) for name in things])

    def check() -> None:
        assert q(client, "cg/", count="true") == {"count": len(things)}
        tail = q(client, "cg/", order_by="$name", desc="true", limit=3)
        assert names(tail) == sorted(things)[::-1][:3]
        assert [t["rank"] for t in tail["things"]] == [1, 2, 3]
        around = q(client, "cg/", order_by="$name", around="t0500", limit=1)
        assert around["things"][0]["rank"] == sorted(things).index("t0500") + 1

    check()
    client.put("/cg/a/x", json={})  # a sub-folder appears (put)
    store.put_many([("cg/b/x", b"{}", 600), ("cg/t0700/y/z", b"{}", 600), ("cg/n", b"{}", 600)])
    things.append("n")
    check()
    client.put("/cg/a/y", json={})  # a folder that exists already: nothing changes
    check()
    assert client.delete("/cg/a/x").status_code == 204
    check()
    assert client.delete("/cg/a/y").status_code == 204  # its last thing: the folder goes
    check()
    deleted = client.delete("/cg/t0700/?recursive=true")
    assert deleted.status_code == 200 and deleted.get_json() == {"deleted": 1}
    check()
    client.put("/cg/brief/x?ttl=1", json={})  # a sub-folder that goes by expiry
    client.put("/cg/c/x", json={})
    check()
    deadline = time.monotonic() + 30
    while (listed := q(client, "cg/", limit=10)["folders"]) != ["cg/b/", "cg/c/"]:
        assert time.monotonic() < deadline, f"the expired sub-folder stayed listed: {listed}"
        time.sleep(0.1)
    check()
    assert client.delete("/cg/t0001").status_code == 204  # a thing goes
    things.remove("t0001")
    check()


def test_a_store_from_before_the_subfolder_sets_gets_them(
    app: Flask,
    client: FlaskClient,
    make_app: Callable[..., Flask],
    redis_client: redis.Redis,
) -> None:
    things = [f"t{i:04}" for i in range(1100)]
    subfolders = [f"t{i:04}/" for i in range(0, 1100, 7)] + ["deep/"]
    _big_folder(app, "old/", things, subfolders)
    _big_folder(app, "old/deep/", [f"d{i}" for i in range(1001)], ["inner/"])
    client.put("/small/a", json={})
    deadline = time.monotonic() + 30
    while not redis_client.exists("ts:subfolders:ready"):  # this process's own walk, done first
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # As an earlier version left the store: no sub-folder sets, no mark that they are built.
    made = [k for k in redis_client.scan_iter(match="ts:f:*", count=1000) if k.endswith(b":sub")]
    made += redis_client.scan_iter(match="ts:fsub:*", count=1000)  # (a cluster's top level)
    assert made  # (the sets this version made as it wrote)
    redis_client.delete(*made, "ts:subfolders:ready")
    # Another process is building them: this one answers what it can, 503 for the rest.
    redis_client.set("ts:subfolders:lease", "someone", px=60_000)
    upgraded = make_app().test_client()
    response = upgraded.get("/old/?order_by=$name&limit=2")
    assert_problem(response, 503, "building")
    assert response.headers["Retry-After"]
    assert_problem(upgraded.get("/old/?count=true"), 503, "building")
    assert names(q(upgraded, "small/", order_by="$name")) == ["a"]  # small: computed
    redis_client.delete("ts:subfolders:lease")  # (that process went away)
    deadline = time.monotonic() + 30
    while upgraded.get("/old/?count=true").status_code != 200:
        assert time.monotonic() < deadline, "the sub-folder sets were never built"
        time.sleep(0.1)
    assert redis_client.exists("ts:subfolders:ready")
    assert q(upgraded, "old/", count="true") == {"count": 1100}
    assert q(upgraded, "old/deep/", count="true") == {"count": 1002}  # and old/deep/x
    tail = q(upgraded, "old/", order_by="$name", desc="true", limit=2)
    assert names(tail) == ["t1099", "t1098"] and [t["rank"] for t in tail["things"]] == [1, 2]
    around = q(upgraded, "old/", order_by="$name", around="t0700", limit=1)
    assert around["things"][0]["rank"] == 701
    # and the sets keep up with writes from then on
    upgraded.put("/old/t0001/x", json={})
    assert upgraded.delete("/old/deep/inner/x").status_code == 204
    assert q(upgraded, "old/deep/", count="true") == {"count": 1002}
    around = q(upgraded, "old/", order_by="$name", around="t0700", limit=1)
    assert around["things"][0]["rank"] == 701


def test_a_live_name_query_on_a_large_folder(app: Flask, client: FlaskClient) -> None:
    store = app.extensions["thingstash.store"]
    store.put_many([(f"lv/t{i:04}", b"{}", 600) for i in range(1001)])
    with watching_query(client, "/lv/?order_by=$name&limit=2") as stream:
        first = stream.answer()
        assert names(first) == ["t0000", "t0001"]
        client.put("/lv/a/x", json={})  # a sub-folder first in the order: not in the answer
        client.put("/lv/b", json={})  # a thing that is
        answer = stream.answer()
        assert names(answer) == ["b", "t0000"]
        assert [t["rank"] for t in answer["things"]] == [1, 2]
        assert client.delete("/lv/b").status_code == 204
        assert names(stream.answer()) == ["t0000", "t0001"]


# -- costly queries: a bounded read, a gate of their own --------------------------------------


def test_a_query_without_an_index_reads_at_most_4_mib_of_json(
    app: Flask, client: FlaskClient
) -> None:
    store = app.extensions["thingstash.store"]
    pad = "x" * 900_000
    store.put_many([(f"heavy/t{i}", orjson.dumps({"score": i, "pad": pad}), 600) for i in range(4)])
    answer = q(client, "heavy/", order_by="score", desc="true", limit=1)  # 3.6 MB: computed
    assert [t["path"] for t in answer["things"]] == ["heavy/t3"]
    store.put("heavy/t4", orjson.dumps({"score": 4, "pad": pad}), 600)  # 4.5 MB: too much
    body = assert_problem(client.get("/heavy/?order_by=score&limit=1"), 400, "index")
    assert "holds more than 4 MiB of JSON" in body["detail"]
    assert "thingstash index create heavy/ 'score'" in body["detail"]


def test_costly_queries_wait_for_their_own_gate_without_holding_back_plain_reads(
    make_app: Callable[..., Flask],
) -> None:
    # Two places per worker, one of them at most for a query without an index.
    app = make_app(threads=2, costly_queries=1)
    client = app.test_client()
    for i in range(3):
        assert client.put(f"/gate/t{i}", json={"score": i}).status_code == 201
    querying = app.extensions["thingstash.store"].querying
    real, calls, go_on = querying._in_memory, [], threading.Event()

    def slow(*args: Any) -> Any:  # injected: a slow read of the folder's JSON
        calls.append(args)
        assert go_on.wait(30)
        return real(*args)

    gate = app.extensions.get("thingstash.admission.costly")
    answers: dict[str, Any] = {}

    def ask(name: str, url: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: answers.update({name: client.get(url)}))
        thread.start()
        return thread

    def waiting() -> int:
        return getattr(gate, "waiting", 0)

    with mock.patch.object(querying, "_in_memory", side_effect=slow):
        first = ask("first", "/gate/?order_by=score")
        assert wait_for(lambda: len(calls) == 1)
        second = ask("second", "/gate/?order_by=score&desc=true")
        # It waits: for the gate (giving its place back), or, without one, in the slow read.
        assert wait_for(lambda: waiting() == 1 or len(calls) == 2)
        plain = ask("plain", "/gate/t1")
        plain.join(10)
        assert "plain" in answers, "a plain read waited behind the costly queries"
        assert answers["plain"].status_code == 200
        if gate is not None:
            gate.wait_s = 0.1  # a third waits no longer than this: 503, to retry
        third = ask("third", "/gate/?order_by=score&limit=1")
        third.join(10)
        assert answers["third"].status_code == 503
        assert answers["third"].headers["Retry-After"] == "1"
        assert answers["third"].json["title"] == "busy"
        go_on.set()
        first.join(10)
        second.join(10)
    assert [t["path"] for t in answers["first"].json["things"]] == ["gate/t0", "gate/t1", "gate/t2"]
    assert [t["path"] for t in answers["second"].json["things"]][0] == "gate/t2"
    assert len(calls) == 2


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_change_many_live_queries_watch_runs_the_query_once(
    client: FlaskClient, redis_server: RedisServer | LocalCluster
) -> None:
    """Fan-out once per change (core/shared.py): the streams of one live query get the new
    answer from one run of it, not one run each."""
    streams = 10
    put_scores(client, "shared/", {f"t{i}": i for i in range(20)})
    url = "/shared/?order_by=score&desc=true&limit=10&values=true"
    with ExitStack() as stack:
        watching = [stack.enter_context(watching_query(client, url)) for _ in range(streams)]
        for stream in watching:
            assert names(stream.answer())[0] == "t19"

        def write() -> None:
            client.put("/shared/top", json={"score": 100})
            for stream in watching:
                assert names(stream.answer())[:2] == ["top", "t19"]

        used, background = commands_used(redis_server, write)
    # The write and one run of the query: about 100 commands (a run each: 700 and more).
    assert used < 350, (used, background)

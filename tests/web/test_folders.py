"""Listings and recursive deletes, through HTTP against a real Redis."""

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest
import redis
from flask.testing import FlaskClient

from thingstash.core.model import new_version

pytestmark = pytest.mark.cluster


def put(client: FlaskClient, path: str, ttl: int | None = None, **body: object) -> None:
    query = {"ttl": ttl} if ttl else {}
    response = client.put("/" + path, json=body or {"v": 1}, query_string=query)
    assert response.status_code in (200, 201), response.json


def walk(client: FlaskClient, folder: str, limit: int) -> list[str]:
    """Every entry of a folder, page by page."""
    seen: list[str] = []
    cursor = None
    while True:
        query: dict[str, object] = {"limit": limit}
        if cursor:
            query["cursor"] = cursor
        page = client.get("/" + folder, query_string=query).json
        assert len(page["things"]) + len(page["folders"]) <= limit
        seen += [t["path"] for t in page["things"]] + page["folders"]
        cursor = page["next"]
        if cursor is None:
            return seen


def test_listing_sorts_things_and_folders_by_name(client: FlaskClient) -> None:
    for path in ["s/b", "s/a", "s/c/x", "s/a-b/y", "s/ä", "s/B", "t"]:
        put(client, path)
    response = client.get("/s/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json
    assert [t["path"] for t in body["things"]] == ["s/B", "s/a", "s/b", "s/ä"]
    assert body["folders"] == ["s/a-b/", "s/c/"]
    assert body["next"] is None
    thing = body["things"][0]
    assert set(thing) == {"path", "ttl", "last_updated"}
    assert thing["ttl"] == 31104000
    assert abs(thing["last_updated"] - time.time()) < 5
    top = client.get("/").json
    assert top == {"things": [{**top["things"][0], "path": "t"}], "folders": ["s/"], "next": None}


def test_values_adds_each_things_body_exactly(client: FlaskClient) -> None:
    client.put("/v/big", data=b'{"n":123456789012345678901234567890,"s":"42","f":1.5}')
    put(client, "v/sub/x")
    body = client.get("/v/?values=true").json
    assert body["things"][0]["value"] == {"n": 123456789012345678901234567890, "s": "42", "f": 1.5}
    assert body["folders"] == ["v/sub/"]
    assert "value" not in client.get("/v/?values=false").json["things"][0]
    assert client.get("/v/?values=yes").status_code == 400


def test_pages_visit_every_entry_once(client: FlaskClient) -> None:
    names = [f"p/{i:03d}" for i in range(25)] + ["p/f1/x", "p/f2/y"]
    for path in names:
        put(client, path)
    seen = walk(client, "p/", 4)
    assert seen == sorted(seen, key=lambda p: p.encode())
    assert sorted(seen) == sorted([n for n in names if n.count("/") == 1] + ["p/f1/", "p/f2/"])


def test_paging_while_others_write_sees_each_old_thing_exactly_once(client: FlaskClient) -> None:
    old = [f"w/{i:03d}" for i in range(0, 200, 2)]
    for path in old:
        put(client, path)
    stop = threading.Event()

    def writer(app_client: FlaskClient) -> None:
        i = 1
        while not stop.is_set() and i < 400:
            put(app_client, f"w/{i % 200:03d}{'x' if i >= 200 else ''}")
            i += 2

    thread = threading.Thread(target=writer, args=(client.application.test_client(),))
    thread.start()
    try:
        seen = walk(client, "w/", 7)
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen))
    assert set(old) <= set(seen)


def test_limit_and_cursor_are_checked(client: FlaskClient) -> None:
    put(client, "c/a")
    for bad in ["0", "1001", "-1", "x", "1.5", "", "١"]:
        response = client.get("/c/", query_string={"limit": bad})
        assert response.status_code == 400, bad
        assert response.headers["Content-Type"] == "application/problem+json"
    assert client.get("/c/?limit=1000").status_code == 200
    for bad in ["%%%", "a b", "_w", "gA", "x" * 5000, "/w=="]:
        response = client.get("/c/", query_string={"cursor": bad})
        assert response.status_code == 400, bad
        assert response.json["title"] == "bad cursor"


def test_cursor_survives_the_deletion_of_its_entry(client: FlaskClient) -> None:
    for name in "abcd":
        put(client, f"d/{name}")
    page = client.get("/d/?limit=2").json
    assert client.delete("/d/b").status_code == 204
    rest = client.get("/d/", query_string={"limit": 2, "cursor": page["next"]}).json
    assert [t["path"] for t in rest["things"]] == ["d/c", "d/d"]


def test_listing_carries_the_feed_position(client: FlaskClient) -> None:
    assert client.get("/").headers["Last-Event-ID"] == "0-0"
    put(client, "a/x")
    first = client.get("/a/").headers["Last-Event-ID"]
    put(client, "b/y")
    second = client.get("/a/").headers["Last-Event-ID"]
    assert tuple(map(int, second.split("-"))) > tuple(map(int, first.split("-")))


def test_expired_things_leave_listings_and_empty_folders(client: FlaskClient) -> None:
    put(client, "e/keep")
    put(client, "e/gone", ttl=1)
    put(client, "e/sub/gone", ttl=1)
    assert len(client.get("/e/").json["things"]) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = client.get("/e/").json
        if [t["path"] for t in body["things"]] == ["e/keep"] and body["folders"] == []:
            break
        time.sleep(0.1)
    assert body == {
        "things": [{**body["things"][0], "path": "e/keep"}],
        "folders": [],
        "next": None,
    }


def test_listing_repairs_an_index_whose_expiry_nobody_heard(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    put(client, "r/a")
    put(client, "r/b")
    # As if the thing expired while no thingstash process was listening.
    redis_client.delete("ts:t:{r/a}")
    body = client.get("/r/?limit=1").json
    assert [t["path"] for t in body["things"]] == ["r/b"]
    assert redis_client.zrange("ts:f:{r/}", 0, -1) == [b"b"]
    entries = redis_client.xrange("ts:feed")
    assert entries[-1][1] == {b"e": b"expire", b"p": b"r/a"}


def test_recursive_delete_removes_everything_below(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    paths = [f"x/{i}" for i in range(30)] + [f"x/y/{i}" for i in range(20)] + ["x/y/z/w", "xx"]
    for path in paths:
        put(client, path)
    put(client, "x/short", ttl=1)
    redis_client.delete("ts:t:{x/short}")  # an index entry whose thing already expired
    assert client.delete("/x/").status_code == 400
    response = client.delete("/x/?recursive=true")
    assert response.status_code == 200
    assert response.json == {"deleted": 51}
    assert client.get("/x/").json == {"things": [], "folders": [], "next": None}
    assert [t["path"] for t in client.get("/").json["things"]] == ["xx"]
    assert client.get("/").json["folders"] == []
    assert client.get("/x/y/z/w").status_code == 404
    assert sorted(redis_client.keys("ts:f:*")) == [b"ts:f:{}"]
    deletes = [f for _, f in redis_client.xrange("ts:feed") if f[b"e"] == b"delete"]
    assert len(deletes) == 51
    assert client.delete("/nothing/?recursive=true").json == {"deleted": 0}


def test_recursive_delete_in_small_batches_keeps_the_parent(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    for i in range(12):
        put(client, f"k/m/{i:02d}")
        put(client, f"k/m/n{i % 3}/{i}")
    put(client, "k/other")
    store = client.application.extensions["thingstash.store"]
    assert store.delete_tree("k/m/", batch=5) == 24
    assert client.get("/k/").json["folders"] == []
    assert [t["path"] for t in client.get("/k/").json["things"]] == ["k/other"]


def test_a_recursive_delete_cut_short_leaves_no_emptied_folder_listed(
    client: FlaskClient,
) -> None:
    """The process dies (here: its Redis connection fails, injected) right after the batch
    that empties the folder, before the delete comes back to it: the parent lists it no more."""
    for name in ("a", "b", "c"):
        put(client, f"p/sub/{name}")
    put(client, "p/keep")
    store = client.application.extensions["thingstash.store"]
    real_zrange = store.client.zrange
    calls = []

    def zrange_then_die(*args: object, **kwargs: object) -> object:
        calls.append(args)
        if len(calls) > 1:  # the first read gave the whole folder, deleted in one batch
            raise redis.ConnectionError("injected: the server died mid-delete")
        return real_zrange(*args, **kwargs)

    with mock.patch.object(store.client, "zrange", side_effect=zrange_then_die):
        assert client.delete("/p/sub/?recursive=true").status_code == 503
    assert len(calls) == 2
    assert client.get("/p/sub/").json == {"things": [], "folders": [], "next": None}
    assert client.get("/p/").json["folders"] == []
    assert [t["path"] for t in client.get("/p/").json["things"]] == ["p/keep"]


def test_an_emptied_folder_left_listed_is_repaired_by_the_next_listing(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    """As a recursive delete cut short before this release left it: `p2/ghost/` still listed in
    `p2/` (and its sub-folder set), its own index gone."""
    put(client, "p2/keep")
    redis_client.zadd("ts:f:{p2/}", {"ghost/": 0})
    redis_client.zadd("ts:f:{p2/}:sub", {"ghost/": 0})
    assert client.get("/p2/").json["folders"] == []
    assert redis_client.zrange("ts:f:{p2/}", 0, -1) == [b"keep"]
    assert redis_client.zrange("ts:f:{p2/}:sub", 0, -1) == []
    assert q_count(client, "p2/") == 1


def q_count(client: FlaskClient, folder: str) -> int:
    response = client.get("/" + folder, query_string={"count": "true"})
    assert response.status_code == 200, response.json
    return int(response.json["count"])


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_writes_to_a_folder_are_refused(client: FlaskClient, method: str) -> None:
    assert client.open("/f/", method=method, json={}).status_code == 405


def test_a_page_with_values_holds_at_most_a_few_mib_and_ends_early(client: FlaskClient) -> None:
    from thingstash.core.config import MAX_PAGE_VALUE_BYTES

    big = "x" * 1_000_000  # five of these are more than one page may hold
    for name in "abcde":
        put(client, f"big/{name}", s=big)
    put(client, "big/c-folder/inside")
    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        query = {"values": "true", "limit": 1000, **({"cursor": cursor} if cursor else {})}
        response = client.get("/big/", query_string=query)
        assert response.status_code == 200
        page = response.json
        sizes.append(len(response.data))
        assert all(t["value"] == {"s": big} for t in page["things"])
        seen += [t["path"] for t in page["things"]] + page["folders"]
        cursor = page["next"]
        if cursor is None:
            break
    # Four of ~1 MB fit in the first page (with the folder among them), the fifth starts the next.
    assert seen == ["big/a", "big/b", "big/c", "big/d", "big/c-folder/", "big/e"]
    assert len(sizes) == 2
    assert max(sizes) <= MAX_PAGE_VALUE_BYTES + 10_000
    # Without values, the same folder is one small page.
    plain = client.get("/big/", query_string={"limit": 1000})
    assert plain.json["next"] is None and len(plain.data) < 2000


def test_one_thing_larger_than_the_page_budget_is_still_listed(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(max_body=6 * 1024 * 1024).test_client()
    huge = "y" * (5 * 1024 * 1024)
    put(client, "huge/a", s=huge)
    put(client, "huge/b", s="small")
    first = client.get("/huge/?values=true").json
    assert [t["path"] for t in first["things"]] == ["huge/a"]
    assert first["things"][0]["value"] == {"s": huge}
    second = client.get("/huge/", query_string={"values": "true", "cursor": first["next"]}).json
    assert [t["path"] for t in second["things"]] == ["huge/b"] and second["next"] is None


def test_a_listing_shows_each_things_ttl_and_last_updated_as_a_read_does(
    client: FlaskClient,
) -> None:
    store = client.application.extensions["thingstash.store"]
    # Versions whose times use every kind of base64url digit ("-" and "_" too), up to the
    # last millisecond of the year 9999.
    times_ms = [0, 999, 1000, 1796050862999, 2**40 + 2**36 - 1, 2**41 + 0xFBEFBEFBE]
    times_ms += [*range(10**12, 10**13, 10**11), 253402300799999]
    for i, ms in enumerate(times_ms):
        store.put(f"times/{i:03d}", b"{}", 1000 + i, version=new_version(ms))
    for query in ("", "?values=true"):
        listed = client.get("/times/" + query).json["things"]
        assert len(listed) == len(times_ms)
        for thing, ms in zip(listed, times_ms, strict=True):
            read = client.get("/" + thing["path"]).json
            assert thing["last_updated"] == read["last_updated"] == ms // 1000
            assert thing["ttl"] == read["ttl"]


def test_every_folder_on_the_way_is_listed_again_after_it_was_emptied(client: FlaskClient) -> None:
    def listed(folder: str) -> list[str]:
        page = client.get("/" + folder).json
        return [t["path"] for t in page["things"]] + page["folders"]

    put(client, "deep/a/b/c")
    put(client, "deep/a/b/c")  # written again: nothing changes in any listing
    put(client, "deep/a/other")
    assert listed("deep/a/") == ["deep/a/other", "deep/a/b/"]
    assert client.delete("/deep/a/b/c").status_code == 204  # b/ is left empty: it goes
    assert listed("deep/a/") == ["deep/a/other"]
    assert client.delete("/deep/a/other").status_code == 204  # and so do a/ and deep/
    assert "deep/" not in listed("")
    put(client, "deep/a/b/c")
    assert "deep/" in listed("")
    assert listed("deep/") == ["deep/a/"]
    assert listed("deep/a/") == ["deep/a/b/"]
    assert listed("deep/a/b/") == ["deep/a/b/c"]

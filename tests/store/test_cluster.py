"""Cluster specifics. The HTTP tests of the modules marked `cluster` (conftest.py) run on both
topologies; these check what only a cluster has: detection, index repair, keys spread out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash.core.config import Settings
from thingstash.core.model import new_version
from thingstash.core.store import Store
from thingstash.store import open_store
from thingstash.store.cluster import ClusterStore, close_cluster
from thingstash.store.common import connect
from thingstash.web.app import create_app

from ..support.clusters import LocalCluster
from ..support.servers import close_app
from ..web.test_watch import Stream, watching

pytestmark = pytest.mark.cluster


class _AnyInt:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, int)


ANY_INT = _AnyInt()


def test_a_url_naming_any_node_is_detected_as_the_cluster(topology: str, redis_server) -> None:
    store = open_store(redis_server.url)
    try:
        assert isinstance(store, ClusterStore) == (topology == "cluster")
        assert isinstance(store.client, redis.RedisCluster) == (topology == "cluster")
        assert store.ping()
    finally:
        store.close()


def test_every_node_of_the_cluster_leads_to_the_whole_cluster(cluster) -> None:
    for port in cluster.ports:
        client = connect(f"redis://127.0.0.1:{port}/0")
        try:
            assert isinstance(client, redis.RedisCluster)
            assert len(client.get_primaries()) == 3
        finally:
            close_cluster(client)


def test_things_in_nested_folders_are_written_listed_and_deleted(client: FlaskClient) -> None:
    paths = [f"site{i % 3}/room{i % 5}/sensor{i}" for i in range(30)]
    for path in paths:
        assert client.put("/" + path, json={"n": path}).status_code == 201
    for path in paths:
        assert client.get("/" + path).json["n"] == path
    top = client.get("/").json
    assert top["folders"] == ["site0/", "site1/", "site2/"]
    listed = client.get("/site1/room1/").json
    assert [t["path"] for t in listed["things"]] == sorted(
        p for p in paths if p.startswith("site1/room1/")
    )
    for path in paths:
        if path.startswith("site2/"):
            assert client.delete("/" + path).status_code == 204
    assert client.get("/").json["folders"] == ["site0/", "site1/"]
    assert client.get("/site2/").json == {"things": [], "folders": [], "next": None}


def test_conditional_writes_hold_on_every_topology(client: FlaskClient) -> None:
    first = client.put("/cas/x", json={"v": 1}, headers={"If-None-Match": "*"})
    assert first.status_code == 201
    assert client.put("/cas/x", json={"v": 2}, headers={"If-None-Match": "*"}).status_code == 412
    etag = first.headers["ETag"]
    assert client.put("/cas/x", json={"v": 3}, headers={"If-Match": etag}).status_code == 200
    assert client.put("/cas/x", json={"v": 4}, headers={"If-Match": etag}).status_code == 412
    assert client.delete("/cas/x", headers={"If-Match": etag}).status_code == 412
    assert client.get("/cas/x").json["v"] == 3
    assert [t["path"] for t in client.get("/cas/").json["things"]] == ["cas/x"]


@pytest.fixture
def cluster_app(cluster: LocalCluster, cluster_client: redis.RedisCluster) -> Iterator[Flask]:
    """The app on the cluster, for the tests of what only a cluster does."""
    cluster_client.flushall()
    app = create_app(Settings(redis_url=cluster.url))
    yield app
    close_app(app)


def test_stale_index_entries_are_skipped_and_repaired(cluster_app: Flask) -> None:
    """What a write interrupted between its index step and its thing step leaves behind, and
    a folder emptied by deletes (which on a cluster stays in its parent's index)."""
    store: Store = cluster_app.extensions["thingstash.store"]
    client = cluster_app.test_client()
    assert client.put("/left/kept", json={}).status_code == 201
    assert client.put("/left/sub/x", json={}).status_code == 201
    assert client.delete("/left/sub/x").status_code == 204
    store.client.zadd(store.folder_key("left/"), {"ghost": 0})
    store.client.zadd(store.folder_key(""), {"gone/": 0})
    assert client.get("/").json["folders"] == ["left/"]
    assert client.get("/left/").json == {
        "things": [{"path": "left/kept", "ttl": 31104000, "last_updated": ANY_INT}],
        "folders": [],
        "next": None,
    }
    assert store.client.zrange(store.folder_key("left/"), 0, -1) == [b"kept"]
    assert store.client.zrange(store.folder_key(""), 0, -1) == [b"left/"]


def test_a_write_racing_a_repair_stays_listed(cluster_app: Flask) -> None:
    """A listing that finds an entry whose thing is not written yet removes it; the write then
    finishes, and its thing is listed all the same."""
    store: ClusterStore = cluster_app.extensions["thingstash.store"]
    client = cluster_app.test_client()
    store.client.zadd(store.folder_key("race/"), {"late": 0})
    store.client.zadd(store.folder_key(""), {"race/": 0})
    store._remove_stale("race/", ["late"])  # the listing's repair, before the thing is there
    assert client.put("/race/late", json={}).status_code == 201
    assert client.get("/race/").json["things"][0]["path"] == "race/late"
    assert client.get("/").json["folders"] == ["race/"]


def test_keys_of_many_things_spread_over_every_primary(cluster, cluster_app: Flask) -> None:
    client = cluster_app.test_client()
    for i in range(60):
        assert client.put(f"/spread/{i}", json={"i": i}).status_code == 201
    counts = [cluster.node(port).dbsize() for port in cluster.primary_ports()]
    assert len(counts) == 3 and all(count > 0 for count in counts)


def test_metrics_and_keys_on_a_cluster(cluster_app: Flask) -> None:
    from thingstash.core import keys
    from thingstash.web import auth
    from thingstash.web.context import store

    client = cluster_app.test_client()
    for i in range(5):
        assert client.put(f"/m/{i}", json={"i": i}).status_code == 201
    text = client.get("/_metrics").get_data(as_text=True)
    assert "thingstash_things_stored 5.0" in text
    with cluster_app.app_context():
        _, key = keys.create_key(store(), "read", "m/")
    headers = {"Authorization": f"Bearer {key}"}
    auth.KEY_PRESENCE_SECONDS, saved = -1.0, auth.KEY_PRESENCE_SECONDS
    try:
        assert client.get("/m/1", headers=headers).status_code == 200
        assert client.get("/m/1").status_code == 401
        listed = client.get("/_keys", headers=headers)
        assert listed.status_code == 403
    finally:
        auth.KEY_PRESENCE_SECONDS = saved
    with cluster_app.app_context():
        (record,) = store().list_keys()
        assert store().revoke_key(record.id)
    assert client.get("/m/1", headers=headers).status_code == 401


def test_events_appended_out_of_order_never_leave_an_older_state_last(
    cluster_app: Flask,
) -> None:
    """Two processes write one thing at once; each appends its event after its write, so the
    feed can get them in the other order. Here the race's outcome is made directly: the thing
    is written (v2, then v3) and the events appended v3 first, in one step; then a put (v4)
    and a delete, with the delete's event first. A watcher, live or resuming, must not end on
    the older state: it gets v3 and the delete, not v2 and v4 after them."""
    store: Store = cluster_app.extensions["thingstash.store"]
    client = cluster_app.test_client()
    assert client.put("/race/t", json={"v": 1}).status_code == 201
    position = client.get("/race/").headers["Last-Event-ID"]
    key = store.thing_key("race/t")

    def write(v: int) -> bytes:
        payload = new_version().encode() + b'{"v":%d}' % v
        store.client.set(key, payload, px=60_000)
        return payload

    def append(*events: dict[str, bytes | str]) -> None:
        pipe = store.client.pipeline(transaction=True)  # one key: read in one batch
        for fields in events:
            pipe.xadd(store.feed_key, fields)
        pipe.execute()

    def put(payload: bytes) -> dict[str, bytes | str]:
        return {"e": "put", "p": "race/t", "d": payload, "t": "60000"}

    def seen(stream: Stream) -> tuple[str, int | None]:
        event = stream.event()
        return event.kind, event.data["thing"]["v"] if event.data["thing"] else None

    with watching(client, "race/") as live:
        v2, v3 = write(2), write(3)
        append(put(v3), put(v2))
        assert seen(live) == ("put", 3)
        v4 = write(4)
        store.client.delete(key)
        append({"e": "delete", "p": "race/t"}, put(v4))
        assert seen(live) == ("delete", None)
        # Replayed from before the race: v2 may come between (no write says which was first
        # until the thing's key is read), but nothing older follows the latest state.
        with watching(client, "race/", position) as resumed:
            replayed = [seen(resumed)]
            while replayed[-1] != ("delete", None):
                replayed.append(seen(resumed))
            assert replayed[0] == ("put", 3)
            assert client.put("/race/t", json={"v": 5}).status_code == 201
            assert seen(live) == ("put", 5)
            assert seen(resumed) == ("put", 5)

"""Two `thingstash serve` processes against one real cluster behave as one service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import requests

from .clusters import LocalCluster
from .conftest import Served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_services(cluster: LocalCluster) -> Iterator[tuple[Served, Served]]:
    env = {"THINGSTASH_WORKERS": "1"}  # two processes is the point, not many workers each
    first = Served(["--redis-url", cluster.url], env).start()
    try:
        second = Served(["--redis-url", f"redis://127.0.0.1:{cluster.ports[-1]}"], env).start()
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_a_write_through_one_is_seen_through_the_other(
    two_services: tuple[Served, Served], cluster_client: redis.RedisCluster
) -> None:
    cluster_client.flushall()
    one, other = (s.url for s in two_services)
    with requests.Session() as a, requests.Session() as b:
        for i in range(20):
            assert (
                a.put(f"{one}/fleet/{i % 4}/dev{i}", json={"i": i}, timeout=10).status_code == 201
            )
        for i in range(20):
            got = b.get(f"{other}/fleet/{i % 4}/dev{i}", timeout=10)
            assert got.status_code == 200 and got.json()["i"] == i
        assert b.get(f"{other}/fleet/", timeout=10).json()["folders"] == [
            f"fleet/{n}/" for n in range(4)
        ]
        etag = b.get(f"{other}/fleet/0/dev0", timeout=10).headers["ETag"]
        patched = b.patch(
            f"{other}/fleet/0/dev0", json={"on": True}, headers={"If-Match": etag}, timeout=10
        )
        assert patched.status_code == 200
        assert a.get(f"{one}/fleet/0/dev0", timeout=10).json()["on"] is True
        bumps = [{"n": {".sv": {"increment": 1}}}] * 10
        for k, body in enumerate(bumps):
            url = one if k % 2 else other
            assert (a if k % 2 else b).patch(f"{url}/fleet/0/dev0", json=body, timeout=10).ok
        assert a.get(f"{one}/fleet/0/dev0", timeout=10).json()["n"] == 10
        assert a.delete(f"{one}/fleet/0/dev0", timeout=10).status_code == 204
        assert b.get(f"{other}/fleet/0/dev0", timeout=10).status_code == 404
        health = b.get(f"{other}/_health", timeout=10)
        assert health.status_code == 200

"""Two `thingstash serve` processes against one real cluster behave as one service."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from ..support.clusters import LocalCluster
from ..support.servers import Served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_services(cluster: LocalCluster) -> Iterator[tuple[Served, Served]]:
    env = {
        "THINGSTASH_WORKERS": "1",  # two processes is the point, not many workers each
        # Shared by both through the cluster; generous, so only the test that means to meets
        # it (with its own client addresses, as a proxy in front would forward them).
        "THINGSTASH_RATE_LIMIT": "100/minute",
        "THINGSTASH_PROXIES": "1",
    }
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
    watch = requests.get(
        f"{other}/fleet/", headers={"Accept": "text/event-stream"}, stream=True, timeout=10
    )
    with watch, requests.Session() as a, requests.Session() as b:
        lines = watch.iter_lines(decode_unicode=True)
        assert next(lines).startswith(": watching")
        for i in range(20):
            assert (
                a.put(f"{one}/fleet/{i % 4}/dev{i}", json={"i": i}, timeout=10).status_code == 201
            )
        # Watched through the other process: every write, in order.
        data = (json.loads(line[6:]) for line in lines if line.startswith("data: "))
        assert [event["thing"]["i"] for event in itertools.islice(data, 20)] == list(range(20))
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


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One process's /_metrics, as {(sample name, labels): value}."""
    text = requests.get(url + "/_metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _answered(metrics: dict, method: str, status: str) -> float:
    return metrics.get(("thingstash_requests_total", (("method", method), ("status", status))), 0.0)


def test_metrics_and_the_rate_limit_across_two_processes(
    two_services: tuple[Served, Served], cluster_client: redis.RedisCluster
) -> None:
    cluster_client.flushall()
    one, other = (s.url for s in two_services)
    before = {url: _scrape(url) for url in (one, other)}
    for i in range(6):
        assert requests.put(f"{one}/metered/{i}", json={"i": i}, timeout=10).status_code == 201
    # Each process counts the requests it answered; what is stored is the whole cluster's.
    counters = sum(1 for _ in cluster_client.scan_iter(match="ts:rl*"))  # also expire
    after = {url: _scrape(url) for url in (one, other)}
    assert _answered(after[one], "PUT", "201") - _answered(before[one], "PUT", "201") == 6
    assert _answered(after[other], "PUT", "201") == _answered(before[other], "PUT", "201")
    stored = [after[url][("thingstash_things_stored", ())] for url in (one, other)]
    assert stored == [6 + counters] * 2
    assert after[one][("thingstash_open_watch_streams", ())] == 0

    # The limit is one budget per client across both processes: its counter is in the cluster.
    client = {"X-Forwarded-For": "203.0.113.50"}
    urls = [one, other] * 50
    statuses = [requests.get(f"{u}/nothing", headers=client, timeout=10).status_code for u in urls]
    assert statuses == [404] * 100
    over = [requests.get(f"{u}/nothing", headers=client, timeout=10) for u in (one, other)]
    assert [r.status_code for r in over] == [429, 429]
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in over)
    assert over[0].headers["Content-Type"] == "application/problem+json"
    fresh = {"X-Forwarded-For": "203.0.113.51"}
    assert requests.get(f"{other}/nothing", headers=fresh, timeout=10).status_code == 404
    limited = {url: _scrape(url) for url in (one, other)}
    assert all(
        _answered(limited[url], "GET", "429") - _answered(after[url], "GET", "429") == 1
        for url in (one, other)
    )

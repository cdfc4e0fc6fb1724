"""Many writers at once against a real `thingstash serve`: no update that succeeded is lost."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from thingstash.firebase.rules import CHECK_SECONDS

from ..support.servers import Served


@pytest.fixture(autouse=True)
def _emptied(redis_client: redis.Redis) -> None:
    """The shared server's store emptied (redis_client flushes it): no rules or data another
    test left; the server learns there are no rules within RulesBook's CHECK_SECONDS."""
    time.sleep(CHECK_SECONDS * 2)


pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def run_clients(count: int, work) -> list:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count)))


def test_read_if_match_write_retry_on_one_counter_ends_exact(served: Served) -> None:
    url = f"{served.url}/race/counter"
    requests.put(url, json={"n": 0}, timeout=5)
    writers, rounds = 8, 25

    def work(_: int) -> int:
        retries = 0
        with requests.Session() as http:
            for _ in range(rounds):
                while True:
                    current = http.get(url, timeout=10)
                    n = current.json()["n"]
                    put = http.put(
                        url,
                        json={"n": n + 1},
                        headers={"If-Match": current.headers["ETag"]},
                        timeout=10,
                    )
                    if put.status_code == 200:
                        break
                    assert put.status_code == 412
                    retries += 1
        return retries

    run_clients(writers, work)
    assert requests.get(url, timeout=5).json()["n"] == writers * rounds


def test_fifty_clients_incrementing_a_hundred_times_end_at_5000(served: Served) -> None:
    url = f"{served.url}/race/hits"
    requests.put(url, json={"n": 0}, timeout=5)

    def work(_: int) -> None:
        with requests.Session() as http:
            for _ in range(100):
                response = http.patch(url, json={"n": {".sv": {"increment": 1}}}, timeout=30)
                assert response.status_code == 200, response.text

    run_clients(50, work)
    assert requests.get(url, timeout=5).json()["n"] == 5000


def test_concurrent_patches_of_distinct_fields_all_land(served: Served) -> None:
    url = f"{served.url}/race/fields"
    requests.put(url, json={}, timeout=5)

    def work(i: int) -> None:
        with requests.Session() as http:
            for j in range(10):
                response = http.patch(url, json={f"w{i}": {f"f{j}": j}}, timeout=30)
                assert response.status_code == 200, response.text

    run_clients(20, work)
    thing = requests.get(url, timeout=5).json()
    for i in range(20):
        assert thing[f"w{i}"] == {f"f{j}": j for j in range(10)}


def test_readers_never_see_a_missing_or_partial_thing_during_replaces(served: Served) -> None:
    url = f"{served.url}/race/doc"
    big = {f"k{i}": "x" * 50 for i in range(200)}
    requests.put(url, json={**big, "gen": 0}, timeout=5)
    stop = threading.Event()
    seen: list[int] = []

    def writer() -> None:
        with requests.Session() as http:
            for gen in range(1, 150):
                http.put(url, json={**big, "gen": gen}, timeout=10)
        stop.set()

    def reader(_: int) -> None:
        with requests.Session() as http:
            while not stop.is_set():
                response = http.get(url, timeout=10)
                assert response.status_code == 200
                thing = response.json()
                assert len(thing) == len(big) + 3  # every key, plus gen, ttl, last_updated
                seen.append(thing["gen"])

    thread = threading.Thread(target=writer)
    thread.start()
    run_clients(4, reader)
    thread.join()
    assert len(seen) > 0

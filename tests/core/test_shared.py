"""core/shared.py: work asked for by many streams at once is done once; failed work is not
shared; old keys make way for new ones."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from thingstash.core.shared import Shared, SharedBy


def test_many_asking_at_once_share_one_piece_of_work() -> None:
    shared: Shared[str, bytes] = Shared()
    runs = []

    def make() -> bytes:
        runs.append(1)
        time.sleep(0.05)  # the others ask meanwhile
        return b"value"

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: shared.get("key", make), range(8)))
    assert got == [b"value"] * 8
    assert len(runs) == 1 and shared.made == 1
    assert shared.get("key", make) == b"value" and len(runs) == 1  # later: taken too
    assert shared.get("other", make) == b"value" and len(runs) == 2  # another key: its own


def test_failed_work_is_not_shared() -> None:
    shared: Shared[str, int] = Shared()
    started = threading.Event()

    def fail() -> int:
        started.set()
        time.sleep(0.05)
        raise RuntimeError("Redis away")

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(shared.get, "key", fail)
        started.wait(5)
        assert shared.get("key", lambda: 7) == 7  # waited, then made it itself
        with pytest.raises(RuntimeError):
            first.result()
    assert shared.get("key", lambda: 8) == 8  # nothing kept of the failure


def test_only_the_most_recent_keys_are_kept() -> None:
    shared: Shared[int, int] = Shared(size=2)
    for key in range(3):
        shared.get(key, lambda key=key: key)
    assert shared.get(0, lambda: 100) == 100  # the oldest made way
    assert shared.get(2, lambda: 100) == 2


def test_what_is_kept_is_kept_for_a_while_and_per_owner() -> None:
    shared: Shared[str, int] = Shared(max_age=0.05)
    assert shared.get("key", lambda: 1) == 1
    assert shared.get("key", lambda: 2) == 1  # still fresh: taken
    time.sleep(0.1)
    assert shared.get("key", lambda: 3) == 3  # too old: made again

    class Owner:
        pass

    by: SharedBy[str, int] = SharedBy()
    first, second = Owner(), Owner()
    assert by.of(first) is by.of(first)
    assert by.of(first).get("key", lambda: 1) == 1
    assert by.of(second).get("key", lambda: 2) == 2  # another store's streams share nothing

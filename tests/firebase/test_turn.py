"""The judged writes' turn (store/turn.py, firebase/guarding.py), on one Redis and on a cluster:
a judged write slow to land after its check (a fault injected: a pause between the check of
its guards and its write) never lands once another judged write has changed what its rule
read. On one Redis the other lands and the slow one's transaction writes nothing
(GuardChanged); on a cluster, where the check cannot be in the step that writes, the other
waits for the turn and lands after it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from thingstash.core import documents
from thingstash.core.model import GuardChanged
from thingstash.firebase import mapping
from thingstash.firebase.guarding import Guarded, Recording
from thingstash.firebase.reading import read_value
from thingstash.store import open_store

from ..support.servers import RedisServer

pytestmark = pytest.mark.cluster
PAUSE_S = 0.3


def _body(value: Any) -> bytes:
    return documents.dumps(mapping.wrap(value))


def _slowed(store: Any) -> None:
    """Fault: a pause between the check of the guards and the write (one Redis checks them in
    _check_guards, under its WATCH; a cluster checks them, then writes with put)."""
    check, put = store._check_guards, store.put

    def slow_check(*args: Any) -> None:
        check(*args)
        time.sleep(PAUSE_S)

    def slow_put(*args: Any, **kwargs: Any) -> Any:
        time.sleep(PAUSE_S)
        return put(*args, **kwargs)

    store._check_guards, store.put = slow_check, slow_put


def test_no_judged_write_lands_between_a_check_and_its_write(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    slow, other = open_store(redis_server.url), open_store(redis_server.url)
    try:
        slow.put("perm", _body({"ada": True}), 3600)
        recording = Recording(slow)
        assert read_value(recording.as_store(), ("perm", "ada")) is True  # what the rule read
        landed: dict[str, float] = {}

        def revoke() -> None:
            time.sleep(PAUSE_S / 3)  # once the slow write has begun
            with Guarded(other, Recording(other).guards()) as judged:
                judged.as_store().put("perm", _body({"ada": False}), 3600)
            landed["revoke"] = time.monotonic()

        revoking = threading.Thread(target=revoke)
        _slowed(slow)
        revoking.start()
        try:
            with Guarded(slow, recording.guards()) as judged:
                judged.as_store().put("box", _body({"by": "ada"}), 3600)
                landed["box"] = time.monotonic()  # while it holds the turn, if it does
        except GuardChanged:
            pass
        revoking.join()
        assert read_value(other, ("perm", "ada")) is False
        if "box" in landed:  # landed: then before the revocation, never after it
            assert landed["box"] < landed["revoke"]
        else:
            assert read_value(other, ("box",)) is None  # nothing of it written
    finally:
        slow.close()
        other.close()

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
from thingstash.firebase import mapping, tree
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


def test_a_judged_write_waits_while_another_holds_the_turn(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """A write of many steps holds the turn (here: taken by hand for PAUSE_S); a judged write
    that read nothing (one Redis: put.lua after turn.lua) lands only after it is let go."""
    holder, other = open_store(redis_server.url), open_store(redis_server.url)
    try:
        times: dict[str, float] = {}
        taken = threading.Event()

        def hold() -> None:
            with holder.writing_turn():
                taken.set()
                time.sleep(PAUSE_S)
                times["let go"] = time.monotonic()

        holding = threading.Thread(target=hold)
        holding.start()
        taken.wait(5)
        with Guarded(other, Recording(other).guards()) as judged:
            judged.as_store().put("box", _body({"by": "ada"}), 3600)
        times["landed"] = time.monotonic()
        holding.join()
        assert times["landed"] > times["let go"]
        assert read_value(other, ("box", "by")) == "ada"
    finally:
        holder.close()
        other.close()


def _set_while_a_push_races_in(slow: Any, other: Any) -> Any:
    """As one judged user on `slow` (its fault injected by the caller), set box/a to {"own": 1};
    meanwhile, as another on `other`, push box/a/new = 2 (a thing of its own below box/a).
    What box/a reads after both."""

    def push_in() -> None:
        time.sleep(PAUSE_S / 3)  # once the set has begun
        with Guarded(other, Recording(other).guards()) as judged:
            store = judged.as_store()
            tree.push_value(store, ("box", "a"), "new", 2, tree.Lifetime(3600), 1 << 20)

    pushing = threading.Thread(target=push_in)
    pushing.start()
    with Guarded(slow, Recording(slow).guards()) as judged:
        tree.set_value(judged.as_store(), ("box", "a"), {"own": 1}, tree.Lifetime(3600))
    pushing.join()
    return read_value(other, ("box", "a"))


def test_what_a_write_clears_below_it_is_cleared_in_its_turn(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """A judged set at a location with things below it clears them in a later step, slow here
    (a fault: a pause before the clearing); a judged push racing in below (a thing of its own)
    lands after that step, never before it to be cleared by it."""
    slow, other = open_store(redis_server.url), open_store(redis_server.url)
    try:
        tree.set_value(slow, ("box", "a", "deep"), {"x": 1}, tree.Lifetime(3600))  # below
        clear = slow.delete_tree

        def slow_clear(*args: Any) -> int:
            time.sleep(PAUSE_S)
            return clear(*args)

        slow.delete_tree = slow_clear  # type: ignore[method-assign]
        assert _set_while_a_push_races_in(slow, other) == {"own": 1, "new": 2}
    finally:
        slow.close()
        other.close()


def test_a_write_that_found_nothing_below_it_clears_nothing_written_after_it(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """A judged set at a location with nothing below (so seen, and guarded so as it lands)
    holds no turn; a push below it that lands after it (a fault: a pause once it landed) is
    another write's, and stays."""
    slow, other = open_store(redis_server.url), open_store(redis_server.url)
    try:
        write_together = slow.write_together

        def then_pause(*args: Any) -> Any:
            done = write_together(*args)
            time.sleep(PAUSE_S)
            return done

        slow.write_together = then_pause  # type: ignore[method-assign]
        assert _set_while_a_push_races_in(slow, other) == {"own": 1, "new": 2}
    finally:
        slow.close()
        other.close()

"""The judged writes' turn: one lock per store (redis-py's Lock, a key set only if absent and
let go only by its holder), held by a judged write from the check of its guards to its last
step when that write takes more than one step, and by every judged write on a Redis Cluster
(whose write_together cannot check guards in the step that writes).

On one Redis a judged write that does not hold the turn waits while another does: its
write_together watches the turn's key with its guards (Guards.outside_turn), so none lands
between the steps of another's write. Writes made with an admin key are not judged and do not
wait (docs/rules.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from redis.exceptions import LockError

from thingstash.core.model import StorageUnavailable, TooMuchContention
from thingstash.store.common import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

# The longest a turn is held without renewal (each step of a long write renews it): a holder
# that died lets it go then.
HOLD_SECONDS: Final = 30.0
# How long a write waits for the turn (then TooMuchContention: a 409, retry it).
WAIT_SECONDS: Final = 5.0
# Letting go can fail only harmlessly: held past HOLD_SECONDS (another may hold it now), or
# Redis away; either way the turn is free when its time is up.
RELEASE_ERRORS: Final[tuple[type[Exception], ...]] = (LockError, *UNAVAILABLE_ERRORS)
# How often a waiting write asks again.
ASK_EVERY_SECONDS: Final = 0.002


class Held:
    """The turn, held: renew() before each further step of a long write (the turn is held
    HOLD_SECONDS from then); TooMuchContention if it ran out meanwhile and went to another."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def renew(self) -> None:
        try:
            self._lock.reacquire()
        except LockError as error:
            raise TooMuchContention("the judged writes' turn") from error
        except UNAVAILABLE_ERRORS as error:
            raise StorageUnavailable(str(error)) from error


@contextmanager
def writing_turn(client: Any, key: str) -> Iterator[Held]:
    """Hold the turn at `key` for the block. TooMuchContention when it does not come within
    WAIT_SECONDS; StorageUnavailable when Redis does not answer."""
    lock = client.lock(
        key,
        timeout=HOLD_SECONDS,
        sleep=ASK_EVERY_SECONDS,
        blocking_timeout=WAIT_SECONDS,
        thread_local=False,
    )
    try:
        taken = lock.acquire()
    except UNAVAILABLE_ERRORS as error:
        raise StorageUnavailable(str(error)) from error
    if not taken:
        raise TooMuchContention("the judged writes' turn")
    try:
        yield Held(lock)
    finally:
        try:
            lock.release()
        except RELEASE_ERRORS as error:
            log.warning("the judged writes' turn was not held to its end: %r", error)

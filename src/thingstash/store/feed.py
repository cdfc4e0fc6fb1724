"""The change feed on one Redis: its position (with a thing, for a watch to start from), the
backlog since a position, and blocking reads of what comes next."""

from __future__ import annotations

from thingstash.core.model import (
    Backlog,
    Event,
    Thing,
    parse_event_id,
)
from thingstash.store.base import StoreBase
from thingstash.store.common import (
    FEED_BLOCK_MAX_MS,
    backlog_from,
    events_of_xread,
    unavailable_on_redis_errors,
)


class Feed(StoreBase):
    """Store's change feed on one Redis (a mixin of RedisStore)."""

    @unavailable_on_redis_errors
    def feed_position(self) -> str:
        """The id of the last change ever logged ("0-0" before the first)."""
        position: bytes = self._position(keys=[self.feed_key])
        return position.decode()

    @unavailable_on_redis_errors
    def position_and_get(self, path: str) -> tuple[str, Thing | None]:
        """The feed position, then the thing: a watch that starts from this state and this
        position sees every later change (and perhaps one it already has, never a gap)."""
        pipe = self.client.pipeline(transaction=False)
        self._position(keys=[self.feed_key], client=pipe)
        self._get(keys=[self.thing_key(path)], client=pipe)
        position, found = pipe.execute()
        return position.decode(), Thing.from_payload(*found) if found is not None else None

    @unavailable_on_redis_errors
    def feed_since(self, after: str, count: int = 1000) -> Backlog:
        """Up to `count` events after the id `after`, or a reset when the feed no longer holds
        all of them (trimmed past the retention), `after` was never issued (a later id, or a
        feed that has since been emptied), or the feed may have lost events since (see
        backlog_from)."""
        wanted = parse_event_id(after)
        if wanted is None:
            raise ValueError(f"not a feed position: {after!r}")
        pipe = self.client.pipeline(transaction=False)
        self._feed_state(keys=[self.feed_key], client=pipe)
        # From `after` itself: that it is still there is part of the answer.
        pipe.xrange(self.feed_key, after, "+", count=count + 1)
        state, entries = pipe.execute()
        return backlog_from(wanted, after, state, entries, count)

    def check_feed_node(self) -> None:
        """On a cluster: notice a failover of the feed's node (see ClusterStore); a single
        Redis has nothing to notice."""

    @unavailable_on_redis_errors
    def read_feed(self, after: str, block_ms: int, count: int = 1000) -> list[Event]:
        """Events after `after`, waiting up to `block_ms` for the first one (XREAD BLOCK)."""
        block_ms = min(block_ms, FEED_BLOCK_MAX_MS)
        reply = self.client.xread({self.feed_key: after}, count=count, block=block_ms)
        return events_of_xread(reply, self.feed_key)

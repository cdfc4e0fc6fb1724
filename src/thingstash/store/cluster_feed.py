"""A cluster's change feed: the position and the thing in two steps, reads sent to the feed's
node, and a `reset` marker when that node fails over (check_feed_node)."""

from __future__ import annotations

from thingstash.core.model import (
    Backlog,
    Event,
    Thing,
    parse_event_id,
)
from thingstash.store.cluster_base import ClusterBase
from thingstash.store.common import (
    FEED_BLOCK_MAX_MS,
    backlog_from,
    events_of_xread,
    unavailable_on_redis_errors,
)


class ClusterFeed(ClusterBase):
    """Store's change feed on a cluster (a mixin of ClusterStore)."""

    @unavailable_on_redis_errors
    def position_and_get(self, path: str) -> tuple[str, Thing | None]:
        # Two slots: the position first, then the thing (the order is what matters).
        return self.feed_position(), self.get(path)

    @unavailable_on_redis_errors
    def feed_since(self, after: str, count: int = 1000) -> Backlog:
        wanted = parse_event_id(after)
        if wanted is None:
            raise ValueError(f"not a feed position: {after!r}")
        self.check_feed_node()  # a failover since this process last looked leaves a marker
        # Scripts are not sent in cluster pipelines (a node that lacks one cannot be told):
        # the state, then the range, both on the feed's node.
        state = self._feed_state(keys=[self.feed_key])
        entries = self.client.xrange(self.feed_key, after, "+", count=count + 1)
        return backlog_from(wanted, after, state, entries, count)

    @unavailable_on_redis_errors
    def read_feed(self, after: str, block_ms: int, count: int = 1000) -> list[Event]:
        """As RedisStore.read_feed, sent to the feed's node directly: for XREAD (whose keys move in
        its arguments) redis-py would first ask its default node where the key is, so the
        reader would stop while that node, whatever it holds, fails over. A connection error
        here makes the client re-read the slot map, so the next call finds the new primary."""
        node = self.client.get_node_from_key(self.feed_key)
        reply = self.client.execute_command(
            "XREAD",
            "COUNT",
            count,
            "BLOCK",
            min(block_ms, FEED_BLOCK_MAX_MS),
            "STREAMS",
            self.feed_key,
            after,
            target_nodes=node,
        )
        return events_of_xread(reply, self.feed_key)

    @unavailable_on_redis_errors
    def check_feed_node(self) -> None:
        """Remember the replication id of the node holding the feed; when it has changed (its
        replica took over, or it restarted empty), append a `reset` marker to the feed.

        Replication is asynchronous, so the last events appended before a failover may be
        gone from the new primary even when the entries a watcher holds were kept: no gap shows
        in the stream itself. The marker makes every watcher whose position is before it get a
        reset (backlog_from), in every process. Several processes may each append one; a
        watcher crossing them still gets one reset. The first look only remembers."""
        replid = self._feed_node(keys=[self.feed_key])
        replid = replid.decode() if isinstance(replid, bytes) else str(replid)
        with self._feed_lock:
            seen, self._feed_replid = self._feed_replid, replid
        if seen is not None and seen != replid:
            self._log_event({"e": "reset", "p": ""})

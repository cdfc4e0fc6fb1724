"""ClusterStore: the same keys and scripts as RedisStore (single.py), split by hash slot.

A thing's key, its folder indexes and the change feed live in different slots, usually on
different nodes, so one Lua script cannot touch them all. What stays atomic: everything about one
thing (its key alone is written by put.lua/delete.lua, with the preconditions checked in the same
step), so PUT, PATCH, If-Match/If-None-Match and increments behave exactly as on one Redis. What
follows the thing, as separate steps, is its folder index entries and its feed entry. The order
of those steps is chosen so that an interrupted write (a crash, a failover) leaves at worst an
index entry for a thing that does not exist, which listings skip and remove, never a thing that
exists but is not listed:

- a write that may create a thing first adds its name to every ancestor folder index, then
  writes the thing, and, if it created it, adds the names again (a concurrent cleanup may have
  taken them out in between);
- whoever removes an index entry (a delete, or a listing that found it stale) checks afterwards
  whether the thing or folder is there after all, and puts its whole ancestry back if so;
- a delete takes folders it leaves empty out of their parents, level by level, in the same
  careful way; listings skip (and remove) empty folders that an interruption left behind;
- a folder index and its sub-folder set (layout.py) share a slot: a sub-folder's entry is
  added or removed by folder_entries.lua, which keeps the set in the same step; a thing's
  entry stays a plain ZADD or ZREM;
- the expiry schedule is split in layout.SCHEDULE_SHARDS sorted sets (one slot each); a write
  sets its thing's entry after the thing, with ZADD LT (the earliest end wins), so whatever the
  order of racing writes an entry is never later than its thing's end; the reaper checks each
  due thing at its own key and gives one still alive its real end. An interruption before the
  entry is set leaves the thing to Redis's own expiry and its notification (and to listings).

docs/cluster.md gives the guarantees that follow.

ClusterStore is RedisStore with a mixin per concern in front, each overriding only what the
topology changes, over ClusterBase (cluster_base.py: the one pipelined helper and script
fallback, Batch, and the steps every write shares): cluster_things.py, cluster_folders.py,
cluster_feed.py, cluster_expiry.py; listening.py's ClusterExpiryListening; cluster_querying.py.
API keys are the same as on one Redis (apikeys.py); the service methods are overridden here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.cluster import RedisCluster

from thingstash.store.cluster_expiry import ClusterExpiry
from thingstash.store.cluster_feed import ClusterFeed
from thingstash.store.cluster_folders import ClusterFolders
from thingstash.store.cluster_querying import ClusterQuerying
from thingstash.store.cluster_things import ClusterThings
from thingstash.store.common import (
    UNAVAILABLE_OR_OS_ERRORS,
    limiter_options,
    unavailable_on_redis_errors,
)
from thingstash.store.listening import ClusterExpiryListening
from thingstash.store.single import RedisStore


class ClusterStore(
    ClusterThings, ClusterFolders, ClusterExpiry, ClusterFeed, ClusterExpiryListening, RedisStore
):
    """Things in a Redis Cluster. Same methods and errors as RedisStore."""

    # redis-py types RedisCluster apart from Redis (no common base), though it takes every
    # command the methods inherited from RedisStore send: hence the ignores.
    client: RedisCluster  # type: ignore[assignment]
    # Events of one thing can reach the feed in another order than its writes (see live.hub).
    feed_in_order = False
    # The index declarations live in another slot than the things: no write script can check
    # them, so each process reads them again when they are a second old (docs/cluster.md).
    checks_generation_in_scripts = False
    declarations_refresh_s = 1.0
    cluster_layout = True  # the schedule in shards, sub-folder sets in their index's slot

    def __init__(
        self,
        client: RedisCluster,
        prefix: str = "ts",
        feed_retention: int = 10_000,
        url: str | None = None,
    ) -> None:
        super().__init__(client, prefix, feed_retention, url)  # type: ignore[arg-type]
        self._init_cluster()
        self.querying = ClusterQuerying(self, self.index_keeper)

    # -- service ------------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def approximate_things(self) -> int:
        """Keys with an expiry on every primary (each counts its own slots' keys)."""
        info = self.client.info("keyspace", target_nodes=RedisCluster.PRIMARIES)
        per_node = info.values() if isinstance(info, dict) and "db0" not in info else [info]
        return sum(int(node.get("db0", {}).get("expires", 0)) for node in per_node)

    def limiter_storage(self) -> tuple[str, dict[str, Any]] | None:
        """The `limits` library speaks to a cluster through a redis+cluster:// URI; each
        counter is one key, so it lives in one slot."""
        url = getattr(self, "url", None)
        if url is None:
            return None
        parts = urlsplit(url)
        scheme = "rediss+cluster" if parts.scheme == "rediss" else "redis+cluster"
        return urlunsplit((scheme, parts.netloc, "", "", "")), limiter_options(
            self.layout.limiter_prefix
        )

    def ping(self) -> bool:
        """Healthy when every primary answers: a slot without one cannot be served."""
        try:
            return bool(self.client.ping(target_nodes=RedisCluster.PRIMARIES))
        except UNAVAILABLE_OR_OS_ERRORS:
            return False

    def close(self) -> None:
        close_cluster(self.client)


def close_cluster(client: RedisCluster) -> None:
    """RedisCluster.close() leaves each node's connection pool open: close those too."""
    for node in client.get_nodes():
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.disconnect()
    client.close()

"""Open the store a URL names: a RedisStore on one Redis, a ClusterStore on a node of a Redis
Cluster (CLUSTER INFO tells them apart, see common.is_cluster)."""

from __future__ import annotations

from redis.cluster import RedisCluster

from thingstash.core.store import Store
from thingstash.store.cluster import ClusterStore
from thingstash.store.common import connect
from thingstash.store.single import RedisStore


def open_store(url: str, prefix: str = "ts", feed_retention: int = 10_000) -> Store:
    client = connect(url)
    if isinstance(client, RedisCluster):
        return ClusterStore(client, prefix, feed_retention, url)
    return RedisStore(client, prefix, feed_retention, url)

"""RedisStore: things on one Redis, composed of one mixin per concern over StoreBase (base.py:
the client, the key layout of layout.py, the scripts), as redis-py composes its command families:

- things.py: get, put, put_many, delete, write_together, update, versions;
- folders.py: list_folder, list_names, read_many, delete_tree;
- feed.py: feed_position, position_and_get, feed_since, read_feed;
- expiry.py: record_expiry(ies), reap; listening.py: expiry notifications (both topologies);
- apikeys.py: API keys (both topologies);
- query_methods.py: queries and index declarations (querying.py, indexes.py do the work);
- service.py: ping, close, the rate limiter's storage, the approximate count of things.

ClusterStore (cluster.py) overrides what a Redis Cluster changes.

Writes are one Lua script each: the precondition check, the write, the folder indexes and the
feed entry happen atomically in one round trip. The version is made here, not in Redis: the
time in ms and random bits, so an ETag never repeats even when a thing is deleted and made again.

Updates that depend on the stored JSON (merge patches, increments) are merged in Python and
written with a compare-and-set on the version (optimistic concurrency, retried on conflict):
Lua's cjson would lose number precision, so user JSON is never parsed inside Redis.
"""

from __future__ import annotations

import redis

from thingstash.core.config import DEFAULT_MAX_BODY
from thingstash.store.apikeys import ApiKeys
from thingstash.store.expiry import Expiry
from thingstash.store.feed import Feed
from thingstash.store.folders import Folders
from thingstash.store.listening import ExpiryListening
from thingstash.store.query_methods import Queries
from thingstash.store.querying import Querying
from thingstash.store.service import Service
from thingstash.store.things import Things


class RedisStore(Things, Folders, Feed, Expiry, ExpiryListening, ApiKeys, Queries, Service):
    """Things in one Redis: core.store.Store on Redis. Methods raise model's errors, never HTTP
    ones."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "ts",
        feed_retention: int = 10_000,
        url: str | None = None,
        max_thing_bytes: int = DEFAULT_MAX_BODY,
    ):
        super().__init__(client, prefix, feed_retention, url, max_thing_bytes)
        self.querying = Querying(self, self.index_keeper)

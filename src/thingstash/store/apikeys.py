"""API keys, the one home for both topologies: each key's record and when it was last used, and
the closed marker (layout.py names the keys). Plain hash commands, the same on a cluster."""

from __future__ import annotations

from thingstash.core.model import (
    KeyRecord,
)
from thingstash.store.base import StoreBase
from thingstash.store.common import (
    byte_string,
    unavailable_on_redis_errors,
)


class ApiKeys(StoreBase):
    """Store's API keys (a mixin of RedisStore, and so of ClusterStore)."""

    @unavailable_on_redis_errors
    def key_count(self) -> int:
        return int(self.client.hlen(self.layout.keys_key))

    @unavailable_on_redis_errors
    def is_closed(self) -> bool:
        """Whether requests need a key: a key exists, or one did (the marker). One EXISTS:
        stores from before the marker count as closed by their keys."""
        return int(self.client.exists(self.layout.keys_key, self.layout.closed_key)) > 0

    @unavailable_on_redis_errors
    def reopen(self) -> bool:
        """Open a store that has no key left (the operator's deliberate act); False while
        keys exist."""
        if self.key_count() > 0:
            return False
        self.client.delete(self.layout.closed_key)
        return True

    @unavailable_on_redis_errors
    def add_key(self, record: KeyRecord) -> bool:
        """Store a new key's record; False if its id is taken (the caller draws another).
        The marker is set first: a store is never seen with a key and without it."""
        self.client.set(self.layout.closed_key, b"1")
        return bool(self.client.hsetnx(self.layout.keys_key, record.id, record.to_json()))

    @unavailable_on_redis_errors
    def get_key(self, key_id: str) -> KeyRecord | None:
        raw = byte_string(self.client.hget(self.layout.keys_key, key_id))
        return KeyRecord.from_json(key_id, raw) if raw is not None else None

    @unavailable_on_redis_errors
    def list_keys(self) -> list[KeyRecord]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.layout.keys_key)
        pipe.hgetall(self.layout.keys_used_key)
        records, used = pipe.execute()
        return sorted(
            (KeyRecord.from_json(k.decode(), v, used.get(k)) for k, v in records.items()),
            key=lambda record: (record.created, record.id),
        )

    @unavailable_on_redis_errors
    def revoke_key(self, key_id: str) -> bool:
        if not self.client.hexists(self.layout.keys_key, key_id):
            return False
        # Keys made before the marker existed: set it before the last key can go.
        self.client.set(self.layout.closed_key, b"1")
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.layout.keys_key, key_id)
        pipe.hdel(self.layout.keys_used_key, key_id)
        removed, _ = pipe.execute()
        return bool(removed)

    @unavailable_on_redis_errors
    def touch_key(self, key_id: str, when: int) -> None:
        self.client.hset(self.layout.keys_used_key, key_id, when)

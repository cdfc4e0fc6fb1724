"""The service side of one Redis: health (ping), closing, the rate limiter's storage and the
approximate count of things."""

from __future__ import annotations

from typing import Any

from thingstash.store.base import StoreBase
from thingstash.store.common import (
    UNAVAILABLE_OR_OS_ERRORS,
    limiter_options,
    unavailable_on_redis_errors,
)


class Service(StoreBase):
    """Store's service methods on one Redis (a mixin of RedisStore)."""

    @unavailable_on_redis_errors
    def approximate_things(self) -> int:
        """Keys with an expiry in this database (INFO keyspace): every thing has one, and the
        indexes, feed and API keys have none, so this counts things without a scan. Rate-limit
        counters and other users of a shared database add to it."""
        info = self.client.info("keyspace")
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return int(info.get(f"db{db}", {}).get("expires", 0))

    def limiter_storage(self) -> tuple[str, dict[str, Any]] | None:
        """The storage URI and options for the `limits` library (under flask-limiter), which
        opens its own connection: the same server as ours, its keys under `ns:rl`. None when
        this store was not opened from a URL."""
        if self.url is None:
            return None
        uri = self.url
        if uri.startswith("unix://"):
            uri = "redis+unix://" + uri[len("unix://") :]
        return uri, limiter_options(self.layout.limiter_prefix)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except UNAVAILABLE_OR_OS_ERRORS:
            return False

    def close(self) -> None:
        self.client.close()

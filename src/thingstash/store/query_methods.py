"""Store's query and index methods, handed to Querying (store/querying.py) and IndexKeeper
(store/indexes.py), which own queries and index building."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from thingstash.core.answers import Answer
from thingstash.core.indexes import Index
from thingstash.core.queries import Query
from thingstash.store.base import StoreBase
from thingstash.store.common import (
    unavailable_on_redis_errors,
)
from thingstash.store.querying import Querying


class Queries(StoreBase):
    """Store's queries and index declarations (a mixin of RedisStore)."""

    querying: Querying

    @unavailable_on_redis_errors
    def query(
        self,
        folder: str,
        query: Query,
        costly: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> Answer:
        """The answer to a query of the things directly in `folder` (thingstash.core.queries).
        `costly` is entered around the work of one computed without an index (reading up to
        queries.MAX_UNINDEXED_BYTES of JSON): the caller's gate for such work."""
        return self.querying.answer(folder, query, costly)

    @unavailable_on_redis_errors
    def indexes(self) -> list[Index]:
        return list(self.index_keeper.reload()[1])

    @unavailable_on_redis_errors
    def create_index(self, folder: str, field: str) -> tuple[Index, bool]:
        """Declare an index (folder pattern, field); each process's builder takes in what is
        stored. (The index, False) when the same one is declared already."""
        return self.index_keeper.create(folder, field)

    @unavailable_on_redis_errors
    def drop_index(self, index_id: str) -> Index | None:
        return self.querying.drop_index(index_id)

    @unavailable_on_redis_errors
    def build_indexes(self, stop: threading.Event | None = None) -> int:
        """Build the indexes still building (bounded steps); how many became ready."""
        return self.querying.build_indexes(stop)

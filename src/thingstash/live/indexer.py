"""The process's index builder: every BUILD_EVERY_S it asks the store to take what is stored
into the indexes still building (store.build_indexes): bounded batches, one process per index
(a lease in Redis), so a 1,000,000-thing folder is indexed beside the traffic, not instead of it.
Every write keeps an index current from the moment it is declared; the build only catches up
with what was stored before."""

from __future__ import annotations

from thingstash.core.store import Queries
from thingstash.live.periodic import Periodic

BUILD_EVERY_S = 1.0


class IndexBuilder(Periodic[Queries]):
    name = "index-builder"
    doing = "build indexes"

    def __init__(self, store: Queries, every: float = BUILD_EVERY_S) -> None:
        super().__init__(store, every)

    def tick(self) -> None:
        self.store.build_indexes(self._stop)

    def rest(self, took: float) -> float:
        return self.every  # a whole period between builds, however long one took

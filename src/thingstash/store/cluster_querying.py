"""Queries on a cluster (ClusterQuerying): store/querying.py's, with each query index entry set
as a step of its own (index_entry.lua through ClusterBase.set_index_entries), so that a build
and a repair set an entry only where no write got in first."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from thingstash.core.indexes import Index
from thingstash.store.indexes import Listed
from thingstash.store.querying import Querying

if TYPE_CHECKING:
    from thingstash.store.cluster_base import ClusterBase


class ClusterQuerying(Querying):
    """Queries on a cluster: as on one Redis, but an index entry follows its thing (a step of
    its own), so a build and a repair set an entry only where no write got in first."""

    store: ClusterBase

    def repair(self, index: Index, folder: str, moved: list[tuple[str, bytes, bytes]]) -> None:
        """Set each entry found stale to the member of the thing as read, unless it changed
        since (a write's own step wins)."""
        zset = self.keeper.zset_key(index.id, folder)
        hash_key = self.keeper.hash_key(index.id, folder)
        self.store.set_index_entries(
            [(zset, hash_key, name, fresh, stale) for name, stale, fresh in moved]
        )

    def drop_index(self, index_id: str) -> Index | None:
        """As on one Redis, then once more after every process has seen the drop: a write by a
        process whose copy of the declarations was up to a second old may have set an entry
        of the dropped index meanwhile."""
        found = super().drop_index(index_id)
        if found is not None and self.keeper.refresh_s is not None:
            time.sleep(2 * self.keeper.refresh_s + 0.5)
            super().drop_index_keys(found)
        return found

    def _take_in(self, index: Index, folder: str, entries: list[Listed]) -> bool:
        """Add the entries of things read by a build where no write has set one since."""
        _, indexes = self.keeper.declared()
        if all(i.id != index.id for i in indexes):
            return False
        zset = self.keeper.zset_key(index.id, folder)
        hash_key = self.keeper.hash_key(index.id, folder)
        self.store.set_index_entries(
            [(zset, hash_key, entry.name, entry.member, b"-") for entry in entries]
        )
        return True

"""Building query indexes over what is already stored, on one Redis (ClusterQuerying adapts
it): each index still building taken in folder by folder in bounded steps (index_build.lua), one
process per index (a lease), then marked ready; the sub-folder sets of a store written by an
earlier version made once by a walk of every folder index (subfolders_build.lua); and an index's
keys deleted when it is dropped. The one home of index building: every write keeps an index
current from the moment it is declared (store/indexes.py), a build only catches up with what was
stored before. store/querying.py answers from what is built here.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator

from redis.exceptions import ResponseError

from thingstash.core import documents
from thingstash.core.indexes import BUILDING, WILDCARD, Index
from thingstash.core.model import StorageUnavailable, version_time_ms
from thingstash.core.queries import Query
from thingstash.store.common import load_script
from thingstash.store.indexes import STALE_RETRIES, IndexedStore, IndexKeeper, Listed, is_stale

BUILD_BATCH = 500  # things taken into an index per script call while building
BUILD_BATCH_BYTES = 16 * 1024 * 1024  # the JSON one build step reads, at most
LEASE_MS = 30_000  # a builder that stops renewing its lease leaves the build to another
SUBFOLDER_BATCH = 1000  # names of a folder index read per step of building its sub-folder set

log = logging.getLogger(__name__)


class IndexBuilding:
    """The index builds of one store, and reading things in a query's order (shared with the
    answering of store/querying.py's Querying, which extends it)."""

    def __init__(self, store: IndexedStore, keeper: IndexKeeper) -> None:
        self.store = store
        self.keeper = keeper
        self.client = store.client
        self._build = self.client.register_script(load_script("index_build.lua"))
        self._subfolders_build = self.client.register_script(load_script("subfolders_build.lua"))
        self.subfolders_ready_key = f"{store.prefix}:subfolders:ready"
        self.subfolders_lease_key = f"{store.prefix}:subfolders:lease"
        self._subfolders_ready = False
        self._walking = threading.Lock()  # one walk at a time in this process
        self._walk_pending: list[tuple[str, bytes]] = [("", b"-")]
        self._walk_steps = 0

    def _read(
        self, folder: str, names: list[str], query: Query, budget: int
    ) -> tuple[list[Listed | None], bool]:
        """The things named, each with its member in the query's order (None when gone), read
        in order until `budget` bytes of JSON (the first whatever its size). The second value
        says whether all of them were read."""
        assert query.field is not None
        needs_json = query.values or not (query.field.is_name or query.field.is_updated)
        reply = self.store.read_many([folder + name for name in names], needs_json, budget)
        listed: list[Listed | None] = []
        for name, found in zip(names, reply, strict=False):
            if found is None:
                listed.append(None)
                continue
            value = documents.loads(found.body) if needs_json and found.body else None
            member = query.member_of(name, value, version_time_ms(found.version))
            listed.append(Listed(name, found, member, value))
        return listed, len(reply) == len(names)

    # -- indexes ------------------------------------------------------------------------------

    def build_indexes(self, stop: threading.Event | None = None) -> int:
        """Take in what is stored into every index still building (one at a time, in bounded
        steps, one process per index: a lease); returns how many were made ready."""
        self.build_subfolder_sets(stop)
        _, indexes = self.keeper.reload()
        ready = 0
        for index in indexes:
            if index.state != BUILDING or (stop is not None and stop.is_set()):
                continue
            refresh = self.keeper.refresh_s
            if refresh is not None and time.time() - index.created < 2 * refresh + 1:
                # Processes that cannot check the declarations in their write scripts (a
                # cluster) see a new one within `refresh`: the build starts once they all keep
                # the index, so that nothing written before is missed.
                continue
            token = secrets.token_hex(8)
            lease = self.keeper.lease_key(index.id)
            if not self.client.set(lease, token, nx=True, px=LEASE_MS):
                continue  # another process builds it
            try:
                if self._build_index(index, lease, stop) and self.keeper.mark_ready(index):
                    ready += 1
            finally:
                if self.client.get(lease) == token.encode():
                    self.client.delete(lease)
        return ready

    def _build_index(self, index: Index, lease: str, stop: threading.Event | None) -> bool:
        field = index.parsed_field
        query = Query(field)
        for folder in folders_matching(index.folder, self.store.folder_names):
            after = b"-"
            while True:
                if stop is not None and stop.is_set():
                    return False
                batch = self.store.folder_names(folder, after, BUILD_BATCH)
                names = [raw.decode("utf-8") for raw in batch if not raw.endswith(b"/")]
                read, complete = self._read(folder, names, query, BUILD_BATCH_BYTES)
                entries = [entry for entry in read if entry is not None]
                if entries and not self._take_in(index, folder, entries):
                    return False  # dropped meanwhile
                self.client.pexpire(lease, LEASE_MS)
                if not complete:  # the byte budget: on from the last thing read
                    after = b"(" + names[len(read) - 1].encode("utf-8")
                    continue
                if len(batch) < BUILD_BATCH:
                    break
                after = b"(" + batch[-1]
        return True

    def _take_in(self, index: Index, folder: str, entries: list[Listed]) -> bool:
        for _ in range(STALE_RETRIES):
            generation, indexes = self.keeper.declared()
            if all(i.id != index.id for i in indexes):
                return False
            keys = [
                self.keeper.generation_key,
                self.keeper.zset_key(index.id, folder),
                self.keeper.hash_key(index.id, folder),
                *(self.store.thing_key(folder + entry.name) for entry in entries),
            ]
            args: list[str | bytes] = [generation]
            for entry in entries:
                args += (entry.thing.version, entry.name, entry.member)
            try:
                self._build(keys=keys, args=args)
                return True
            except ResponseError as error:
                if not is_stale(error):
                    raise
                self.keeper.reload()
        raise StorageUnavailable("the index declarations kept changing; try again")

    def drop_index(self, index_id: str) -> Index | None:
        found = self.keeper.drop_declaration(index_id)
        if found is not None:
            self.drop_index_keys(found)
        return found

    def drop_index_keys(self, index: Index) -> None:
        """Delete an index's keys, folder by folder (found through the folder indexes)."""
        for folder in folders_matching(index.folder, self.store.folder_names):
            self.client.delete(
                self.keeper.zset_key(index.id, folder), self.keeper.hash_key(index.id, folder)
            )

    # -- sub-folder sets ----------------------------------------------------------------------

    def build_subfolder_sets(
        self, stop: threading.Event | None = None, budget_s: float | None = None
    ) -> bool:
        """Make every folder's sub-folder set, for a store written by a version that kept none:
        a walk of the folder indexes from the top, a bounded step at a time
        (subfolders_build.lua), one process at a time (a lease), then the mark that they are
        complete. Writes meanwhile keep the sets themselves. Returns whether they are complete;
        False when another process (or thread) is walking, or on `stop` or past `budget_s`:
        the walk goes on from where it was at the next call (each step is harmless to repeat,
        and one repeated after a pause still leaves the set exact)."""
        if self._subfolders_ready:
            return True
        if not self._walking.acquire(blocking=False):
            return False
        try:
            if self.client.exists(self.subfolders_ready_key):
                self._subfolders_ready = True
                return True
            token = secrets.token_hex(8)
            lease = self.subfolders_lease_key
            if not self.client.set(lease, token, nx=True, px=LEASE_MS):
                return False
            try:
                return self._walk(lease, stop, budget_s)
            finally:
                if self.client.get(lease) == token.encode():
                    self.client.delete(lease)
        finally:
            self._walking.release()

    def _walk(self, lease: str, stop: threading.Event | None, budget_s: float | None) -> bool:
        started = time.monotonic()
        pending = self._walk_pending  # (folder, where to go on in it), the top level first
        while pending:
            if (stop is not None and stop.is_set()) or (
                budget_s is not None and time.monotonic() - started > budget_s
            ):
                return False
            folder, after = pending.pop()
            reply = self._subfolders_build(
                keys=[self.store.folder_key(folder), self.store.subfolders_key(folder)],
                args=[after, SUBFOLDER_BATCH],
            )
            if reply[0] is not None:
                pending.append((folder, b"(" + reply[0]))  # the rest of it, after these
            pending += [(folder + name.decode("utf-8"), b"-") for name in reply[1:]]
            self._walk_steps += 1
            if self._walk_steps % 50 == 0:
                self.client.pexpire(lease, LEASE_MS)
        self.client.set(self.subfolders_ready_key, b"1")
        self._subfolders_ready = True
        if self._walk_steps > 1:
            log.info("built the sub-folder sets: %d steps of the walk", self._walk_steps)
        return True


def folders_matching(
    pattern: str, names_in: Callable[[str, bytes, int], list[bytes]]
) -> Iterator[str]:
    """The concrete folders a pattern names that exist, found through the folder indexes
    (`names_in(folder, after, count)` reads one batch of one), a bounded batch at a time."""
    segments = pattern.split("/")[:-1] if pattern else []

    def walk(prefix: str, rest: list[str]) -> Iterator[str]:
        if not rest:
            yield prefix
            return
        if rest[0] != WILDCARD:
            yield from walk(prefix + rest[0] + "/", rest[1:])
            return
        after = b"-"
        while True:
            names = names_in(prefix, after, 1000)
            for raw in names:
                if raw.endswith(b"/"):
                    yield from walk(prefix + raw.decode("utf-8"), rest[1:])
            if len(names) < 1000:
                return
            after = b"(" + names[-1]

    yield from walk("", segments)

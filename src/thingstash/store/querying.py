"""Answering queries of a folder on one Redis (ClusterStore adapts it): by `$name` (and a count
of the folder's things) from the folder's own index and its sub-folder set, whatever its size;
by any other field from an index when a ready one covers the folder and field, else from the
whole folder read and ordered in Python (up to queries.MAX_UNINDEXED_THINGS things); and
building indexes over what is stored.

A page by name is two round trips too: name_query.lua (the page's names, passing over the
sub-folders among them, and the rank of the first: its rank in the index less the sub-folders
before it) then get_many.lua. The sub-folder sets of a store written by an earlier version are
built once, by a walk of every folder index (build_subfolder_sets); until it is done, `$name`
is answered as before (from a `$name` index, or computed on a folder of up to 1,000 things),
else 503 (answers.NamesBuilding).

A page from an index costs two round trips whatever the folder's size: query.lua (the members
of the page and the rank of the first, atomically, checked against this process's declarations)
then get_many.lua (the things). Each thing read is checked against its member: a write between
the two steps (it moved) has the page read again, so the order shown is one the index had with
the values shown. A thing found gone (expired, its reap not yet done) is recorded as expired,
which takes it out of every index, and the page is read again.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from thingstash.core import answers, documents, ordering, queries
from thingstash.core.answers import Answer, NamesBuilding, NeedsIndex
from thingstash.core.config import MAX_PAGE_VALUE_BYTES
from thingstash.core.indexes import BUILDING, READY, Index, covering
from thingstash.core.model import StorageUnavailable, ThingMissing, version_time_ms
from thingstash.core.queries import Query
from thingstash.store.common import load_script
from thingstash.store.indexes import (
    BUILD_BATCH,
    LEASE_MS,
    STALE_RETRIES,
    IndexKeeper,
    Listed,
    answer_of,
    folders_matching,
    is_stale,
)

if TYPE_CHECKING:
    from thingstash.store.single import RedisStore

BUILD_BATCH_BYTES = 16 * 1024 * 1024  # the JSON one build step reads, at most
_READ_CHUNK = 250  # things per get_many.lua call when reading a whole (small) folder
_PAGE_ATTEMPTS = 3
# The most sub-folder names one page by name passes over (a few ms of Redis at most): past
# them, on a folder whose things lie among a great many sub-folders, the page ends early with
# a cursor, as a listing page does at its byte budget.
MAX_PASSED_SUBFOLDERS = 10_000
SUBFOLDER_BATCH = 1000  # names of a folder index read per step of building its sub-folder set
# A query that finds the sub-folder sets not built yet builds them itself for this long (a
# new or small store: at once), then leaves the rest to the background builder.
SUBFOLDER_BUILD_IN_QUERY_S = 0.5

log = logging.getLogger(__name__)


class _Again(Exception):
    """The page changed while it was read: read it again."""


class Querying:
    """The queries and index builds of one store."""

    def __init__(self, store: RedisStore, keeper: IndexKeeper) -> None:
        self.store = store
        self.keeper = keeper
        self.client = store.client
        self._query = self.client.register_script(load_script("query.lua"))
        self._build = self.client.register_script(load_script("index_build.lua"))
        self._name_query = self.client.register_script(load_script("name_query.lua"))
        self._subfolders_build = self.client.register_script(load_script("subfolders_build.lua"))
        self.subfolders_ready_key = f"{store.prefix}:subfolders:ready"
        self.subfolders_lease_key = f"{store.prefix}:subfolders:lease"
        self._subfolders_ready = False
        self._walking = threading.Lock()  # one walk at a time in this process
        self._walk_pending: list[tuple[str, bytes]] = [("", b"-")]
        self._walk_steps = 0

    # -- answering ----------------------------------------------------------------------------

    def answer(
        self,
        folder: str,
        query: Query,
        costly: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> Answer:
        if query.by_name and self.subfolders_ready():
            return self._by_name(folder, query)
        try:
            return self._answer_as_before(folder, query, costly or nullcontext)
        except NeedsIndex:
            if query.by_name:  # no index needed once the sub-folder sets are built
                raise NamesBuilding() from None
            raise

    def _answer_as_before(
        self, folder: str, query: Query, costly: Callable[[], AbstractContextManager[None]]
    ) -> Answer:
        if query.field is None:  # count=true alone: the things directly in the folder
            return self._count_things(folder)
        field = query.field
        for attempt in range(STALE_RETRIES):
            generation, indexes = self._declared()
            index = covering(indexes, folder, field)
            if index is None:
                generation, indexes = self.keeper.fresh()
                index = covering(indexes, folder, field)
            if index is None:
                with costly():
                    return self._in_memory(folder, query)
            try:
                return self._from_index(folder, query, index, generation, attempt)
            except ResponseError as error:
                if not is_stale(error):
                    raise
                self.keeper.reload()
            except _Again:
                continue
        raise StorageUnavailable("the folder kept changing while it was read; try again")

    def _by_name(self, folder: str, query: Query) -> Answer:
        """A query by name, or a count of the folder's things, from the folder's own index and
        its sub-folder set (name_query.lua), then the things (get_many.lua)."""
        keys = [self.store.folder_key(folder), self.store.subfolders_key(folder)]
        mode = "count" if query.count else "around" if query.around is not None else "page"
        bounds = query.bounds() if mode != "around" else ordering.LexRange()
        args: list[str | bytes | int] = [
            mode,
            bounds.low,
            bounds.high,
            "desc" if query.desc else "asc",
            query.limit,
            query.around or "",
            MAX_PASSED_SUBFOLDERS,
        ]
        for _ in range(_PAGE_ATTEMPTS):
            reply = self._name_query(keys=keys, args=args)
            if mode == "count":
                return Answer([], None, int(reply[0]))
            if reply[0] == -1:
                raise ThingMissing(folder + (query.around or ""))
            rank, more, cut, members = int(reply[0]), bool(reply[1]), reply[2], list(reply[3:])
            names = [member.decode("utf-8") for member in members]
            listed, _ = self._read(folder, names, query, MAX_PAGE_VALUE_BYTES)
            gone = [name for name, entry in zip(names, listed, strict=False) if entry is None]
            if gone:  # expired, not reaped yet: recorded (out of the index), and read again
                self.store.record_expiries([folder + name for name in gone])
                continue
            page = [entry for entry in listed if entry is not None]
            if len(page) < len(members):  # the byte budget ended the page early
                members, more, cut = members[: len(page)], True, b""
            answer = answer_of(query, page, members, rank, more)
            # A page ended early among many sub-folders resumes after the last name read.
            return replace(answer, next=cut) if cut else answer
        raise StorageUnavailable("the folder kept changing while it was read; try again")

    # -- sub-folder sets ----------------------------------------------------------------------

    def subfolders_ready(self) -> bool:
        """Whether every folder's sub-folder set is complete (known once, then kept: every
        script that changes a folder index keeps them so). Not yet: the walk goes on here (or
        is waited for, in another process) for at most SUBFOLDER_BUILD_IN_QUERY_S."""
        if self._subfolders_ready:
            return True
        deadline = time.monotonic() + SUBFOLDER_BUILD_IN_QUERY_S
        while not self.build_subfolder_sets(budget_s=deadline - time.monotonic()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

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

    def _declared(self) -> tuple[str, tuple[Index, ...]]:
        """The declarations a query goes by. On one Redis the query script checks their
        generation itself; elsewhere (a cluster) it is checked first, one round trip, so that a
        query never reads an index dropped or not yet ready by this process's copy."""
        if self.store.checks_generation_in_scripts:
            return self.keeper.declared()
        return self.keeper.fresh()

    def _count_things(self, folder: str) -> Answer:
        generation, indexes = self.keeper.fresh()
        covering = [i for i in indexes if i.state == READY and i.covers(folder)]
        if covering:
            index = covering[0]
            try:
                reply = self._run_query(index, folder, generation, "count", b"-", b"+", False, 0)
                return Answer([], None, int(reply[0]))
            except ResponseError as error:
                if not is_stale(error):
                    raise
                self.keeper.reload()
        names = self._thing_names(folder, ordering.parse_field(ordering.NAME_FIELD))
        return Answer([], None, len(names))

    def _run_query(
        self,
        index: Index,
        folder: str,
        generation: str,
        mode: str,
        low: bytes,
        high: bytes,
        desc: bool,
        limit: int,
        around: str = "",
    ) -> list[Any]:
        keys = [self.keeper.zset_key(index.id, folder), self.keeper.hash_key(index.id, folder)]
        if self.store.checks_generation_in_scripts:
            keys.append(self.keeper.generation_key)
        return list(
            self._query(
                keys=keys,
                args=[generation, mode, low, high, "desc" if desc else "asc", limit, around],
            )
        )

    def _from_index(
        self, folder: str, query: Query, index: Index, generation: str, attempt: int
    ) -> Answer:
        bounds = query.bounds()
        if query.count:
            reply = self._run_query(
                index, folder, generation, "count", bounds.low, bounds.high, query.desc, 0
            )
            return Answer([], None, int(reply[0]))
        mode = "around" if query.around is not None else "page"
        if mode == "around":
            bounds = ordering.LexRange()
        reply = self._run_query(
            index,
            folder,
            generation,
            mode,
            bounds.low,
            bounds.high,
            query.desc,
            query.limit,
            query.around or "",
        )
        if reply[0] == -1:
            raise ThingMissing(folder + (query.around or ""))
        rank, more, members = int(reply[0]), bool(reply[1]), list(reply[2:])
        names = [self._name_of(query, member) for member in members]
        listed, _ = self._read(folder, names, query, MAX_PAGE_VALUE_BYTES)
        gone = [name for name, entry in zip(names, listed, strict=False) if entry is None]
        if gone:
            self.store.record_expiries([folder + name for name in gone])
            raise _Again
        page = [entry for entry in listed if entry is not None]
        if len(page) < len(members):  # the byte budget ended the page early
            members, more = members[: len(page)], True
        moved = [
            (entry.name, member, entry.member)
            for entry, member in zip(page, members, strict=True)
            if entry.member != member
        ]
        if moved:
            self.repair(index, folder, moved)
            if attempt < _PAGE_ATTEMPTS:
                raise _Again
        return answer_of(query, page, members, rank, more)

    def repair(self, index: Index, folder: str, moved: list[tuple[str, bytes, bytes]]) -> None:
        """Entries found to disagree with their things, as (name, member in the index, member
        of the thing read). On one Redis the same script writes both, so the thing was written
        between the two steps of the page, which is read again: nothing to repair."""

    @staticmethod
    def _name_of(query: Query, member: bytes) -> str:
        if query.by_name:
            return member.decode("utf-8")
        return ordering.split_member(member)[1]

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

    def _thing_names(self, folder: str, field: ordering.Field) -> list[str]:
        """The names of the things directly in `folder`; NeedsIndex past the most a query
        computes without an index."""
        names: list[str] = []
        after = b"-"
        while True:
            batch = self.store.folder_names(folder, after, 1000)
            names += [raw.decode("utf-8") for raw in batch if not raw.endswith(b"/")]
            if len(names) > queries.MAX_UNINDEXED_THINGS:
                raise NeedsIndex(folder, field)
            if len(batch) < 1000:
                return names
            after = b"(" + batch[-1]

    def _in_memory(self, folder: str, query: Query) -> Answer:
        assert query.field is not None
        names = self._thing_names(folder, query.field)
        listed: list[Listed] = []
        left = queries.MAX_UNINDEXED_BYTES
        for start in range(0, len(names), _READ_CHUNK):
            chunk = names[start : start + _READ_CHUNK]
            read, complete = self._read(folder, chunk, query, left)
            if not complete:
                raise NeedsIndex(folder, query.field, too_big=True)
            for entry in read:
                if entry is not None:
                    listed.append(entry)
                    left -= len(entry.thing.body)
        listed.sort(key=lambda entry: entry.member)
        members = [entry.member for entry in listed]
        if query.count:
            return Answer([], None, answers.count_in(members, query))
        if query.around is not None:
            target = next((e.member for e in listed if e.name == query.around), None)
            window = answers.window_around(members, query, target) if target else None
            if window is None:
                raise ThingMissing(folder + query.around)
        else:
            window = answers.window(members, query)
        by_member = {entry.member: entry for entry in listed}
        page = [by_member[member] for member in window.members]
        return answer_of(query, page, window.members, window.first_rank, window.more)

    # -- building -----------------------------------------------------------------------------

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

"""Answering queries of a folder on one Redis (ClusterQuerying adapts it): by `$name` (and a count
of the folder's things) from the folder's own index and its sub-folder set, whatever its size;
by any other field from an index when a ready one covers the folder and field, else from the
whole folder read and ordered in Python (up to queries.MAX_UNINDEXED_THINGS things). Building the
indexes and the sub-folder sets is store/indexbuild.py's (Querying extends its IndexBuilding).

A page by name is two round trips too: name_query.lua (the page's names, passing over the
sub-folders among them, and the rank of the first: its rank in the index less the sub-folders
before it) then get_many.lua. The sub-folder sets of a store written by an earlier version are
built once, by a walk of every folder index (indexbuild.py's build_subfolder_sets); until it is
done, `$name` is answered as before (from a `$name` index, or computed on a folder of up to 1,000
things), else 503 (answers.NamesBuilding).

A page from an index costs two round trips whatever the folder's size: query.lua (the members
of the page and the rank of the first, atomically, checked against this process's declarations)
then get_many.lua (the things). Each thing read is checked against its member: a write between
the two steps (it moved) has the page read again, so the order shown is one the index had with
the values shown. A thing found gone (expired, its reap not yet done) is recorded as expired,
which takes it out of every index, and the page is read again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

from redis.exceptions import ResponseError

from thingstash.core import answers, ordering, queries
from thingstash.core.answers import Answer, Found, NamesBuilding, NeedsIndex
from thingstash.core.config import MAX_PAGE_VALUE_BYTES
from thingstash.core.indexes import READY, Index, covering
from thingstash.core.model import StorageUnavailable, ThingMissing, version_time_ms
from thingstash.core.queries import Query
from thingstash.store.common import load_script
from thingstash.store.indexbuild import IndexBuilding
from thingstash.store.indexes import STALE_RETRIES, IndexedStore, IndexKeeper, Listed, is_stale

_READ_CHUNK = 250  # things per get_many.lua call when reading a whole (small) folder
_PAGE_ATTEMPTS = 3
# The most sub-folder names one page by name passes over (a few ms of Redis at most): past
# them, on a folder whose things lie among a great many sub-folders, the page ends early with
# a cursor, as a listing page does at its byte budget.
MAX_PASSED_SUBFOLDERS = 10_000
# A query that finds the sub-folder sets not built yet builds them itself for this long (a
# new or small store: at once), then leaves the rest to the background builder.
SUBFOLDER_BUILD_IN_QUERY_S = 0.5


class _Again(Exception):
    """The page changed while it was read: read it again."""


class Querying(IndexBuilding):
    """The queries of one store, over its index builds (IndexBuilding)."""

    def __init__(self, store: IndexedStore, keeper: IndexKeeper) -> None:
        super().__init__(store, keeper)
        self._query = self.client.register_script(load_script("query.lua"))
        self._name_query = self.client.register_script(load_script("name_query.lua"))

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


def answer_of(
    query: Query, listed: list[Listed], members: list[bytes], rank: int, more: bool
) -> Answer:
    """An Answer from the things read for a page (in the page's order)."""
    assert query.field is not None
    found = [
        Found(
            entry.name,
            entry.thing,
            rank + i,
            queries.key_value(
                query.field, entry.name, entry.value, version_time_ms(entry.thing.version)
            ),
        )
        for i, entry in enumerate(listed)
    ]
    last = members[-1] if members and more else None
    return Answer(found, last, None)

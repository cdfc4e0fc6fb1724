"""A query's answer (core/queries.py has the query): the things found, in order, with their ranks,
or a count; the pages of an order computed over members already in order (what an index in
Redis answers, computed in memory for a small folder without one); and the errors of a query
that cannot be answered now (NeedsIndex, NamesBuilding).

Pure (stdlib and orjson): no Redis, no HTTP.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thingstash.core.model import StorageUnavailable, Thing
from thingstash.core.ordering import Field, LexRange
from thingstash.core.queries import MAX_UNINDEXED_BYTES, MAX_UNINDEXED_THINGS, Query


@dataclass(frozen=True, slots=True)
class Found:
    """One thing of an answer: its name, its state as read (a stored Thing), its rank in the
    whole order and its value of the field (`key`)."""

    name: str
    thing: Thing
    rank: int
    key: Any


@dataclass(frozen=True, slots=True)
class Answer:
    """A query's answer: a page of things in order with the member to resume after (`next`),
    or, for count=true, the count alone."""

    found: list[Found]
    next: bytes | None
    count: int | None = None


class NeedsIndex(Exception):
    """A query on a folder too large to answer without an index on its field; the detail says
    which index to create."""

    def __init__(self, folder: str, field: Field, too_big: bool = False) -> None:
        self.folder = folder
        self.field = field
        self.detail = create_hint(folder, field, too_big)
        super().__init__(self.detail)


class NamesBuilding(StorageUnavailable):
    """A query by name (or a count) on a large folder of a store written by an earlier version,
    whose sub-folder sets are still being built (a one-time walk): a 503, to be asked again."""

    detail = (
        "this store is building what it needs to answer queries by name and counts on large "
        "folders (a one-time step after an upgrade, a few seconds per million things): ask "
        "again shortly"
    )

    def __init__(self) -> None:
        super().__init__(self.detail)


def create_hint(folder: str, field: Field, too_big: bool = False) -> str:
    """The detail of the 400 for a query too large to compute without an index."""
    shown_folder = folder or "/"
    size = (
        f"holds more than {MAX_UNINDEXED_BYTES // (1024 * 1024)} MiB of JSON"
        if too_big
        else f"has more than {MAX_UNINDEXED_THINGS:,} things"
    )
    return (
        f"the folder {shown_folder} {size}, too much to "
        f"order by {field.text} without an index: create one with "
        f"`thingstash index create {shown_folder} '{field.text}'` (or POST /_indexes "
        f'{{"folder": "{shown_folder}", "field": "{field.text}"}} with an admin key), '
        "then ask again"
    )


# -- pages of members in order -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """One page of an answer: its members in the query's order, the rank of the first (1-based,
    in the whole order: bounds and cursor do not change ranks), and whether more follow."""

    members: list[bytes]
    first_rank: int
    more: bool

    def ranks(self) -> range:
        return range(self.first_rank, self.first_rank + len(self.members))


def _index_range(members: Sequence[bytes], bounds: LexRange) -> tuple[int, int]:
    """Positions [lo, hi) of the ascending `members` that lie within `bounds`."""
    if bounds.low == b"-":
        lo = 0
    elif bounds.low[:1] == b"[":
        lo = bisect.bisect_left(members, bounds.low[1:])
    else:
        lo = bisect.bisect_right(members, bounds.low[1:])
    if bounds.high == b"+":
        hi = len(members)
    elif bounds.high[:1] == b"[":
        hi = bisect.bisect_right(members, bounds.high[1:])
    else:
        hi = bisect.bisect_left(members, bounds.high[1:])
    return lo, max(lo, hi)


def window(members: Sequence[bytes], query: Query) -> Window:
    """The page `query` asks of `members` (ascending, without repeats): what an index in Redis
    answers with ZRANGE BYLEX and ZRANK, computed in memory."""
    lo, hi = _index_range(members, query.bounds())
    total = len(members)
    if query.desc:
        picked = list(reversed(members[max(lo, hi - query.limit - 1) : hi]))
        page = picked[: query.limit]
        return Window(page, total - hi + 1, len(picked) > query.limit)
    picked = list(members[lo : min(hi, lo + query.limit + 1)])
    return Window(picked[: query.limit], lo + 1, len(picked) > query.limit)


def count_in(members: Sequence[bytes], query: Query) -> int:
    lo, hi = _index_range(members, query.range_bounds())
    return hi - lo


def around_start(rank0: int, total: int, limit: int) -> int:
    """The 0-based position a page of `limit` centred on position `rank0` starts at: centred
    where it can be, kept whole at either end of the order."""
    return max(0, min(rank0 - (limit - 1) // 2, total - limit))


def window_around(members: Sequence[bytes], query: Query, target: bytes) -> Window | None:
    """The page centred on the member `target`, None when it is not among `members`."""
    at = bisect.bisect_left(members, target)
    if at >= len(members) or members[at] != target:
        return None
    ordered = list(reversed(members)) if query.desc else list(members)
    position = len(members) - 1 - at if query.desc else at
    first = around_start(position, len(ordered), query.limit)
    page = ordered[first : first + query.limit]
    return Window(page, first + 1, first + query.limit < len(ordered))

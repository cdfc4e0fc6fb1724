"""Queries of a folder (API.md, "Queries"): their parameters checked and typed, and the answer
computed over members already in order (a small folder without an index, sorted in Python;
the stores answer from Redis the same way).

`parse_query` takes the query string as a plain mapping of names to their values, so it needs
no web framework, and raises BadQuery with a detail that says what to send instead. A request
with none of the query parameters is a listing (None), which folders answer as before.

Pure (stdlib and orjson): no Redis, no HTTP.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thingstash.core import documents, ordering
from thingstash.core.model import StorageUnavailable, Thing
from thingstash.core.ordering import Field, LexRange

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A query on a field without an index is computed from the whole folder, up to this many things.
MAX_UNINDEXED_THINGS = 1000
# ... and reads at most this much of their JSON (as a listing page with values holds): past it,
# a 400 naming the index to create. It parses in ~40 ms; web/admission.py lets only a few such
# queries run at once per worker, so that plain reads and writes keep their latency.
MAX_UNINDEXED_BYTES = 4 * 1024 * 1024

# Parameters that make a folder GET a query (limit, cursor and values belong to listings too).
QUERY_PARAMETERS = ("order_by", "desc", "start_at", "end_at", "equal_to", "around", "count")
PARAMETERS = (*QUERY_PARAMETERS, "limit", "cursor", "values")
_BOUNDS = ("start_at", "end_at", "equal_to")


class BadQuery(ValueError):
    """A query that cannot be answered as sent: `title` and `detail` for a 400."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Query:
    """A checked query. `field` is None for a count of the folder's things. Bounds are already
    keys of the order (`start`, `end`: inclusive, in the query's direction); `after` is the
    member a cursor names."""

    field: Field | None
    desc: bool = False
    limit: int = DEFAULT_LIMIT
    after: bytes | None = None
    start: bytes | None = None
    end: bytes | None = None
    values: bool = False
    around: str | None = None
    count: bool = False

    @property
    def by_name(self) -> bool:
        """Ordered by name: the members are the names themselves (the folder's own index)."""
        return self.field is None or self.field.is_name

    def bounds(self) -> LexRange:
        """The members this page may come from (bounds and cursor)."""
        if self.by_name:
            # A member is the name itself: an inclusive upper bound is the name.
            first, last = (self.end, self.start) if self.desc else (self.start, self.end)
            low = b"[" + first if first is not None else b"-"
            high = b"[" + last if last is not None else b"+"
            if self.after is not None:
                if self.desc:
                    high = min(high, b"(" + self.after, key=_upper_order)
                else:
                    low = max(low, b"(" + self.after, key=_lower_order)
            return LexRange(low, high)
        return ordering.lex_range(self.start, self.end, self.desc, self.after)

    def range_bounds(self) -> LexRange:
        """The members of the range, without the cursor (what count=true counts)."""
        if self.after is None:
            return self.bounds()
        return Query(self.field, self.desc, start=self.start, end=self.end).bounds()

    def member_of(self, name: str, value: Any, updated_ms: int) -> bytes:
        """This query's member for a thing with JSON `value`, last written at `updated_ms`."""
        if self.field is None:
            return name.encode("utf-8")
        return member_for(self.field, name, value, updated_ms)


def _lower_order(bound: bytes) -> tuple[bytes, int]:
    if bound == b"-":
        return b"", 0
    return bound[1:], 1 if bound[:1] == b"(" else 0


def _upper_order(bound: bytes) -> tuple[bytes, int]:
    if bound == b"+":
        return b"\xff" * 8, 0
    return bound[1:], 0 if bound[:1] == b"(" else 1


def member_for(field: Field, name: str, value: Any, updated_ms: int) -> bytes:
    """A thing's member in an index on `field`: its name alone for $name (the order of names),
    else the key of its value, then its name."""
    if field.is_name:
        return name.encode("utf-8")
    return ordering.member(key_of(field, value, updated_ms), name)


def key_value(field: Field, name: str, value: Any, updated_ms: int) -> Any:
    """What the answer shows as a thing's `key`: the field's value (None when missing)."""
    if field.is_name:
        return name
    if field.is_updated:
        return updated_ms
    return ordering.field_value(value, field.segments)


def key_of(field: Field, value: Any, updated_ms: int) -> bytes:
    """The sort key of a thing for `field` (not for $name, whose members are names)."""
    if field.is_updated:
        return ordering.number_key(updated_ms)
    return ordering.sort_key(ordering.field_value(value, field.segments))


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


# -- parsing -----------------------------------------------------------------------------------


def is_query(args: Mapping[str, Sequence[str]]) -> bool:
    """Whether a folder GET asks a query rather than a listing."""
    return any(name in args for name in QUERY_PARAMETERS)


def _one(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = args.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadQuery(
            f"repeated {name}", f"give {name} at most once; the query has it {len(values)} times"
        )
    return values[0]


def _flag(args: Mapping[str, Sequence[str]], name: str) -> bool:
    raw = _one(args, name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise BadQuery(f"bad {name}", f"{name} must be true or false")


def _bound(raw: str, name: str, field: Field) -> bytes:
    """A bound's key: its JSON value encoded in the query's order."""
    example = f'{name}=10 (a number), {name}="10" (a string), true, false or null'
    try:
        value = documents.loads(raw.encode("utf-8", "surrogatepass"))
    except (documents.BadDocument, UnicodeEncodeError):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadQuery(
            f"bad {name}", f"{name} is a JSON value, not {shown!r}: send {example}"
        ) from None
    if isinstance(value, dict | list):
        raise BadQuery(
            f"bad {name}",
            f"{name} is one value to order by, not an array or object: send {example}",
        )
    if field.is_name:
        if not isinstance(value, str):
            raise BadQuery(
                f"bad {name}",
                f'with order_by=$name, {name} is a name in quotes: {name}="kitchen"',
            )
        return value.encode("utf-8")
    return ordering.sort_key(value)


def parse_query(args: Mapping[str, Sequence[str]]) -> Query | None:
    """The query a folder GET asks, None for a plain listing; BadQuery for what cannot be
    answered, with a detail that says what to send instead. Nothing is read or created yet."""
    if not is_query(args):
        return None
    raw_field = _one(args, "order_by")
    count = _flag(args, "count")
    desc = _flag(args, "desc")
    values = _flag(args, "values")
    around = _one(args, "around")
    raw_limit = _one(args, "limit")
    raw_cursor = _one(args, "cursor")
    bounds = {name: _one(args, name) for name in _BOUNDS}
    given = [name for name, raw in bounds.items() if raw is not None]

    if raw_field is None:
        if "count" in args and not (given or around is not None or desc):
            if values or raw_limit is not None or raw_cursor is not None:
                raise BadQuery(
                    "count takes no page",
                    'count=true answers {"count": N} alone: drop values, limit and cursor',
                )
            return Query(None, count=count) if count else None
        asked = next(n for n in QUERY_PARAMETERS if n in args and n not in ("order_by", "count"))
        raise BadQuery(
            "order_by missing",
            f"{asked} needs an order: add order_by=<field> (order_by=$name orders by name)",
        )
    try:
        field = ordering.parse_field(raw_field)
    except ordering.BadField as error:
        raise BadQuery("bad order_by", str(error)) from None

    if bounds["equal_to"] is not None and (
        bounds["start_at"] is not None or bounds["end_at"] is not None
    ):
        raise BadQuery(
            "equal_to with a range",
            "equal_to=<JSON> is both bounds at once: send either equal_to, "
            "or start_at and/or end_at",
        )
    if around is not None:
        if raw_cursor is not None or given:
            drop = ", ".join(["cursor"] * (raw_cursor is not None) + given)
            raise BadQuery(
                "around with a cursor or bounds",
                f"around=<name> picks the page itself: drop {drop}, or drop around to page "
                "through a range",
            )
        if count:
            raise BadQuery(
                "around with count",
                "count=true counts, around=<name> pages: ask one of them",
            )
        if around == "" or "/" in around:
            raise BadQuery(
                "bad around",
                "around is the name of a thing directly in the folder (no /), as in around=alice",
            )
    if count:
        extra = [
            n
            for n, present in (
                ("values", values),
                ("limit", raw_limit is not None),
                ("cursor", raw_cursor is not None),
            )
            if present
        ]
        if extra:
            raise BadQuery(
                f"count with {extra[0]}",
                f'count=true answers {{"count": N}} alone: drop {", ".join(extra)}',
            )

    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        try:
            limit = documents.whole_number(raw_limit, "limit", 1, MAX_LIMIT)
        except documents.BadDocument as error:
            raise BadQuery(error.title, error.detail) from None

    start = end = None
    if bounds["equal_to"] is not None:
        start = end = _bound(bounds["equal_to"], "equal_to", field)
    if bounds["start_at"] is not None:
        start = _bound(bounds["start_at"], "start_at", field)
    if bounds["end_at"] is not None:
        end = _bound(bounds["end_at"], "end_at", field)

    after = None
    if raw_cursor is not None and raw_cursor != "":
        bad = BadQuery(
            "bad cursor",
            "cursor must be the `next` value of an earlier answer to the same query",
        )
        try:
            after = ordering.decode_cursor(raw_cursor)
            if field.is_name:
                # a thing's name, or a sub-folder's ("b/"): where a page among many
                # sub-folders ended
                name = after.decode("utf-8")
                if not name or name == "/" or "/" in name[:-1]:
                    raise bad
            else:
                ordering.split_member(after)
        except ValueError:
            raise bad from None
    return Query(field, desc, limit, after, start, end, values, around, count)


# -- answering over members in order -----------------------------------------------------------


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


# -- index declarations ------------------------------------------------------------------------

BUILDING = "building"
READY = "ready"
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Index:
    """A declared index: the things directly in each folder matching `folder` (a folder path
    whose segments may be `*`, one segment each), ordered by `field`. `state` is "building"
    while the things already stored are being taken in, then "ready"; only a ready index
    answers queries (every write keeps it current from the moment it is declared)."""

    id: str
    folder: str
    field: str
    created: int
    state: str = BUILDING

    def covers(self, folder: str) -> bool:
        """Whether the concrete folder `folder` ("a/b/", "" for the top level) is one of its."""
        if "*" not in self.folder:
            return folder == self.folder
        pattern = self.folder.split("/")
        actual = folder.split("/")
        return len(pattern) == len(actual) and all(
            p == WILDCARD or p == a for p, a in zip(pattern, actual, strict=True)
        )

    @property
    def parsed_field(self) -> Field:
        return ordering.parse_field(self.field)

    def to_json(self) -> bytes:
        return documents.dumps(
            {
                "folder": self.folder,
                "field": self.field,
                "created": self.created,
                "state": self.state,
            }
        )

    @classmethod
    def from_json(cls, index_id: str, raw: bytes) -> Index:
        data = documents.loads(raw)
        return cls(index_id, data["folder"], data["field"], data["created"], data["state"])

    def public(self) -> dict[str, Any]:
        """As /_indexes and `thingstash index list` show it."""
        return {
            "id": self.id,
            "folder": self.folder,
            "field": self.field,
            "created": self.created,
            "state": self.state,
        }


def parse_index_folder(text: str) -> str:
    """A folder pattern as declared ("games/*/scores/"; "" or "/" the top level), with its
    trailing slash; BadQuery says what is wrong."""
    if text in ("", "/"):
        return ""
    folder = text if text.endswith("/") else text + "/"
    title = "bad folder"
    for segment in folder[:-1].split("/"):
        if segment == "":
            raise BadQuery(title, f"the folder {text!r} has an empty segment (or a leading /)")
        if segment in (".", ".."):
            raise BadQuery(title, f"the folder {text!r} has a {segment!r} segment")
        if "*" in segment and segment != WILDCARD:
            raise BadQuery(
                title, f"* stands for one whole segment, as in games/*/scores/, not {segment!r}"
            )
        if any(ord(c) < 0x20 or c == "\x7f" for c in segment):
            raise BadQuery(title, "a folder may not contain control characters")
    if folder.startswith("_"):
        raise BadQuery(title, "top-level names starting with _ belong to the service")
    return folder


def parse_index_field(text: str) -> Field:
    try:
        field = ordering.parse_field(text)
    except ordering.BadField as error:
        raise BadQuery("bad field", str(error)) from None
    if field.is_name:
        # It would cost every write and never be read: the folder's own index answers.
        raise BadQuery(
            "no index needed",
            "order_by=$name needs no index: every folder answers it, with ranks and counts, "
            "whatever its size; index a field of the things' JSON or $updated",
        )
    return field


def covering(indexes: Sequence[Index], folder: str, field: Field) -> Index | None:
    """The ready index that answers queries on `field` in `folder`, if any."""
    for index in indexes:
        if index.state == READY and index.field == field.text and index.covers(folder):
            return index
    return None


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

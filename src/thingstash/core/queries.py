"""Queries of a folder (API.md, "Queries"): their parameters checked and typed into a `Query`,
and what a thing's member is in a query's order. The answer is core/answers.py's; the index
declarations that answer large folders are core/indexes.py's.

`parse_query` takes the query string as a plain mapping of names to their values, so it needs
no web framework, and raises BadQuery with a detail that says what to send instead. A request
with none of the query parameters is a listing (None), which folders answer as before.

Pure (stdlib and orjson): no Redis, no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thingstash.core import documents, ordering
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

"""Reads: Firebase queries (`orderBy`, `limitToFirst`/`limitToLast`, `startAt`/`endAt`/
`equalTo`, and `startAfter`/`endBefore`), parsed from the query string and computed over a
value in memory.

Firebase's order: by `$key`, keys that read as 32-bit integers first, by number, then the other
keys as strings; by `$value` or a child path, values as ordering.py orders them (null, false,
true, numbers, strings, then objects), ties by key. An answer is an object in that order
(`limitToLast` keeps it ascending).

Pure: stdlib, orjson and the core only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thingstash.core import documents, ordering
from thingstash.firebase.errors import BadRequest
from thingstash.firebase.mapping import key_problem

KEY = "$key"
VALUE = "$value"
PRIORITY = "$priority"
PARAMETERS = (
    "orderBy",
    "limitToFirst",
    "limitToLast",
    "startAt",
    "endAt",
    "equalTo",
    "startAfter",
    "endBefore",
)
_INT32 = re.compile(r"-?(0|[1-9][0-9]{0,9})")


@dataclass(frozen=True, slots=True)
class Bound:
    value: Any
    inclusive: bool


@dataclass(frozen=True, slots=True)
class Query:
    """A checked query: what it orders by (`$key`, `$value`, or a child path's keys), its
    limit (first or last N) and bounds."""

    order_by: str
    child: tuple[str, ...] = ()
    first: int | None = None
    last: int | None = None
    start: Bound | None = None
    end: Bound | None = None

    @property
    def by_key(self) -> bool:
        # Priorities are not kept (docs/firebase.md): every one is null, so keys order alone.
        return self.order_by in (KEY, PRIORITY)

    @property
    def by_value(self) -> bool:
        return self.order_by == VALUE


def _one(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = args.get(name) or []
    if len(values) > 1:
        raise BadRequest(f"{name} may be given once")
    return values[0] if values else None


def _json(raw: str, name: str) -> Any:
    try:
        return documents.loads(raw.encode("utf-8", "surrogatepass"))
    except (documents.BadDocument, UnicodeEncodeError):
        raise BadRequest(f"{name} must be a valid JSON value") from None


def _limit(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    value = _json(raw, name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise BadRequest(f"{name} must be a positive integer")
    return value


def parse_query(args: Mapping[str, Sequence[str]]) -> Query | None:
    """The query a GET asks (None when it asks none); BadRequest with Firebase's words otherwise."""
    raw = {name: _one(args, name) for name in PARAMETERS}
    if all(value is None for value in raw.values()):
        return None
    if raw["orderBy"] is None:
        raise BadRequest("orderBy must be defined when other query parameters are defined")
    order_by = _json(raw["orderBy"], "orderBy")
    if not isinstance(order_by, str) or order_by == "":
        raise BadRequest("orderBy must be a valid JSON encoded path")
    child: tuple[str, ...] = ()
    if order_by not in (KEY, VALUE, PRIORITY):
        child = tuple(key for key in order_by.split("/") if key)
        if not child or any(key_problem(key) for key in child):
            raise BadRequest("orderBy must be a valid JSON encoded path")
    first = _limit(raw["limitToFirst"], "limitToFirst")
    last = _limit(raw["limitToLast"], "limitToLast")
    if first is not None and last is not None:
        raise BadRequest("limitToFirst and limitToLast cannot both be given")
    if raw["equalTo"] is not None and any(
        raw[name] is not None for name in ("startAt", "endAt", "startAfter", "endBefore")
    ):
        raise BadRequest("equalTo cannot be given with startAt, endAt, startAfter or endBefore")
    if raw["startAt"] is not None and raw["startAfter"] is not None:
        raise BadRequest("startAt and startAfter cannot both be given")
    if raw["endAt"] is not None and raw["endBefore"] is not None:
        raise BadRequest("endAt and endBefore cannot both be given")

    def bound(name: str, inclusive: bool) -> Bound | None:
        text = raw[name]
        if text is None:
            return None
        value = _json(text, name)
        if isinstance(value, dict | list):
            raise BadRequest(f"{name} must be a string, number, boolean or null")
        if order_by == KEY and not isinstance(value, str):
            raise BadRequest(f"{name} must be a string when ordering by $key")
        return Bound(value, inclusive)

    start = bound("startAt", True) or bound("startAfter", False) or bound("equalTo", True)
    end = bound("endAt", True) or bound("endBefore", False) or bound("equalTo", True)
    return Query(order_by, child, first, last, start, end)


# -- the order -----------------------------------------------------------------------------------


def key_order(key: str) -> tuple[int, int, str]:
    """Firebase's order of keys: 32-bit integers first, by number, then strings."""
    if _INT32.fullmatch(key) and key != "-0" and -(2**31) <= int(key) < 2**31:
        return (0, int(key), "")
    return (1, 0, key)


def _value_order(query: Query, value: Any) -> bytes:
    if query.by_value:
        return ordering.sort_key(value)
    return ordering.sort_key(ordering.field_value(value, query.child))


def sort_order(query: Query, key: str, value: Any) -> tuple[Any, ...]:
    """Where the child `key` with `value` stands in the query's order."""
    if query.by_key:
        return (key_order(key),)
    return (_value_order(query, value), key_order(key))


def _bound_order(query: Query, bound: Bound) -> tuple[Any, ...]:
    if query.by_key:
        return (key_order(bound.value) if isinstance(bound.value, str) else (-1, 0, ""),)
    return (ordering.sort_key(bound.value),)


def _within(query: Query, place: tuple[Any, ...]) -> bool:
    # Bounds on values compare the value part only: every key with that value is in range.
    if query.start is not None:
        low = _bound_order(query, query.start)
        head = place[: len(low)]
        if head < low or (not query.start.inclusive and head == low):
            return False
    if query.end is not None:
        high = _bound_order(query, query.end)
        head = place[: len(high)]
        if head > high or (not query.end.inclusive and head == high):
            return False
    return True


def children(value: Any) -> list[tuple[str, Any]]:
    """The children of a value, as Firebase sees them (an array's by index)."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return [(str(i), item) for i, item in enumerate(value) if item is not None]
    return []


def select(query: Query, entries: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The entries the query answers with, in its order."""
    placed = sorted(
        ((sort_order(query, key, value), key, value) for key, value in entries),
        key=lambda item: item[0],
    )
    kept = [(key, value) for place, key, value in placed if _within(query, place)]
    if query.first is not None:
        kept = kept[: query.first]
    if query.last is not None:
        kept = kept[-query.last :] if query.last < len(kept) else kept
    return kept


def run(query: Query, value: Any) -> Any:
    """The answer of `query` over `value`: an object in the query's order (a scalar or null
    answers as it is)."""
    if not isinstance(value, dict | list):
        return value
    return dict(select(query, children(value)))

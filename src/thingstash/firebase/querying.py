"""Reads: Firebase queries over the tree (docs/firebase.md, "The REST contract", Queries): in memory
over a location's value, or through the query engine's index over a large folder.

No Flask, no Redis: the web face's reads (web/firebase/reads.py) call these.
"""

from __future__ import annotations

from typing import Any

from thingstash.core import ordering
from thingstash.core import queries as engine
from thingstash.core.indexes import covering
from thingstash.core.store import Store
from thingstash.firebase import mapping
from thingstash.firebase import query as fbquery
from thingstash.firebase.errors import BadRequest
from thingstash.firebase.mapping import Location
from thingstash.firebase.reading import Budget, nearest_thing, read_value


def index_hint(location: Location, query: fbquery.Query) -> str:
    """Firebase's own words for a query it would need an index for."""
    on = ".value" if query.by_value else "/".join(query.child)
    return (
        f'Index not defined, add ".indexOn": "{on}", for path "/{mapping.thing_path(location)}", '
        "to the rules"
    )


def query_value(store: Store, location: Location, query: fbquery.Query, budget: Budget) -> Any:
    """A query's answer at `location`: computed over the value in memory, except over a
    folder of more than engine.MAX_UNINDEXED_THINGS entries ordered by a value, which the
    query engine answers from its index (BadRequest with Firebase's words when there is
    none)."""
    if nearest_thing(store, location) is None and not query.by_key:
        folder = mapping.folder_path(location)
        page = store.list_folder(folder, None, engine.MAX_UNINDEXED_THINGS)
        if page.next_cursor is not None:
            return _indexed_query(store, location, query, budget)
    return fbquery.run(query, read_value(store, location, budget))


def _indexed_query(
    store: Store, location: Location, query: fbquery.Query, budget: Budget
) -> dict[str, Any]:
    folder = mapping.folder_path(location)
    field_text = ".value" if query.by_value else "/".join(query.child)
    try:
        order_field = ordering.parse_field(field_text)
    except ordering.BadField as error:
        raise BadRequest(str(error)) from None
    if covering(store.indexes(), folder, order_field) is None:
        raise BadRequest(index_hint(location, query))
    wanted = query.last if query.last is not None else query.first
    desc = query.last is not None
    low = ordering.sort_key(query.start.value) if query.start is not None else None
    high = ordering.sort_key(query.end.value) if query.end is not None else None
    after: bytes | None = None
    kept: list[tuple[str, Any]] = []
    while wanted is None or len(kept) < wanted:
        budget.check_time()
        page_size = engine.MAX_LIMIT if wanted is None else min(engine.MAX_LIMIT, wanted)
        asked = engine.Query(
            order_field,
            desc=desc,
            limit=page_size,
            after=after,
            start=high if desc else low,
            end=low if desc else high,
            values=True,
        )
        answer = store.query(folder, asked)
        for found in answer.found:
            budget.spend(len(found.thing.body))
            value = mapping.thing_value(found.thing.body)
            # Exclusive bounds (startAfter, endBefore) are applied here, on the values.
            if fbquery.select(query_without_limits(query), [(found.name, value)]):
                kept.append((found.name, value))
        if answer.next is None:
            break
        after = answer.next
    if wanted is not None:
        kept = kept[:wanted]
    if desc:
        kept.reverse()
    return dict(kept)


def query_without_limits(query: fbquery.Query) -> fbquery.Query:
    return fbquery.Query(query.order_by, query.child, None, None, query.start, query.end)

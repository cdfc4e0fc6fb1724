"""Writes: a laid-out value (firebase/layout.py) to the store, and clearing what lay below.

No Flask, no Redis: core.store.Store methods only.
"""

from __future__ import annotations

from collections.abc import Callable

from thingstash.core import documents
from thingstash.core.model import NO_CONDITIONS, Conditions, Thing, ThingWrite
from thingstash.core.store import Store
from thingstash.firebase import layout, mapping
from thingstash.firebase.mapping import Location

PAGE = 1000
# Up to this many things a write is one Store.write_together (all or nothing); past it the
# things of their own go first in batches of this size, so one request never holds Redis (a
# transaction of 20,000 scripts did for seconds, and timed out).
BATCH = 500
TtlOf = Callable[[str, Thing | None], int]


def writes(
    location: Location,
    own: object,
    below: layout.Laid,
    read: Thing | None,
    ttl_of: TtlOf,
    conditions: Conditions,
    event: str = "put",
) -> list[ThingWrite]:
    """The writes of a laid-out value: the things below first (unconditional: they replace what
    lay there), then the thing at `location` (its `own` part; None deletes it) on `conditions`,
    so on a cluster, where the writes go one by one, a reader never misses a part."""
    changes = [
        ThingWrite(
            mapping.thing_path(at),
            documents.dumps(mapping.wrap(value)),
            ttl_of(mapping.thing_path(at), read),
        )
        for at, value in below
    ]
    path = mapping.thing_path(location)
    if own is not None:
        body = documents.dumps(mapping.wrap(own))
        changes.append(ThingWrite(path, body, ttl_of(path, read), conditions, event))
    elif read is not None:
        changes.append(ThingWrite(path, None, 0, conditions, event))
    return changes


def write(store: Store, changes: list[ThingWrite]) -> None:
    """Write a laid-out value's changes: together when there are at most BATCH, else those
    without conditions (the things of their own) in batches first, then the rest together."""
    if len(changes) > BATCH:
        with store.many_steps():  # many steps: no judged write lands between them
            write_in_batches(store, [change for change in changes if unconditional(change)])
            changes = [change for change in changes if not unconditional(change)]
            if changes:
                store.write_together(changes)
    elif changes:
        store.write_together(changes)


def unconditional(change: ThingWrite) -> bool:
    return change.conditions == NO_CONDITIONS


def write_in_batches(store: Store, changes: list[ThingWrite]) -> None:
    for start in range(0, len(changes), BATCH):
        store.write_together(changes[start : start + BATCH])


def clear_below(store: Store, location: Location, kept: set[str]) -> None:
    """Remove the things below `location` (they would hide the value written there), except
    those in `kept` (the write's own things of their own)."""
    folder = mapping.folder_path(location)
    holding = {path[: end + 1] for path in kept for end, c in enumerate(path) if c == "/"}
    if folder not in holding:
        store.delete_tree(folder)
        return
    _clear_folder(store, folder, kept, holding)


def _clear_folder(store: Store, folder: str, kept: set[str], holding: set[str]) -> None:
    """`holding`: the folders that hold a kept thing at some depth."""
    doomed: list[str] = []
    after: str | None = None
    while True:
        page = store.list_folder(folder, after, PAGE, False)
        for entry in page.entries:
            path = folder + entry.name
            if entry.thing is not None:
                if path not in kept:
                    doomed.append(path)
            elif path in holding:
                _clear_folder(store, path, kept, holding)
            else:
                store.delete_tree(path)
        if page.next_cursor is None:
            break
        after = page.next_cursor
    write_in_batches(store, [ThingWrite(path, None) for path in doomed])

"""Writing a laid-out value (firebase/layout.py) to the store, and clearing what lay below.

No Flask, no Redis: model.Store methods only.
"""

from __future__ import annotations

from collections.abc import Callable

from thingstash import documents
from thingstash.firebase import layout, mapping
from thingstash.firebase.mapping import Location
from thingstash.model import Conditions, Store, Thing, ThingWrite

PAGE = 1000
DELETE_BATCH = 500
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


def clear_below(store: Store, location: Location, kept: set[str]) -> None:
    """Remove the things below `location` (they would hide the value written there), except
    those in `kept` (the write's own things of their own)."""
    folder = mapping.folder_path(location)
    if not any(path.startswith(folder) for path in kept):
        store.delete_tree(folder)
        return
    _clear_folder(store, folder, kept)


def _clear_folder(store: Store, folder: str, kept: set[str]) -> None:
    doomed: list[str] = []
    after: str | None = None
    while True:
        page = store.list_folder(folder, after, PAGE, False)
        for entry in page.entries:
            if entry.thing is not None:
                if folder + entry.name not in kept:
                    doomed.append(folder + entry.name)
            elif any(path.startswith(folder + entry.name) for path in kept):
                _clear_folder(store, folder + entry.name, kept)
            else:
                store.delete_tree(folder + entry.name)
        if page.next_cursor is None:
            break
        after = page.next_cursor
    for start in range(0, len(doomed), DELETE_BATCH):
        store.write_together(
            [ThingWrite(path, None) for path in doomed[start : start + DELETE_BATCH]]
        )

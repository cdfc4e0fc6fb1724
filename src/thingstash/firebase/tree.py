"""Writes: the Firebase tree set, pushed to and updated through core.store.Store methods only
(docs/firebase.md); reading.py reads it.

value(L) = overlay(own(L), children(L)): own(L) is the thing at L, else the member at L of the
nearest thing above it; children(L) the values of the entries of the folder `L/`. A write lands
in the nearest thing at or above its location (one compare-and-set of that thing, atomic on both
topologies), else makes a thing at the location; either way the things below the location are
removed afterwards, since they would hide the value written.

Each write is a compare-and-set loop under the one retry policy (core/retry.py).

No Flask, no Redis: the web face's writes (web/firebase/writes.py) call these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thingstash.core import documents, retry
from thingstash.core.config import DEFAULT_MAX_BODY
from thingstash.core.model import (
    Conditions,
    PartlyWritten,
    PreconditionFailed,
    Thing,
    ThingMissing,
    ThingWrite,
    TooMuchContention,
)
from thingstash.core.store import Store
from thingstash.firebase import layout, mapping, placement
from thingstash.firebase.errors import BadRequest, Mismatch
from thingstash.firebase.mapping import Location
from thingstash.firebase.reading import (
    ROOT_PATH,
    UNBOUNDED_BYTES,
    Budget,
    nearest_thing,
    read_folder,
    read_value,
)
from thingstash.firebase.reading import entries as _entries


def _always(path: str) -> bool:
    return True


@dataclass(frozen=True)
class Lifetime:
    """The lifetime a write gives the things it writes: `seconds` (the default or `?ttl=`) to a
    thing it makes, and to a thing whose lifetime `renews(path)` lets it set; any other thing
    keeps the one it has, to the second. Who may renew what is the web face's key check
    (web/firebase/access.py: a key limited to `users/ada` may change its place inside the thing
    `users`, but not when `users` ends), which may also refuse the write there."""

    seconds: int
    renews: Callable[[str], bool] = _always

    def of(self, path: str, thing: Thing | None) -> int:
        if thing is None or self.renews(path):
            return self.seconds
        return max(1, thing.ttl_ms // 1000)


UNCHANGED: Any = object()  # what a change_thing change returns to write nothing


# -- writing -------------------------------------------------------------------------------------


def change_thing(
    store: Store,
    path: str,
    change: Callable[[Any], Any],
    lifetime: Lifetime,
    event: str = "put",
    limit: int = DEFAULT_MAX_BODY,
    written: set[str] | None = None,
) -> Any:
    """Compare-and-set of the thing at `path`: `change(current value or None)` gives the new
    value (None deletes the thing, UNCHANGED writes nothing) and runs again if another writer
    got in first. A new value that needs things of its own (firebase/layout.py) is written
    with them in one Store.write_together; their paths are added to `written`."""
    for attempt in range(retry.ATTEMPTS):
        thing = store.get(path)
        current = mapping.thing_value(thing.body) if thing is not None else None
        new = change(current)
        if new is UNCHANGED:
            return current
        if thing is not None:
            expected = Conditions(if_match=(thing.version,))
        else:
            expected = Conditions(if_none_match="*")
        try:
            if new is None:
                if thing is not None:
                    store.delete(path, expected)
                return new
            body = documents.dumps(mapping.wrap(new))
            if layout.stays_whole(body, limit):
                store.put(path, body, lifetime.of(path, thing), expected, event)
                return new
            location = tuple(path.split("/"))
            own, below = layout.lay_out(location, new, limit)
            laid = placement.writes(location, own, below, thing, lifetime.of, expected, event)
            if thing is not None and own == current:
                laid.pop()  # only new things below (a push): the thing is left as it is
            placement.write(store, laid)
            if written is not None:
                written.update(layout.paths(below))
            return new
        except (PreconditionFailed, PartlyWritten, ThingMissing):
            retry.pause(attempt)
    raise TooMuchContention(path)


def _has_server_values(value: Any) -> bool:
    # The key shows in the serialised JSON as ".sv": one substring search spares most walks.
    return documents.SERVER_VALUE_KEY in documents.dumps(value) and documents.has_server_values(
        value
    )


def _resolve(value: Any, current: Any) -> Any:
    """`value` with its `.sv` server values resolved against what is stored there."""
    if value is None or not _has_server_values(value):
        return value
    return mapping.normalize(documents.resolve_server_values(value, current, documents.now_ms()))


def _check(expected: str | None, current: Any) -> None:
    if expected is not None and mapping.etag(current) != expected:
        raise Mismatch(current)


def set_value(
    store: Store,
    location: Location,
    value: Any,
    lifetime: Lifetime,
    expected: str | None = None,
    limit: int = DEFAULT_MAX_BODY,
) -> Any:
    """set(L, value): `value` normalized (None deletes). With `expected`, an ETag the value at
    L must still have (else Mismatch). Returns the value written, server values resolved.
    The things written are laid out by firebase/layout.py for the thing size `limit`."""
    if not location:
        return _set_root(store, value, lifetime, expected, limit)
    # Many steps when there is something below to clear (a judged write then holds the turn).
    with store.many_steps(mapping.folder_path(location)):
        return _set_below_root(store, location, value, lifetime, expected, limit)


def _set_below_root(
    store: Store,
    location: Location,
    value: Any,
    lifetime: Lifetime,
    expected: str | None,
    limit: int,
) -> Any:
    kept: set[str] = set()
    folder = mapping.folder_path(location)
    below: dict[str, Any] | None = None
    if expected is not None:
        # What lies below is read once, before: over several things the check is not atomic.
        below = read_folder(store, folder, Budget(UNBOUNDED_BYTES))
    found = nearest_thing(store, location)
    if found is not None and found[0] != location:
        at = found[0]
        relative = location[len(at) :]
        written: list[Any] = [None]

        def into(current: Any) -> Any:
            here = mapping.get_member(current, relative)
            _check(expected, mapping.overlay(here, below or {}))
            if value is None and here is None:
                return UNCHANGED  # nothing there to delete: the thing is not rewritten
            written[0] = _resolve(value, here)
            return mapping.set_member(current, relative, written[0])

        change_thing(store, mapping.thing_path(at), into, lifetime, "patch", limit, kept)
        placement.clear_below(store, location, kept)
        return written[0]

    path = mapping.thing_path(location)
    if value is None and expected is None:
        # One step (a judged write's guards in it), and a scalar the root held before its
        # entries came goes with it; then what lies below (the turn held when there is any).
        store.write_together([ThingWrite(path, None), ThingWrite(ROOT_PATH, None)])
        store.delete_tree(folder)
        return None
    if expected is None and not _has_server_values(value):
        # A plain write needs nothing of what is stored: one write, no read first.
        body = documents.dumps(mapping.wrap(value))
        if layout.stays_whole(body, limit):
            store.put(path, body, lifetime.of(path, None))
        else:
            own, parts = layout.lay_out(location, value, limit)
            changes = placement.writes(location, own, parts, None, lifetime.of, Conditions())
            if own is None:
                changes.append(ThingWrite(path, None))  # in the same step, if one
            placement.write(store, changes)
            kept = layout.paths(parts)
        placement.clear_below(store, location, kept)
        return value
    result: list[Any] = [None]

    def replace(current: Any) -> Any:
        _check(expected, mapping.overlay(current, below or {}))
        result[0] = _resolve(value, current)
        return result[0]

    change_thing(store, path, replace, lifetime, limit=limit, written=kept)
    placement.clear_below(store, location, kept)
    return result[0]


def push_value(
    store: Store, location: Location, name: str, value: Any, lifetime: Lifetime, limit: int
) -> None:
    """POST: `value` as the new child `name` (a push id) of `location`, always a thing of its
    own (firebase/layout.py). Where no thing lies above the location, or only the thing at it,
    one write and nothing read; inside a thing, set_value lays that thing out anew (the push
    becomes a thing, and the path down to it too)."""
    target = (*location, name)
    if value is not None and not _has_server_values(value):
        above = mapping.ancestors(location)
        versions = store.versions([mapping.thing_path(at) for at in above])
        deepest = next((at for at in above if versions.get(mapping.thing_path(at))), None)
        if deepest is None or deepest == location:
            own, below = layout.lay_out(target, value, limit)
            placement.write(
                store, placement.writes(target, own, below, None, lifetime.of, Conditions())
            )
            return
    set_value(store, target, value, lifetime, limit=limit)


def _delete_thing(store: Store, path: str) -> None:
    try:
        store.delete(path)
    except ThingMissing:
        pass


def _set_root(
    store: Store, value: Any, lifetime: Lifetime, expected: str | None, limit: int
) -> Any:
    """The root holds no thing of its own: an object is its children, each set in turn (and
    the names it lacks deleted); a scalar or an array replaces them all, kept in the thing
    ROOT_PATH (docs/firebase.md)."""
    with store.many_steps():
        return _set_root_in_turn(store, value, lifetime, expected, limit)


def _set_root_in_turn(
    store: Store, value: Any, lifetime: Lifetime, expected: str | None, limit: int
) -> Any:
    if expected is not None:
        _check(expected, read_value(store, mapping.ROOT))
    names = [name for name, _ in _entries(store, "", Budget(UNBOUNDED_BYTES), False)]
    if not isinstance(value, dict):
        for name in names:
            set_value(store, (name,), None, lifetime, limit=limit)
        if value is None:
            _delete_thing(store, ROOT_PATH)
            return None
        resolved = _resolve(value, read_value(store, mapping.ROOT))
        store.put(ROOT_PATH, documents.dumps(mapping.wrap(resolved)), lifetime.seconds)
        return resolved
    _delete_thing(store, ROOT_PATH)
    for name in names:
        if name not in value:
            set_value(store, (name,), None, lifetime, limit=limit)
    return {
        name: set_value(store, (name,), child, lifetime, limit=limit)
        for name, child in value.items()
    }


def relative_location(text: str) -> Location:
    """A key of a multi-path PATCH body ("a/b"), as a location relative to the PATCH's."""
    try:
        relative = mapping.parse_location(text)
    except BadRequest as refusal:
        raise mapping.invalid_data(refusal.message.removeprefix("Invalid path: ")) from None
    if not relative:
        raise mapping.invalid_data("a PATCH body's keys name places below the location")
    return relative


def plan_update(location: Location, patch: Any) -> list[tuple[Location, Any]]:
    """The (location, normalized value) pairs a PATCH at `location` writes; BadRequest when the
    body is not an object or names one place inside another."""
    if not isinstance(patch, dict):
        raise mapping.invalid_data("a PATCH body must be an object of the places to write")
    targets = [
        (location + relative_location(key), mapping.normalize(value))
        for key, value in patch.items()
    ]
    seen = sorted(target for target, _ in targets)
    for before, after in zip(seen, seen[1:], strict=False):
        if after[: len(before)] == before:
            raise mapping.invalid_data(
                f"{'/'.join(before)!r} is an ancestor of {'/'.join(after)!r} in the same update"
            )
    return targets


def update_values(
    store: Store,
    location: Location,
    patch: Any,
    lifetime: Lifetime,
    limit: int = DEFAULT_MAX_BODY,
) -> dict[str, Any]:
    """update(L, {path: value, ...}): each place set (null deletes), all in one
    Store.write_together of the things they fall in (each thing read, changed in every place
    it holds, and written if still the version read; read again and retried if not): atomic
    on one Redis; on a cluster each thing is, and a thing that met another writer is read
    again and retried alone (docs/firebase.md). The things below each place are removed
    afterwards, as set_value does."""
    targets = plan_update(location, patch)
    if not targets:
        return {}
    # Many steps when there is something below a place to clear (a judged write then holds
    # the turn for them).
    with store.many_steps(*(mapping.folder_path(target) for target, _ in targets)):
        return _update_places(store, patch, targets, lifetime, limit)


def _update_places(
    store: Store,
    patch: Any,
    targets: list[tuple[Location, Any]],
    lifetime: Lifetime,
    limit: int,
) -> dict[str, Any]:
    remaining = [(key, target, value) for key, (target, value) in zip(patch, targets, strict=True)]
    written: dict[str, Any] = {}
    kept: set[str] = set()
    for attempt in range(retry.ATTEMPTS):
        values, changes = _plan_writes(store, remaining, lifetime, limit)
        if len(changes) > placement.BATCH:
            # The things of their own (no place's key, no condition) first, in batches (many
            # steps: a judged write's store holds the turn from here to its end).
            free: list[tuple[ThingWrite, list[str]]] = []
            rest: list[tuple[ThingWrite, list[str]]] = []
            for change, keys in changes:
                alone = not keys and placement.unconditional(change)
                (free if alone else rest).append((change, keys))
            with store.many_steps():
                placement.write_in_batches(store, [change for change, _ in free])
            kept.update(_paths_written(free))
            changes = rest
        try:
            store.write_together([change for change, _ in changes])
        except PreconditionFailed:
            pass
        except PartlyWritten as partial:
            done = {key for _, keys in changes[: partial.done] for key in keys}
            written.update((key, values[key]) for key in done)
            kept.update(_paths_written(changes[: partial.done]))
            remaining = [place for place in remaining if place[0] not in done]
        else:
            written.update(values)
            kept.update(_paths_written(changes))
            break
        retry.pause(attempt)
    else:
        raise TooMuchContention(mapping.thing_path(remaining[0][1]))
    for target, _ in targets:
        placement.clear_below(store, target, kept)
    return {key: written[key] for key in patch}


def _paths_written(changes: list[tuple[ThingWrite, list[str]]]) -> set[str]:
    """The things a multi-path write stored (kept when what lay below its places goes)."""
    return {change.path for change, _ in changes if change.body is not None}


def _plan_writes(
    store: Store, places: list[tuple[str, Location, Any]], lifetime: Lifetime, limit: int
) -> tuple[dict[str, Any], list[tuple[ThingWrite, list[str]]]]:
    """For places (key, location, value): the values written (server values resolved) by key,
    and the things' writes, each with the keys it carries. A place inside a thing changes that
    thing (with every other place it holds); any other place is a thing of its own, replaced.
    Each write is conditional on the version read (or on absence)."""
    written: dict[str, Any] = {}
    # path -> (as read, new value, event, keys)
    things: dict[str, tuple[Thing | None, Any, str, list[str]]] = {}
    for key, target, value in places:
        holder = nearest_thing(store, target)
        if holder is not None and holder[0] != target:
            at, thing = holder
            path = mapping.thing_path(at)
            read, current, _, keys = things.get(
                path, (thing, mapping.thing_value(thing.body), "", [])
            )
            relative = target[len(at) :]
            written[key] = _resolve(value, mapping.get_member(current, relative))
            new = mapping.set_member(current, relative, written[key])
            things[path] = (read, new, "patch", [*keys, key])
        else:
            own = holder[1] if holder is not None else None
            current = mapping.thing_value(own.body) if own is not None else None
            written[key] = _resolve(value, current)
            things[mapping.thing_path(target)] = (own, written[key], "put", [key])
    changes: list[tuple[ThingWrite, list[str]]] = []
    for path, (read, new, event, keys) in things.items():
        if new is None and read is None:
            continue  # nothing there, nothing to write
        condition = Conditions(if_match=(read.version,)) if read else Conditions(if_none_match="*")
        body = documents.dumps(mapping.wrap(new)) if new is not None else None
        if body is not None and not layout.stays_whole(body, limit):
            # Things of their own first, the thing itself last, carrying the places' keys.
            at = tuple(path.split("/"))
            own, below = layout.lay_out(at, new, limit)
            laid = placement.writes(at, own, below, read, lifetime.of, condition, event)
            changes.extend(
                (change, keys if n == len(laid) - 1 else []) for n, change in enumerate(laid)
            )
            continue
        ttl = lifetime.of(path, read)
        changes.append((ThingWrite(path, body, ttl, condition, event), keys))
    return written, changes

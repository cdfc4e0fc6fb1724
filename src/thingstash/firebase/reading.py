"""Reads: the value of a location of the Firebase tree (docs/firebase.md, "One store, two
views"), whole or shallow, within a budget.

value(L) = overlay(own(L), children(L)). children(L) is read level by level: the folders of a
level are listed together (Store.list_names, one store call) and the things they hold read
together (Store.read_many), so a read costs a few round trips per level, not one per folder.
Every read has a Budget: sub-folders walked and bytes of JSON (names and things). Past either it
stops with Firebase's "Data requested exceeds the maximum size" (TooMuchToRead) as soon as it
knows, before reading what lies beyond: a sub-folder counts when its name is listed, not once
it is read.

No Flask, no Redis: the web face (web/firebase/) and the streams call these; tree.py's writes
use nearest_thing and read_folder.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from thingstash.core.model import ListedThing, Thing
from thingstash.core.store import Store
from thingstash.firebase import mapping
from thingstash.firebase.errors import TooMuchToRead
from thingstash.firebase.mapping import Location

# Where the rules document lives: a thing whose name no Firebase key can have (a `.`), and
# which the native face reserves (a leading `_`), so neither face reaches it as data.
RULES_PATH = "_firebase.rules"
# Where a scalar (or an array) at the root lives, `{".value": x}` (docs/firebase.md): named as
# the rules document is, so neither face reaches it as data. Entries of the root win over it.
ROOT_PATH = "_firebase.root"
HIDDEN = frozenset({RULES_PATH, ROOT_PATH})
TOO_LARGE = "Data requested exceeds the maximum size that can be accessed with a single request."
TIMED_OUT = "The read took longer than the timeout the request gave"
PAGE = 1000
# One store call of a level-wise read lists up to LEVEL_FOLDERS folders, LEVEL_NAMES names
# shared among them (but at least MIN_SHARE each, so at most 8,000; a folder with more is
# listed on in a later call), and reads at most LEVEL_NAMES things: what one call costs Redis
# and the worker stays bounded, whatever the tree.
LEVEL_NAMES = 1000
LEVEL_FOLDERS = 500
MIN_SHARE = 16
UNBOUNDED = 1 << 62
UNBOUNDED_BYTES = UNBOUNDED


@dataclass
class Budget:
    """What one read may cost: bytes of JSON (things' and names'), sub-folders walked, and a
    deadline (`?timeout=`). Past the bytes or the folders: TooMuchToRead, with Firebase's
    TOO_LARGE."""

    max_bytes: int
    deadline: float | None = None
    max_folders: int = UNBOUNDED
    used: int = field(default=0)
    folders: int = field(default=0)

    def spend(self, size: int) -> None:
        self.used += size
        if self.used > self.max_bytes:
            raise TooMuchToRead(TOO_LARGE)

    def spend_folders(self, count: int) -> None:
        self.folders += count
        if self.folders > self.max_folders:
            raise TooMuchToRead(TOO_LARGE)

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TooMuchToRead(TIMED_OUT)

    @property
    def left(self) -> int:
        return max(1, self.max_bytes - self.used)


def nearest_thing(store: Store, location: Location) -> tuple[Location, Thing] | None:
    """The deepest thing at or above `location` (its location and state), None when there is
    none. One batch asks which exist, then the deepest is read."""
    above = mapping.ancestors(location)
    if not above:
        return None
    versions = store.versions([mapping.thing_path(at) for at in above])
    for at in above:
        if versions.get(mapping.thing_path(at)) is None:
            continue
        thing = store.get(mapping.thing_path(at))
        if thing is not None:
            return at, thing
    return None


def read_value(store: Store, location: Location, budget: Budget | None = None) -> Any:
    """value(location): what a Firebase GET answers (None for null), within `budget`."""
    return read_parts(store, location, budget)[1]


def read_parts(store: Store, location: Location, budget: Budget | None = None) -> tuple[Any, Any]:
    """(own(location), value(location)), read together."""
    budget = budget or Budget(UNBOUNDED_BYTES)
    own = None
    found = nearest_thing(store, location) if location else _root_thing(store)
    if found is not None:
        at, thing = found
        budget.spend(len(thing.body))
        own = mapping.get_member(mapping.thing_value(thing.body), location[len(at) :])
    return own, mapping.overlay(own, read_folder(store, mapping.folder_path(location), budget))


def _root_thing(store: Store) -> tuple[Location, Thing] | None:
    """The root's own value, a scalar or an array written at the root, as nearest_thing gives."""
    thing = store.get(ROOT_PATH)
    return ((), thing) if thing is not None else None


def own_value(store: Store, location: Location) -> Any:
    """own(location) alone: the member at it of the nearest thing at or above it (None when
    there is none), without the folder below."""
    found = nearest_thing(store, location)
    if found is None:
        return None
    at, thing = found
    return mapping.get_member(mapping.thing_value(thing.body), location[len(at) :])


def entry_names(store: Store, folder: str, names: list[str]) -> set[str]:
    """Which of `names` are entries of `folder` (a thing, or a sub-folder with something in
    it): two batches, whatever the folder holds besides."""
    things = store.versions([folder + name for name in names])
    below = store.list_names([(folder + name + "/", None) for name in names], 1)
    return {
        name
        for name, (listed, _) in zip(names, below, strict=True)
        if listed or things.get(folder + name) is not None
    }


@dataclass
class _Tree:
    """What a walk below a folder found: each folder's entry names in name order (a
    sub-folder's ending in "/"), and each thing's value by its path."""

    names: dict[str, list[str]]
    values: dict[str, Any]


def read_folder(store: Store, folder: str, budget: Budget) -> dict[str, Any]:
    """children(L) for the folder `L/`: each entry's name and value, in name order."""
    return _assemble(folder, _walk(store, folder, budget))


def _walk(store: Store, top: str, budget: Budget) -> _Tree:
    """Everything below `top`, level by level: every folder of a level is listed (a batch of
    folders a call; a folder with more names than its share goes back in line at its cursor)
    and the things it names read, before any folder of the next level, so the sub-folders a
    level holds are all counted before one of them is read."""
    found = _Tree({top: []}, {})
    level = [top]
    while level:
        below: list[str] = []
        pending: deque[tuple[str, str | None]] = deque((folder, None) for folder in level)
        while pending:
            budget.check_time()
            starts = [pending.popleft() for _ in range(min(len(pending), LEVEL_FOLDERS))]
            share = max(MIN_SHARE, LEVEL_NAMES // len(starts))
            things: list[str] = []
            for (folder, _), (names, cursor) in zip(
                starts, store.list_names(starts, share), strict=True
            ):
                if cursor is not None:
                    pending.append((folder, cursor))
                budget.spend_folders(sum(1 for name in names if name.endswith("/")))
                kept = found.names[folder]
                for name in names:
                    budget.spend(len(name))
                    if name.endswith("/"):
                        found.names[folder + name] = []
                        below.append(folder + name)
                    elif folder == "" and name in HIDDEN:
                        continue
                    else:
                        things.append(folder + name)
                    kept.append(name)
            _read_things(store, things, found.values, budget)
        level = below
    return found


def _read_things(store: Store, paths: list[str], values: dict[str, Any], budget: Budget) -> None:
    """The things at `paths` into `values` (one that is gone is left out), LEVEL_NAMES per
    store call, each call reading no more than the budget has left."""
    gone: list[str] = []
    for start in range(0, len(paths), LEVEL_NAMES):
        batch = paths[start : start + LEVEL_NAMES]
        # read_many counts each thing's stored payload: its version (16 bytes) and its JSON.
        read = store.read_many(batch, True, budget.left + 16 * len(batch))
        if len(read) < len(batch):
            raise TooMuchToRead(TOO_LARGE)  # the rest would not fit in what is left
        for path, thing in zip(batch, read, strict=True):
            if thing is None:
                gone.append(path)
                continue
            budget.spend(len(thing.body))
            values[path] = mapping.thing_value(thing.body)
    if gone:
        # Indexed but gone: expired without the expiry recorded yet (as list_folder does).
        store.record_expiries(gone)


def _assemble(folder: str, found: _Tree) -> dict[str, Any]:
    """The value of the folder's entries from what the walk found: a thing's value overlaid
    with its sub-folder's of the same name; names with no value are left out."""
    order: dict[str, bool] = {}  # name -> has a sub-folder, in order of first appearance
    for name in found.names.get(folder, ()):
        if name.endswith("/"):
            order[name[:-1]] = True
        else:
            order.setdefault(name, False)
    result: dict[str, Any] = {}
    for name, has_folder in order.items():
        below = _assemble(folder + name + "/", found) if has_folder else {}
        value = mapping.overlay(found.values.get(folder + name), below)
        if value is not None:
            result[name] = value
    return result


def entries(
    store: Store, folder: str, budget: Budget, values: bool
) -> Iterator[tuple[str, ListedThing | None]]:
    """(name, thing) for each thing and (name, None) for each sub-folder of `folder`, a page
    at a time."""
    after: str | None = None
    while True:
        budget.check_time()
        page = store.list_folder(folder, after, PAGE, values, budget.left)
        for entry in page.entries:
            if entry.thing is None:
                yield entry.name.rstrip("/"), None
            elif not (folder == "" and entry.name in HIDDEN):
                yield entry.name, entry.thing
        if page.next_cursor is None:
            return
        after = page.next_cursor


def shallow_value(store: Store, location: Location, budget: Budget) -> Any:
    """`shallow=true`: the names of the value's members as true (a scalar as it is). A pure
    folder is answered from its names alone, without reading a thing's JSON; the names count
    against the budget's bytes."""
    if nearest_thing(store, location) is not None:
        return mapping.shallow(read_value(store, location, budget))
    names: dict[str, bool] = {}
    for name, _ in entries(store, mapping.folder_path(location), budget, False):
        budget.spend(len(name))
        names[name] = True
    if not names and not location:
        return read_value(store, location, budget)  # a scalar at the root, or nothing
    return names or None

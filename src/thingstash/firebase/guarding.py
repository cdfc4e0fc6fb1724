"""A check and its write as one step: what the rules read is recorded (`Recording`, a Store
that notes the versions of the things and the folder listings the reads saw), and the write
that follows lands only if all of it is still so (`Guarded`, a Store whose writes carry those
Guards into Store.write_together, checked in the step that writes: GuardChanged when any
differs, and the caller judges again on what is stored now).

The guards go with the writes until one lands (a write that met another writer and is retried
is still guarded). That step also waits while another judged write holds the store's turn; on a
Redis Cluster, where no step can check the guards as it writes, every judged write holds the
turn (Store.writing_turn) from that check to its last step, so none lands in between; on both,
so does a write of many steps (Store.many_steps: the root, batches, clearing what lay below:
docs/rules.md).

No Flask, no Redis: the faces wrap their store in these for a judged write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any, cast

from thingstash.core.config import MAX_PAGE_VALUE_BYTES
from thingstash.core.model import (
    NO_CONDITIONS,
    NO_GUARDS,
    Conditions,
    Guards,
    Listing,
    Page,
    Thing,
    ThingMissing,
    ThingWrite,
    WriteResult,
)
from thingstash.core.store import Store, Turn


class _Delegating:
    """A Store passed through to `inner`, but for what a subclass defines."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def as_store(self) -> Store:
        return cast(Store, self)


class Recording(_Delegating):
    """A Store that notes what is read through it: each thing's version (None: absent) as
    first seen, and each folder listing."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self._versions: dict[str, str | None] = {}
        self._listings: list[Listing] = []

    def guards(self) -> Guards:
        return Guards(tuple(self._versions.items()), tuple(self._listings))

    def _saw(self, path: str, version: str | None) -> None:
        self._versions.setdefault(path, version)

    def versions(self, paths: Iterable[str]) -> dict[str, str | None]:
        found = self._inner.versions(paths)
        for path, version in found.items():
            self._saw(path, version)
        return found

    def get(self, path: str) -> Thing | None:
        thing = self._inner.get(path)
        self._saw(path, thing.version if thing is not None else None)
        return thing

    def read_many(self, paths: Sequence[str], values: bool, budget: int) -> list[Thing | None]:
        found = self._inner.read_many(paths, values, budget)
        for path, thing in zip(paths, found, strict=False):
            self._saw(path, thing.version if thing is not None else None)
        return found

    def list_names(
        self, starts: Sequence[tuple[str, str | None]], limit: int
    ) -> list[tuple[list[str], str | None]]:
        found = self._inner.list_names(starts, limit)
        for (folder, after), (names, cursor) in zip(starts, found, strict=True):
            self._listings.append(Listing(folder, after, limit, tuple(names), cursor))
        return found


class Guarded(_Delegating):
    """A Store whose first write lands only if `guards` still hold (else GuardChanged), and on
    which no other judged write lands meanwhile: where the store checks guards in the step
    that writes (one Redis), that step also waits while another write holds the judged writes'
    turn; where it cannot (a Redis Cluster), this write holds the turn from its first write to
    the end of the `with` block, which must enclose its use."""

    def __init__(self, inner: Store, guards: Guards) -> None:
        super().__init__(inner)
        self._guards: Guards | None = guards  # None once a write landed
        self._turn = ExitStack()
        self._held: Turn | None = None
        self._empty: set[str] = set()  # folders seen empty, guarded so as the write landed

    def __enter__(self) -> Guarded:
        return self

    def __exit__(self, *_: object) -> None:
        self._turn.close()

    def many_steps(self, *folders: str) -> AbstractContextManager[None]:
        """A write of many steps follows: the judged writes' turn, taken now and held to the
        end of the `with` block of this Guarded (no other judged write lands between them).

        With `folders` (what the write clears after it lands), only if one of them holds
        anything: they are read now, and their listings guard the first write, so a folder
        seen empty is still empty as that write lands; what comes into it later is another
        write's, and this one reads it as empty and clears nothing there."""
        if folders and self._guards is not None and not self._holding:
            found = self._inner.list_names([(folder, None) for folder in folders], 1)
            listings = tuple(
                Listing(folder, None, 1, tuple(names), cursor)
                for folder, (names, cursor) in zip(folders, found, strict=True)
            )
            self._guards = Guards(self._guards.versions, self._guards.listings + listings)
            empty = {folder for folder, (names, _) in zip(folders, found, strict=True) if not names}
            self._empty.update(empty)
            if len(empty) == len(folders):
                return nullcontext()
        self._hold()
        return nullcontext()

    def _seen_empty(self, folder: str) -> bool:
        """Whether `folder` lies in one seen empty as the first write landed."""
        return self._guards is None and any(folder.startswith(empty) for empty in self._empty)

    def list_folder(
        self,
        folder: str,
        after: str | None,
        limit: int,
        values: bool = False,
        max_value_bytes: int = MAX_PAGE_VALUE_BYTES,
    ) -> Page:
        if self._seen_empty(folder):
            return Page([], [], [], [] if values else None, [], None)
        return self._inner.list_folder(folder, after, limit, values, max_value_bytes)

    @property
    def _holding(self) -> bool:
        return self._held is not None

    def _hold(self) -> None:
        if self._held is None:
            self._held = self._turn.enter_context(self._inner.writing_turn())

    def _next_step(self) -> None:
        """Before a step after the first: in the turn (taken now, if a write of many steps did
        not say so before its first: no further step lands outside it), renewed."""
        if self._held is None:
            self._hold()
        else:
            self._held.renew()

    def _landed(self, changes: Sequence[ThingWrite], extra: Guards) -> list[WriteResult | None]:
        """`changes` written, the first time under the guards (they are done with once a write
        landed; one that did not, a PreconditionFailed the caller retries, leaves them for the
        retry)."""
        mine = self._guards
        if mine is None:
            self._next_step()
            return self._inner.write_together(changes, extra)
        if not self._inner.guards_in_step:
            self._hold()
        merged = Guards(
            mine.versions + extra.versions,
            mine.listings + extra.listings,
            outside_turn=not self._holding,
        )
        results = self._inner.write_together(changes, merged)
        self._guards = None
        return results

    def write_together(
        self, changes: Sequence[ThingWrite], guards: Guards = NO_GUARDS
    ) -> list[WriteResult | None]:
        return self._landed(changes, guards)

    def put(
        self,
        path: str,
        body: bytes,
        ttl_seconds: int,
        conditions: Conditions = NO_CONDITIONS,
        event: str = "put",
        version: str | None = None,
    ) -> WriteResult:
        if self._guards is None or version is not None:
            if self._guards is None:
                self._next_step()
            return self._inner.put(path, body, ttl_seconds, conditions, event, version)
        change = ThingWrite(path, body, ttl_seconds, conditions, event)
        result = self._landed([change], NO_GUARDS)[0]
        assert result is not None
        return result

    def delete(self, path: str, conditions: Conditions = NO_CONDITIONS) -> str | None:
        if self._guards is None:
            self._next_step()
            return self._inner.delete(path, conditions)
        if self._inner.versions([path]).get(path) is None:
            raise ThingMissing(path)
        self._landed([ThingWrite(path, None, 0, conditions)], NO_GUARDS)
        return None

    def update(
        self,
        path: str,
        change: Callable[[Thing | None], tuple[bytes, int]],
        conditions: Conditions = NO_CONDITIONS,
        event: str = "put",
    ) -> tuple[WriteResult, bytes]:
        if self._guards is None:
            self._next_step()
            return self._inner.update(path, change, conditions, event)
        raise NotImplementedError("a guarded update: the Firebase writes use put and delete")

    def delete_tree(self, folder: str, batch: int = 500) -> int:
        """The guards checked, then the folder deleted in batches (as without rules), holding
        the turn; nothing, when it lies in a folder seen empty (many_steps)."""
        if any(folder.startswith(empty) for empty in self._empty):
            if self._guards is not None:
                self._landed([], NO_GUARDS)  # still empty as this lands
            return 0
        if self._guards is not None:
            self._hold()
            self._landed([], NO_GUARDS)
        else:
            self._next_step()
        return self._inner.delete_tree(folder, batch)

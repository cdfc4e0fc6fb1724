"""A check and its write as one step: what the rules read is recorded (`Recording`, a Store
that notes the versions of the things and the folder listings the reads saw), and the write
that follows lands only if all of it is still so (`Guarded`, a Store whose writes carry those
Guards into Store.write_together, checked in the step that writes: GuardChanged when any
differs, and the caller judges again on what is stored now).

The guards go with the writes until one lands (a write that met another writer and is retried
is still guarded); the steps after it are not (clearing what lay below, the later things of a
write of many: docs/rules.md).

No Flask, no Redis: the faces wrap their store in these for a judged write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from thingstash.core.model import (
    NO_CONDITIONS,
    NO_GUARDS,
    Conditions,
    Guards,
    Listing,
    Thing,
    ThingMissing,
    ThingWrite,
    WriteResult,
)
from thingstash.core.store import Store


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
    """A Store whose first write lands only if `guards` still hold (else GuardChanged)."""

    def __init__(self, inner: Store, guards: Guards) -> None:
        super().__init__(inner)
        self._guards = guards

    def _landed(self, changes: Sequence[ThingWrite], guards: Guards) -> list[WriteResult | None]:
        """`changes` written under `guards` (the guards are done with once a write landed; one
        that did not, a PreconditionFailed the caller retries, leaves them for the retry)."""
        results = self._inner.write_together(changes, guards)
        self._guards = NO_GUARDS
        return results

    def write_together(
        self, changes: Sequence[ThingWrite], guards: Guards = NO_GUARDS
    ) -> list[WriteResult | None]:
        mine = self._guards
        merged = Guards(mine.versions + guards.versions, mine.listings + guards.listings)
        return self._landed(changes, merged)

    def put(
        self,
        path: str,
        body: bytes,
        ttl_seconds: int,
        conditions: Conditions = NO_CONDITIONS,
        event: str = "put",
        version: str | None = None,
    ) -> WriteResult:
        if not self._guards or version is not None:
            return self._inner.put(path, body, ttl_seconds, conditions, event, version)
        change = ThingWrite(path, body, ttl_seconds, conditions, event)
        result = self._landed([change], self._guards)[0]
        assert result is not None
        return result

    def delete(self, path: str, conditions: Conditions = NO_CONDITIONS) -> str | None:
        if not self._guards:
            return self._inner.delete(path, conditions)
        if self._inner.versions([path]).get(path) is None:
            raise ThingMissing(path)
        self._landed([ThingWrite(path, None, 0, conditions)], self._guards)
        return None

    def update(
        self,
        path: str,
        change: Callable[[Thing | None], tuple[bytes, int]],
        conditions: Conditions = NO_CONDITIONS,
        event: str = "put",
    ) -> tuple[WriteResult, bytes]:
        if not self._guards:
            return self._inner.update(path, change, conditions, event)
        raise NotImplementedError("a guarded update: the Firebase writes use put and delete")

    def delete_tree(self, folder: str, batch: int = 500) -> int:
        """The guards checked, then the folder deleted (in batches, as without rules: not in
        the step that checks)."""
        if self._guards:
            self._landed([], self._guards)
        return self._inner.delete_tree(folder, batch)

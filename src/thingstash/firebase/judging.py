"""The rules judged over the store: a rules.snapshots.Tree that reads the Firebase tree
(firebase/reading.py) lazily, location by location, remembering what it read for the request,
and the questions the faces ask: may this auth read a location (with its query), may it make
these writes. The language and its semantics are rules/'s; this only binds them to the store.

A read a rule asks for is bounded like any read (`Budget`): past it the rule fails, and a rule
that fails denies.

No Flask, no Redis: the web faces call these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from thingstash.core import documents
from thingstash.core.store import Store
from thingstash.firebase import mapping
from thingstash.firebase.mapping import Location
from thingstash.firebase.reading import Budget, read_value
from thingstash.rules import cases, judge
from thingstash.rules.judge import Verdict
from thingstash.rules.model import QueryInfo
from thingstash.rules.ruleset import Ruleset


class RuleReadFailed(Exception):
    """A location a rule asked for could not be read within the budget: the rule fails."""


class StoreTree:
    """The store's Firebase tree as the rules read it: each location read once per request,
    only when a rule asks for it."""

    def __init__(self, store: Store, max_bytes: int, max_folders: int) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._max_folders = max_folders
        self._read: dict[tuple[str, ...], Any] = {}

    def value(self, path: tuple[str, ...]) -> Any:
        if path in self._read:
            return self._read[path]
        for above, known in self._read.items():  # a location inside one already read
            if path[: len(above)] == above:
                value = mapping.get_member(known, path[len(above) :])
                self._read[path] = value
                return value
        budget = Budget(self._max_bytes, None, self._max_folders)
        value = read_value(self._store, path, budget)
        self._read[path] = value
        return value


# A read with no query is ordered by key, as Firebase shows it to the rules (`query.orderByKey`).
PLAIN_READ = QueryInfo(order_by_key=True)


def query_info(args: Mapping[str, Sequence[str]]) -> QueryInfo:
    """What a read's query parameters (already checked by firebase/query.py's parse_query) show
    the rules as `query.*`: as the offline cases read them (rules/cases.py), one mapping."""
    return cases.query_info({name: values[0] for name, values in args.items() if values})


def may_read(
    ruleset: Ruleset,
    tree: StoreTree,
    location: Location,
    auth: Any,
    query: QueryInfo | None = None,
) -> Verdict:
    return judge.can_read(ruleset, location, auth, tree, documents.now_ms(), query or PLAIN_READ)


def may_write(
    ruleset: Ruleset, tree: StoreTree, writes: Sequence[tuple[Location, Any]], auth: Any
) -> Verdict:
    """May `auth` make `writes` ((location, normalized value or None) pairs, all or nothing)?
    Server values are resolved against what is stored first: the rules see the value that
    would be written."""
    now = documents.now_ms()
    resolved = [
        (location, _resolved(value, tree.value(location), now) if _has_sv(value) else value)
        for location, value in writes
    ]
    return judge.can_write(ruleset, resolved, auth, tree, now)


def _has_sv(value: Any) -> bool:
    return value is not None and documents.has_server_values(value)


def _resolved(value: Any, current: Any, now: int) -> Any:
    return mapping.normalize(documents.resolve_server_values(value, current, now))

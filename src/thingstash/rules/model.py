"""What the rules' parts share: their one error, the kinds of rule, what a rule sees of a query,
the snapshot protocol (`data`, `newData`, `root`) and the environment an expression runs in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class RulesError(Exception):
    """A rules document or expression that does not parse or type-check. `place` says where:
    the rule's location and kind (`rules/users/$uid/.read`) and, inside an expression, the
    1-based column (`rules/users/$uid/.read, column 14`); `str()` gives both."""

    def __init__(self, message: str, place: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.place = place

    def __str__(self) -> str:
        return f"{self.place}: {self.message}" if self.place else self.message


class Kind(Enum):
    """Which rule an expression is: what it may name (`newData` only in write and validate,
    `query` only in read)."""

    READ = ".read"
    WRITE = ".write"
    VALIDATE = ".validate"


@dataclass(frozen=True)
class QueryInfo:
    """What a read's query shows a rule as `query.*` (Firebase's names); a plain read has none
    of them set (orderBy* false, the rest null)."""

    order_by_key: bool = False
    order_by_value: bool = False
    order_by_priority: bool = False
    order_by_child: str | None = None
    start_at: Any = None
    start_after: Any = None
    end_at: Any = None
    end_before: Any = None
    equal_to: Any = None
    limit_to_first: int | None = None
    limit_to_last: int | None = None


class Snapshot(Protocol):
    """A location of a tree as a rule sees it (`data`, `newData`, `root` and what their methods
    give): JSON values as Python's (dict, list, str, int, float, bool, None)."""

    def val(self) -> Any: ...  # the value, priorities left out; None when absent

    def child(self, path: str) -> Snapshot: ...  # `a/b` goes two levels down

    def parent(self) -> Snapshot | None: ...  # None above the root

    def has_child(self, path: str) -> bool: ...

    def has_children(self, names: list[str] | None) -> bool: ...  # None: any child at all

    def exists(self) -> bool: ...

    def get_priority(self) -> Any: ...

    def is_number(self) -> bool: ...

    def is_string(self) -> bool: ...

    def is_boolean(self) -> bool: ...


@dataclass(frozen=True)
class Env:
    """What an expression runs in. `auth` is Firebase's (None, or a dict with `uid`, `provider`,
    `token` and whatever else the override gave); `now` is milliseconds since the epoch;
    `new_data` is None for reads; `wildcards` are the `$` variables' values by name with `$`."""

    auth: Any
    now: int
    root: Snapshot
    data: Snapshot
    new_data: Snapshot | None = None
    query: QueryInfo = field(default_factory=QueryInfo)
    wildcards: Mapping[str, str] = field(default_factory=dict)

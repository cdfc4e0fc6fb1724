"""An expression's tree: what the parser makes, the checker types and the evaluator compiles.
Every node carries the 1-based column it starts at, for errors that name the place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Literal:
    """`true`, `false`, `null`, a number or a string."""

    value: Any
    col: int


@dataclass(frozen=True, slots=True)
class Name:
    """`auth`, `data`, `newData`, `root`, `now`, `query` or a `$` variable."""

    name: str
    col: int


@dataclass(frozen=True, slots=True)
class Member:
    """`obj.name`, or `obj['name']` with a literal string (methods may be named either way)."""

    obj: Node
    name: str
    col: int


@dataclass(frozen=True, slots=True)
class Index:
    """`obj[expr]` with a computed key."""

    obj: Node
    key: Node
    col: int


@dataclass(frozen=True, slots=True)
class Call:
    """`obj.method(args)`: the only calls the language has are methods."""

    obj: Node
    method: str
    args: tuple[Node, ...]
    col: int


@dataclass(frozen=True, slots=True)
class Unary:
    """`!x` or `-x`."""

    op: str
    operand: Node
    col: int


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic, comparison, equality and the logical `&&` / `||`."""

    op: str
    left: Node
    right: Node
    col: int


@dataclass(frozen=True, slots=True)
class Conditional:
    """`test ? then : other`."""

    test: Node
    then: Node
    other: Node
    col: int


@dataclass(frozen=True, slots=True)
class ArrayLit:
    """`[a, b]`: only as `hasChildren`'s argument."""

    items: tuple[Node, ...]
    col: int


@dataclass(frozen=True, slots=True)
class Regex:
    """`/pattern/flags`: only as `matches`'s argument."""

    pattern: str
    flags: str
    col: int


Node = Literal | Name | Member | Index | Call | Unary | Binary | Conditional | ArrayLit | Regex

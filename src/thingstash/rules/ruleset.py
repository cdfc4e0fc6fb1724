"""A rules document compiled at upload: the tree of rule nodes the judge walks (judge.py).

Each node holds its `.read`, `.write` and `.validate` compiled (with its kind and the `$`
variables in scope, so a document that does not type-check is refused at upload, naming the
place), its `.indexOn` kept for the index engine, its named children and at most one `$wildcard`
child. A document that is not Firebase's shape is a RulesError naming the place
(`rules/users/$uid/.read`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .dialect import parse_document
from .evaluator import Expression, compile_expression, constant
from .model import Kind, RulesError

Path = tuple[str, ...]

_KINDS = {".read": Kind.READ, ".write": Kind.WRITE, ".validate": Kind.VALIDATE}


@dataclass
class RuleNode:
    """One location of the rules tree. `wildcard` is the `$name` of the wildcard child (with
    its `$`) when there is one; `place` is where the node sits (`rules/users/$uid`)."""

    place: str
    read: Expression | None = None
    write: Expression | None = None
    validate: Expression | None = None
    index_on: tuple[str, ...] = ()
    children: dict[str, RuleNode] = field(default_factory=dict)
    wildcard: str | None = None
    wildcard_child: RuleNode | None = None

    def rule(self, kind: Kind) -> Expression | None:
        """This node's rule of `kind`, None when it has none."""
        if kind is Kind.READ:
            return self.read
        if kind is Kind.WRITE:
            return self.write
        return self.validate

    def match(self, key: str) -> tuple[RuleNode, str | None] | None:
        """The child that governs `key` and the wildcard it binds (None for a named child):
        a named child wins over the `$wildcard` sibling; None when neither matches."""
        named = self.children.get(key)
        if named is not None:
            return named, None
        if self.wildcard_child is not None:
            return self.wildcard_child, self.wildcard
        return None


@dataclass
class Ruleset:
    """A compiled rules document: `root` is the node at `rules`; `document` the JSON given."""

    root: RuleNode
    document: Any = None

    def index_declarations(self) -> list[tuple[Path, str]]:
        """Every `.indexOn` as (path pattern with `$x` segments, field), in document order."""
        return list(_declarations(self.root, ()))


def _declarations(node: RuleNode, path: Path) -> Iterator[tuple[Path, str]]:
    for name in node.index_on:
        yield path, name
    for key, child in node.children.items():
        yield from _declarations(child, (*path, key))
    if node.wildcard is not None and node.wildcard_child is not None:
        yield from _declarations(node.wildcard_child, (*path, node.wildcard))


def compile_rules_text(text: str) -> Ruleset:
    """A rules document as text in Firebase's dialect (comments, multi-line strings)."""
    return compile_rules(parse_document(text))


def compile_rules(document: Any) -> Ruleset:
    """A rules document (parsed JSON: an object with a "rules" object) to a Ruleset;
    RulesError naming the place when it is not one or an expression does not compile."""
    if not isinstance(document, Mapping):
        raise RulesError('a rules document is an object with a "rules" member', "document")
    extra = sorted(key for key in document if key != "rules")
    if extra:
        raise RulesError(f'unknown member {extra[0]!r}: only "rules" is allowed', "document")
    if "rules" not in document:
        raise RulesError('a rules document needs a "rules" member', "document")
    return Ruleset(_node(document["rules"], "rules", ()), document)


def _node(value: Any, place: str, wildcards: tuple[str, ...]) -> RuleNode:
    if not isinstance(value, Mapping):
        raise RulesError("expected an object of rules", place)
    node = RuleNode(place)
    for key, child in value.items():
        if not isinstance(key, str) or not key:
            raise RulesError("empty key", place)
        where = f"{place}/{key}"
        if key in _KINDS:
            setattr(node, key[1:], _expression(child, _KINDS[key], wildcards, where))
        elif key == ".indexOn":
            node.index_on = _index_on(child, where)
        elif key.startswith("."):
            raise RulesError(f"unknown rule {key!r}", where)
        elif key.startswith("$"):
            if node.wildcard is not None:
                raise RulesError(f"two wildcards at one level ({node.wildcard} and {key})", where)
            node.wildcard = key
            inner = tuple(name for name in wildcards if name != key)
            node.wildcard_child = _node(child, where, (*inner, key))
        else:
            node.children[key] = _node(child, where, wildcards)
    return node


def _expression(value: Any, kind: Kind, wildcards: tuple[str, ...], place: str) -> Expression:
    if isinstance(value, bool):
        return constant(value)
    if isinstance(value, str):
        return compile_expression(value, kind, wildcards, place)
    raise RulesError(f"{kind.value} must be a string expression or a boolean", place)


def _index_on(value: Any, place: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise RulesError(".indexOn must be a string or a list of strings", place)

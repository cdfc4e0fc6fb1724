"""May this read or these writes happen? Firebase's semantics over a compiled Ruleset.

- `.read` and `.write` cascade: a grant at any node on the way from the root to a location
  grants it and everything below; a deeper rule cannot take it back. A read with no grant on
  the way down is denied (rules are not filters).
- A write not granted at or above its path may still be granted by `.write` rules deeper: every
  location it changes must be granted on the way down to it.
- `.validate` does not cascade: it runs at every location of the written data whose new value
  is not null (so not on deletes), and at the write's ancestors whose new value is not null.
- Named children win over a `$wildcard` sibling; `data`/`newData` are at the rule's location,
  `root` (the data before the write) at the root; `$` variables are bound by the keys matched.
- A multi-path write is judged path by path, all or nothing, `newData` being the tree after all
  of them.

Evaluation is lazy: rules run top-down and stop at the first grant, snapshots read the tree only
where a rule asks (a `.read: true` at the root reads nothing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .evaluator import Expression
from .model import Env, QueryInfo
from .ruleset import RuleNode, Ruleset
from .snapshots import Tree, TreeSnapshot, strip
from .written import WrittenTree, prune

Path = tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    """The judgement: `allowed`, and `reason` saying which rule granted or denied (for logs and
    a 403's detail)."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _show(path: Path) -> str:
    return "/" + "/".join(path)


def _steps(ruleset: Ruleset, path: Path) -> list[tuple[RuleNode, dict[str, str]]]:
    """The rule nodes on the way from the root to `path` (as far as the rules go), each with
    the `$` variables bound there."""
    node = ruleset.root
    bound: dict[str, str] = {}
    out = [(node, bound)]
    for key in path:
        found = node.match(key)
        if found is None:
            break
        node, name = found
        if name is not None:
            bound = {**bound, name: key}
        out.append((node, bound))
    return out


def can_read(
    ruleset: Ruleset,
    path: Sequence[str],
    auth: Any,
    root: Tree,
    now_ms: int,
    query: QueryInfo = QueryInfo(),  # noqa: B008 - frozen, so one shared default is safe
) -> Verdict:
    """May `auth` read `path` (with `query`'s parameters visible to the rules as `query`)?"""
    where = tuple(path)
    top = TreeSnapshot(root, ())
    for depth, (node, bound) in enumerate(_steps(ruleset, where)):
        rule = node.read
        if rule is None:
            continue
        env = Env(auth, now_ms, top, TreeSnapshot(root, where[:depth]), None, query, bound)
        if rule.evaluate(env):
            return Verdict(True, f"granted by {node.place}/.read")
    return Verdict(False, f"no .read rule grants {_show(where)}")


@dataclass
class _Write:
    """What every rule of one multi-path write shares."""

    auth: Any
    now: int
    before: Tree
    after: Tree
    top: TreeSnapshot

    def env(self, location: Path, bound: Mapping[str, str]) -> Env:
        return Env(
            self.auth,
            self.now,
            self.top,
            TreeSnapshot(self.before, location),
            TreeSnapshot(self.after, location),
            QueryInfo(),
            bound,
        )

    def passes(self, rule: Expression | None, location: Path, bound: Mapping[str, str]) -> bool:
        return rule is not None and rule.evaluate(self.env(location, bound))


def can_write(
    ruleset: Ruleset,
    writes: Sequence[tuple[Sequence[str], Any]],
    auth: Any,
    root: Tree,
    now_ms: int,
) -> Verdict:
    """May `auth` make `writes` ((path, value) pairs, None deleting), all of them or none?"""
    changes = [(tuple(path), value) for path, value in writes]
    after = WrittenTree(root, changes)
    job = _Write(auth, now_ms, root, after, TreeSnapshot(root, ()))
    for path, _ in changes:
        verdict = _granted(ruleset, job, path)
        if not verdict.allowed:
            return verdict
    for path, value in changes:
        verdict = _validated(ruleset, job, path, value)
        if not verdict.allowed:
            return verdict
    return Verdict(True, "granted by .write and every .validate passed")


def _granted(ruleset: Ruleset, job: _Write, path: Path) -> Verdict:
    steps = _steps(ruleset, path)
    for depth, (node, bound) in enumerate(steps):
        if job.passes(node.write, path[:depth], bound):
            return Verdict(True, f"granted by {node.place}/.write")
    if len(steps) == len(path) + 1:
        node, bound = steps[-1]
        denied = _granted_below(job, node, path, bound)
        if denied is None:
            return Verdict(True, f"granted by .write rules below {node.place}")
        return Verdict(False, f"no .write rule grants {denied}")
    return Verdict(False, f"no .write rule grants {_show(path)}")


def _granted_below(
    job: _Write, node: RuleNode, location: Path, bound: dict[str, str]
) -> str | None:
    """None when every location changed below `location` is granted by a `.write` on the way
    down from `node` (which does not grant it); else the first location that is not."""
    old = strip(job.before.value(location))
    new = strip(job.after.value(location))
    if not isinstance(old, dict | None) or not isinstance(new, dict | None):
        return _show(location)  # a value replaced here, which no rule here grants
    old, new = old or {}, new or {}
    changed = sorted(key for key in {*old, *new} if not _same(old.get(key), new.get(key)))
    if not changed:
        return _show(location)
    for key in changed:
        below = (*location, key)
        found = node.match(key)
        if found is None:
            return _show(below)
        child, name = found
        inner = {**bound, name: key} if name is not None else bound
        if job.passes(child.write, below, inner):
            continue
        denied = _granted_below(job, child, below, inner)
        if denied is not None:
            return denied
    return None


def _same(left: Any, right: Any) -> bool:
    """JSON equality, telling booleans from numbers and objects from the rest."""
    if isinstance(left, dict) or isinstance(right, dict):
        return (
            isinstance(left, dict)
            and isinstance(right, dict)
            and left.keys() == right.keys()
            and all(_same(left[key], right[key]) for key in left)
        )
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return bool(left == right)


def _validated(ruleset: Ruleset, job: _Write, path: Path, value: Any) -> Verdict:
    steps = _steps(ruleset, path)
    written = prune(value) is not None
    for depth, (node, bound) in enumerate(steps[: len(path)]):
        if node.validate is None:
            continue
        location = path[:depth]
        if not written and not TreeSnapshot(job.after, location).exists():
            continue
        if not job.passes(node.validate, location, bound):
            return Verdict(False, f"{node.place}/.validate failed at {_show(location)}")
    if len(steps) <= len(path) or not written:
        return Verdict(True, "validated")
    node, bound = steps[-1]
    denied = _validate_tree(job, node, path, job.after.value(path), bound)
    if denied is not None:
        return Verdict(False, denied)
    return Verdict(True, "validated")


def _validate_tree(
    job: _Write, node: RuleNode, location: Path, new: Any, bound: dict[str, str]
) -> str | None:
    """None when every `.validate` at and below `node` passes for the new value `new` at
    `location`; else which failed where."""
    if new is None:
        return None
    if node.validate is not None and not job.passes(node.validate, location, bound):
        return f"{node.place}/.validate failed at {_show(location)}"
    if not isinstance(new, dict) or ".value" in new:
        return None
    for key, child_value in new.items():
        if key == ".priority":
            continue
        found = node.match(key)
        if found is None:
            continue
        child, name = found
        inner = {**bound, name: key} if name is not None else bound
        denied = _validate_tree(job, child, (*location, key), child_value, inner)
        if denied is not None:
            return denied
    return None

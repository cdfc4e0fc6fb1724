"""Every tg-expr case of the yardstick (recorded against live Firebase) run directly on the
expression layer: the rule at its place must compile or be refused as Firebase's upload was,
then the user's read must be allowed or denied as Firebase's was."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from thingstash.rules.evaluator import compile_expression
from thingstash.rules.model import Env, Kind, QueryInfo, RulesError
from thingstash.rules.snapshots import DictTree, TreeSnapshot, split_path
from thingstash.rules.written import WrittenTree


def yardstick() -> Path:
    """The shared yardstick: $THINGSTASH_SHARED, the repo's sibling `shared/`, or /work/shared."""
    candidates = [
        Path(os.environ.get("THINGSTASH_SHARED", "/nonexistent")),
        Path(__file__).resolve().parents[3] / "shared",
        Path("/work/shared"),
    ]
    for shared in candidates:
        if (shared / "rules-yardstick").is_dir():
            return shared / "rules-yardstick"
    raise FileNotFoundError("shared/rules-yardstick not found; set THINGSTASH_SHARED")


CASES = [json.loads(line) for line in (yardstick() / "tg-expr.jsonl").read_text().splitlines()]


def find_rule(rules: dict[str, Any], path: tuple[str, ...] = ()) -> tuple[str, tuple[str, ...]]:
    """The one `.read` in a case's rules and the path of rule keys leading to it."""
    for key, value in rules.items():
        if key == ".read":
            return value, path
        if isinstance(value, dict):
            return find_rule(value, path + (key,))
    raise AssertionError("no .read rule in the case")


def query_info(params: dict[str, str]) -> QueryInfo:
    """A REST query's parameters as a rule sees them; with no orderBy Firebase orders by key
    (the recordings: a plain read sees `query.orderByKey == true`)."""
    values = {key: json.loads(text) for key, text in params.items()}
    order = values.get("orderBy", "$key")
    return QueryInfo(
        order_by_key=order == "$key",
        order_by_value=order == "$value",
        order_by_priority=order == "$priority",
        order_by_child=None if order.startswith("$") else order,
        start_at=values.get("startAt"),
        end_at=values.get("endAt"),
        equal_to=values.get("equalTo"),
        limit_to_first=values.get("limitToFirst"),
        limit_to_last=values.get("limitToLast"),
    )


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case(case: dict[str, Any]) -> None:
    upload, *steps = case["steps"]
    source, rule_path = find_rule(upload["rules"]["rules"])
    wildcards = [key for key in rule_path if key.startswith("$")]
    try:
        expression = compile_expression(source, Kind.READ, wildcards, "rules/.read")
    except RulesError as error:
        assert upload["expect"] == "rejected", f"refused: {error}"
        assert str(error).startswith("rules/.read, column ")
        return
    assert upload["expect"] == "accepted", "compiled, but Firebase refused it"
    tree = DictTree(None)
    for step in steps:
        if step["auth"] == "admin":
            assert step["op"] == "put" and step["path"] == ""
            tree = DictTree(step["value"])
            continue
        assert step["op"] == "get"
        path = split_path(step["path"])
        env = Env(
            auth=step["auth"],
            now=int(time.time() * 1000),
            root=TreeSnapshot(tree),
            data=TreeSnapshot(tree, path),
            query=query_info(step["query"]),
            wildcards=dict(zip(rule_path, path, strict=False)),
        )
        outcome = "allow" if expression.evaluate(env) else "deny"
        assert outcome == step["expect"], f"{source!r} gave {outcome}"


BOLT_REGEXP = [
    case
    for case in map(json.loads, (yardstick() / "bolt.jsonl").read_text().splitlines())
    if case["id"].startswith("bolt-regexp-")
]


@pytest.mark.parametrize("case", BOLT_REGEXP, ids=[case["id"] for case in BOLT_REGEXP])
def test_bolt_regexp_validations(case: dict[str, Any]) -> None:
    """Bolt's regexp cases (recorded against Firebase): each write under `.write: true` is
    allowed exactly when its location's `.validate` (a `matches` rule) holds for newData."""
    upload, *steps = case["steps"]
    rules = upload["rules"]["rules"]
    assert rules[".write"] == "true"
    tree: Any = None
    for step in steps:
        if step["auth"] == "admin":
            tree = step["value"]
            continue
        assert step["op"] == "put"
        path = split_path(step["path"])
        source = rules[path[0]][".validate"]
        rule = compile_expression(source, Kind.VALIDATE, [], f"rules/{path[0]}/.validate")
        base = DictTree(tree)
        after = WrittenTree(base, [(path, step["value"])])
        env = Env(
            auth=step["auth"],
            now=int(time.time() * 1000),
            root=TreeSnapshot(after),
            data=TreeSnapshot(base, path),
            new_data=TreeSnapshot(after, path),
        )
        allowed = rule.evaluate(env)
        assert ("allow" if allowed else "deny") == step["expect"], step.get("note")
        if allowed:
            tree = after.value(())

"""Rules tested as code, offline: yardstick-format cases (JSON Lines, one scenario a line) run
against an in-memory tree, the way `thingstash rules test FILE CASES` runs them.

A case is {"id": ..., "steps": [...]}; a step is one of
  {"op": "rules", "rules": {...} | "rules_text": "...", "expect": "accepted" | "rejected"}
  {"op": "get" | "put" | "patch" | "delete", "path": "a/b", "value": ..., "query": {...},
   "auth": "admin" | null | {auth object}, "expect": "allow" | "deny" | "any"}
"admin" steps bypass the rules and apply to the tree with Firebase's write semantics (null
deletes, empty objects vanish, `.priority` kept, server values resolved); other steps are judged
(get by can_read with the REST query parameters as `query`, writes by can_write) and writes
that are allowed are applied."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from .judge import can_read, can_write
from .model import QueryInfo, RulesError
from .ruleset import Ruleset, compile_rules, compile_rules_text
from .snapshots import DictTree, split_path, strip
from .written import WrittenTree

Path = tuple[str, ...]
Write = tuple[Path, Any]


def query_info(params: dict[str, Any] | None) -> QueryInfo:
    """Firebase REST query parameters (`orderBy="$key"`, `startAt=...`, JSON-encoded as sent)
    as the rules' `query`. With no orderBy Firebase orders by key: the recordings show a plain
    read seeing `query.orderByKey == true`."""
    params = params or {}

    def given(name: str) -> Any:
        raw = params.get(name)
        return json.loads(raw) if isinstance(raw, str) else raw

    def limit(name: str) -> int | None:
        raw = given(name)
        return None if raw is None else int(raw)

    order = given("orderBy")
    special = {"$key", "$value", "$priority"}
    return QueryInfo(
        order_by_key=order is None or order == "$key",
        order_by_value=order == "$value",
        order_by_priority=order == "$priority",
        order_by_child=order if isinstance(order, str) and order not in special else None,
        start_at=given("startAt"),
        start_after=given("startAfter"),
        end_at=given("endAt"),
        end_before=given("endBefore"),
        equal_to=given("equalTo"),
        limit_to_first=limit("limitToFirst"),
        limit_to_last=limit("limitToLast"),
    )


def resolve(value: Any, current: Any, now_ms: int) -> Any:
    """`value` with server values resolved: `{".sv": "timestamp"}` to `now_ms`,
    `{".sv": {"increment": n}}` to the number at that location plus n."""
    if isinstance(value, dict):
        server = value.get(".sv")
        if server == "timestamp" and len(value) == 1:
            return now_ms
        if isinstance(server, dict) and "increment" in server and len(value) == 1:
            base = strip(current)
            number = base if isinstance(base, int | float) and not isinstance(base, bool) else 0
            return number + server["increment"]
        inner = current if isinstance(current, dict) else {}
        return {key: resolve(child, inner.get(key), now_ms) for key, child in value.items()}
    return value


class Session:
    """One case's state: the tree and the rules in force."""

    def __init__(self) -> None:
        self.tree = DictTree(None)
        self.data: Any = None
        self.ruleset: Ruleset = compile_rules({"rules": {}})

    def writes(self, op: str, path: Path, value: Any, now_ms: int) -> list[Write]:
        if op == "delete":
            return [(path, None)]
        if op == "put":
            return [(path, resolve(value, self.tree.value(path), now_ms))]
        if not isinstance(value, dict):
            raise ValueError("a patch's value is an object")
        out: list[Write] = []
        for key, child in value.items():
            where = (*path, *split_path(key))
            out.append((where, resolve(child, self.tree.value(where), now_ms)))
        return out

    def apply(self, writes: list[Write]) -> None:
        self.data = WrittenTree(self.tree, writes).value(())
        self.tree = DictTree(self.data)

    def step(self, step: dict[str, Any]) -> str:
        """What the step got: accepted/rejected, or allow/deny."""
        op = step["op"]
        if op == "rules":
            try:
                if "rules_text" in step:
                    self.ruleset = compile_rules_text(step["rules_text"])
                else:
                    self.ruleset = compile_rules(step.get("rules"))
            except RulesError:
                return "rejected"
            return "accepted"
        now_ms = int(time.time() * 1000)
        path = split_path(step.get("path", ""))
        auth = step.get("auth")
        if op == "get":
            if auth == "admin":
                return "allow"
            read = can_read(
                self.ruleset, path, auth, self.tree, now_ms, query_info(step.get("query"))
            )
            return "allow" if read.allowed else "deny"
        writes = self.writes(op, path, step.get("value"), now_ms)
        if auth != "admin":
            written = can_write(self.ruleset, writes, auth, self.tree, now_ms)
            if not written.allowed:
                return "deny"
        self.apply(writes)
        return "allow"


def run_case(case: dict[str, Any]) -> str | None:
    """None when every step got what it expected, else what went wrong first (a step that is
    not well formed included)."""
    session = Session()
    for i, step in enumerate(case.get("steps") or []):
        op = step.get("op") if isinstance(step, dict) else None
        if op not in ("rules", "get", "put", "patch", "delete"):
            return f"step {i}: unknown op {op!r}"
        try:
            got = session.step(step)
        except (ValueError, TypeError, KeyError) as error:
            return f"step {i} {op} {step.get('path', '')!r}: malformed step: {error}"
        expect = step.get("expect", "any")
        if expect != "any" and got != expect:
            return f"step {i} {op} {step.get('path', '')!r}: expected {expect}, got {got}"
    return None


def run_cases(lines: Iterable[str]) -> tuple[int, list[str]]:
    """Cases as JSON Lines (blank lines skipped): how many passed, and `id: problem` for each
    that failed (as run_yardstick.py prints them after `FAIL `); a line that is not a case
    fails as `line N`."""
    passed = 0
    failures: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except ValueError as error:
            failures.append(f"line {number}: not JSON: {error}")
            continue
        if not isinstance(case, dict):
            failures.append(f"line {number}: a case is a JSON object")
            continue
        problem = run_case(case)
        if problem is None:
            passed += 1
        else:
            failures.append(f"{case.get('id', f'line {number}')}: {problem}")
    return passed, failures

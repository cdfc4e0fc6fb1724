"""The 309 cases recorded against live Firebase (../shared/rules-yardstick), run offline through
rules.cases: each must get what Firebase gave, step by step."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from thingstash.rules.cases import run_case, run_cases


def _yardstick() -> Path:
    named = os.environ.get("THINGSTASH_SHARED")
    candidates = [Path(named) / "rules-yardstick"] if named else []
    candidates += [
        Path(__file__).resolve().parents[3] / "shared" / "rules-yardstick",
        Path("/work/shared/rules-yardstick"),
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the rules yardstick (shared/rules-yardstick) is not there")


YARDSTICK = _yardstick()
FILES = sorted(YARDSTICK.glob("*.jsonl"))


def _cases() -> list[dict[str, Any]]:
    out = []
    for path in FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


CASES = _cases()


def test_all_309_cases_are_there() -> None:
    assert len(CASES) == 309
    assert len({case["id"] for case in CASES}) == 309


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case_gets_what_firebase_gave(case: dict[str, Any]) -> None:
    assert run_case(case) is None


def test_run_cases_counts_passes_and_names_failures() -> None:
    lines = [path.read_text(encoding="utf-8") for path in FILES]
    passed, failures = run_cases("\n".join(lines).splitlines())
    assert (passed, failures) == (309, [])
    broken = json.dumps(
        {
            "id": "wrong",
            "steps": [
                {"op": "rules", "rules": {"rules": {".read": "false"}}, "expect": "accepted"},
                {"op": "get", "path": "a", "auth": None, "expect": "allow"},
            ],
        }
    )
    passed, failures = run_cases(["", broken])
    assert passed == 0
    assert failures == ["wrong: step 1 get 'a': expected allow, got deny"]


def test_lines_that_are_not_cases_fail_by_line_number() -> None:
    bad_op = json.dumps({"id": "odd", "steps": [{"op": "post", "path": "a", "expect": "allow"}]})
    bad_patch = json.dumps(
        {"id": "patchy", "steps": [{"op": "patch", "path": "a", "value": 3, "auth": "admin"}]}
    )
    passed, failures = run_cases(["{not json", "[1]", bad_op, bad_patch])
    assert passed == 0
    assert [failure.split(":")[0] for failure in failures] == ["line 1", "line 2", "odd", "patchy"]
    assert "unknown op 'post'" in failures[2]
    assert "malformed step" in failures[3]


def test_admin_writes_follow_firebases_write_semantics() -> None:
    steps: list[dict[str, Any]] = [
        {"op": "rules", "rules": {"rules": {".read": "root.child('t').val() > 0"}}},
        {"op": "put", "path": "", "value": {"a": {"b": 1, ".priority": 2}}, "auth": "admin"},
        {
            "op": "patch",
            "path": "",
            "value": {"a/b": None, "t": {".sv": "timestamp"}},
            "auth": "admin",
        },
        {"op": "get", "path": "x", "auth": None, "expect": "allow"},
        {"op": "delete", "path": "t", "auth": "admin"},
        {"op": "get", "path": "x", "auth": None, "expect": "deny"},
    ]
    assert run_case({"id": "admin", "steps": steps}) is None

"""`thingstash rules deploy | get | test` against a real Redis: the document deployed is the one
the native face enforces and `get` prints; a bad one changes nothing; `test` runs yardstick
cases offline against a rules file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from flask import Flask

from thingstash.cli.main import main
from thingstash.core.config import Settings
from thingstash.web import auth

RULES = """{
  // each user reads only their own
  "rules": {
    "users": {"$uid": {".read": "auth != null && auth.uid == $uid", ".indexOn": "age"}}
  }
}"""


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_deploy_then_get_and_the_face_enforces_it(
    tmp_path: Path, settings: Settings, make_app: Callable[..., Flask]
) -> None:
    url = settings.redis_url or ""
    assert run("rules", "get", "--redis-url", url).exit_code == 1  # none yet
    app = make_app()
    client = app.test_client()
    assert client.put("/users/ada/x", json={"v": 1}).status_code == 201
    file = tmp_path / "rules.json"
    file.write_text(RULES)
    deployed = run("rules", "deploy", str(file), "--redis-url", url)
    assert deployed.exit_code == 0, deployed.output
    assert "index on users/*/ by age" in deployed.output
    shown = run("rules", "get", "--redis-url", url)
    assert shown.exit_code == 0
    document = orjson.loads(shown.stdout)
    assert document["rules"]["users"]["$uid"][".read"] == "auth != null && auth.uid == $uid"
    # A server process learns of a first rules document within a second.
    time.sleep(auth.RULES_PRESENCE_SECONDS + 0.1)
    assert client.get("/users/ada/x").status_code == 401
    assert client.get("/users/ada/?order_by=v").status_code == 401
    assert client.get("/users/ada/x", headers={"Authorization": "Bearer owner"}).status_code == 200

    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": {"users": {".read": "auth.uid +"}}}')
    refused = run("rules", "deploy", str(bad), "--redis-url", url)
    assert refused.exit_code == 1
    assert "rules/users/.read" in refused.output
    assert orjson.loads(run("rules", "get", "--redis-url", url).stdout) == document


def _case(ident: str, uid: str, expect: str) -> bytes:
    steps = [
        {"op": "rules", "rules": {"rules": {".read": True}}, "expect": "accepted"},
        {"op": "put", "path": "users/ada", "value": {"v": 1}, "auth": "admin", "expect": "allow"},
        {"op": "get", "path": "users/ada", "auth": {"uid": uid}, "query": {}, "expect": expect},
    ]
    return orjson.dumps({"id": ident, "steps": steps})


def test_test_runs_the_cases_against_the_file_offline(tmp_path: Path) -> None:
    file = tmp_path / "rules.json"
    file.write_text(RULES)
    cases = tmp_path / "cases.jsonl"
    cases.write_bytes(_case("own", "ada", "allow") + b"\n" + _case("other", "bob", "deny") + b"\n")
    passed = run("rules", "test", str(file), str(cases))
    assert passed.exit_code == 0, passed.output
    assert passed.output.strip().endswith("2 passed, 0 failed")

    # The case's own rules (`.read: true`) are replaced by the file's: bob is denied.
    cases.write_bytes(_case("other", "bob", "allow") + b"\n")
    failed = run("rules", "test", str(file), str(cases))
    assert failed.exit_code == 1
    assert "other" in failed.output
    assert failed.output.strip().endswith("0 passed, 1 failed")


def test_test_refuses_a_bad_file_or_case(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": {".read": "auth.uid +"}}')
    cases = tmp_path / "cases.jsonl"
    cases.write_bytes(_case("own", "ada", "allow") + b"\n")
    refused = run("rules", "test", str(bad), str(cases))
    assert refused.exit_code == 2
    assert "rules/.read" in refused.output
    good = tmp_path / "rules.json"
    good.write_text(RULES)
    cases.write_bytes(b"[1, 2]\n")
    assert run("rules", "test", str(good), str(cases)).exit_code == 2

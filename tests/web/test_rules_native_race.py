"""A check and its write are one step on the native face, on one Redis (on a Redis Cluster the
guards are checked just before the write, not in its step: docs/rules.md, and this test finds
writes slipping through there)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask

from .test_rules_native import OWNER, url


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


RACE_LIMIT = 5
RACE_RULES = """{"rules": {"counters": {"$c": {".read": true, ".write":
  "newData.child('n').val() == (data.exists() ? data.child('n').val() : 0) + 1
   && newData.child('n').val() <= 5"}}}}"""


def test_racing_writers_never_pass_a_rule_that_would_deny_them(app: Flask) -> None:
    """A check and its write are one step: each user steps a counter the rules hold at +1 of
    what is stored; were the data a rule read able to change between the check and the write,
    two users would both step it from the same value and more steps would succeed than the
    counter shows."""
    owner = app.test_client()
    assert owner.put("/_rules", data=RACE_RULES, headers=OWNER).status_code == 200

    def step(uid: str) -> int:
        client, won = app.test_client(), 0
        for _ in range(40):
            read = client.get(url("counters/c", uid), headers=OWNER)
            n = read.get_json()["n"] if read.status_code == 200 else 0
            if n >= RACE_LIMIT:
                return won
            answer = client.put(url("counters/c", uid), json={"n": n + 1}, headers=OWNER)
            if answer.status_code in (200, 201):
                won += 1
            else:
                assert answer.status_code == 403, answer.get_data(as_text=True)
        return won

    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(step, [f"user{n}" for n in range(8)]))
    assert sum(wins) == RACE_LIMIT
    assert owner.get("/counters/c", headers=OWNER).get_json()["n"] == RACE_LIMIT

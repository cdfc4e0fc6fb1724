"""A check and its write are one step: writers racing through the rules never land a write the
rules would deny at the moment it lands. Twenty users take seats, each seat counted in the
same multi-path update as a step of a counter the rules hold at +1 and at most 5: with the data
a rule read (the counter) able to change between the check and the write, two users would both
step the counter from the same value and the seats would outnumber it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..support.fbserve import FirebaseServed, firebase, firebase_server  # noqa: F401

LIMIT = 5
RULES = {
    "rules": {
        ".read": "true",
        "count": {
            ".write": "auth != null",
            ".validate": "newData.isNumber() && newData.val() <= "
            + str(LIMIT)
            + " && newData.val() == (data.exists() ? data.val() : 0) + 1",
        },
        "seats": {
            "$uid": {
                ".write": "auth != null && auth.uid == $uid && !data.exists()",
                ".validate": "newData.val() == true"
                " && newData.parent().parent().child('count').val()"
                " == (root.child('count').exists() ? root.child('count').val() : 0) + 1",
            }
        },
    }
}
OWNER = {"Authorization": "Bearer owner"}

# On one Redis the guards are checked in the step that writes; on a cluster each judged write
# holds the store's turn from its check to its last step (firebase/guarding.py).
pytestmark = pytest.mark.cluster


def _take_a_seat(url: str, uid: str) -> bool:
    """As `uid`: read the counter, step it and take a seat in one update; again while the rules
    say the counter moved; False once they say no seat is left."""
    user = {"auth_variable_override": json.dumps({"uid": uid})}
    with httpx.Client(base_url=url, headers=OWNER, timeout=30) as client:
        for _ in range(200):
            count = client.get("/count.json").json() or 0
            if count >= LIMIT:
                return False
            answer = client.patch(
                "/.json", params=user, json={"count": count + 1, f"seats/{uid}": True}
            )
            if answer.status_code == 200:
                return True
            assert answer.status_code == 401, answer.text
            assert answer.json() == {"error": "Permission denied"}
    raise AssertionError(f"{uid} never got an answer either way")


def test_racing_writers_never_pass_a_rule_that_would_deny_them(
    firebase: FirebaseServed,  # noqa: F811
) -> None:
    assert httpx.put(f"{firebase.url}/.settings/rules.json", json=RULES, headers=OWNER).is_success
    uids = [f"user{n}" for n in range(20)]
    with ThreadPoolExecutor(len(uids)) as pool:
        seated = list(pool.map(lambda uid: _take_a_seat(firebase.url, uid), uids))
    tree = httpx.get(f"{firebase.url}/.json", headers=OWNER).json()
    assert sum(seated) == LIMIT
    assert tree["count"] == LIMIT
    assert sorted(tree["seats"]) == sorted(
        uid for uid, won in zip(uids, seated, strict=True) if won
    )

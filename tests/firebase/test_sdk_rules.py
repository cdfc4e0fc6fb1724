"""The real firebase-admin SDK acting as users (`databaseAuthVariableOverride`) against the
rules, as firebase-admin's own integration suite does it (its TestAuthVariableOverride): the
admin app sets, a user app reads and writes only what the rules allow, `None` acts as a
signed-out user; on one Redis and on the cluster."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import firebase_admin
import pytest
from firebase_admin import db, exceptions

from ..support.fbserve import FirebaseServed, firebase, firebase_server  # noqa: F401

pytestmark = pytest.mark.cluster

_names = itertools.count()
URL = {"databaseURL": "https://demo-thingstash.firebaseio.com"}
RULES: dict[str, Any] = {
    "_sdk": {
        "python": {
            "scores": {".indexOn": ".value"},
            "protected": {"$uid": {".read": "auth != null", ".write": "$uid === auth.uid"}},
            "admin": {".read": "false", ".write": "false"},
            "public": {".read": "true"},
        }
    }
}


def _app(options: dict[str, Any]) -> firebase_admin.App:
    return firebase_admin.initialize_app(None, {**URL, **options}, name=f"r{next(_names)}")


@pytest.fixture
def apps(
    firebase: FirebaseServed,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[firebase_admin.App, firebase_admin.App, firebase_admin.App]]:
    """(the admin, user1, a signed-out user), the rules deployed as the upstream suite does."""
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", firebase.host)
    admin = _app({})
    user = _app({"databaseAuthVariableOverride": {"uid": "user1"}})
    nobody = _app({"databaseAuthVariableOverride": None})
    client = db.reference("", admin)._client
    rules = client.body("get", "/.settings/rules.json", params="format=strict")
    rules["rules"] = RULES
    client.request("put", "/.settings/rules.json", json=rules)
    yield admin, user, nobody
    for app in (admin, user, nobody):
        firebase_admin.delete_app(app)


def _set(path: str, app: firebase_admin.App) -> None:
    ref = db.reference(path, app)
    ref.set("test")
    assert ref.get() == "test"


def _denied(call: Any) -> None:
    with pytest.raises(exceptions.UnauthenticatedError) as raised:
        call()
    assert str(raised.value) == "Permission denied"


def test_no_access(apps: tuple[firebase_admin.App, ...]) -> None:
    admin, user, _ = apps
    _set("_sdk/python/admin", admin)
    ref = db.reference("_sdk/python/admin", user)
    _denied(ref.get)
    _denied(lambda: ref.set("test2"))
    assert db.reference("_sdk/python/admin", admin).get() == "test"


def test_read_only_where_another_user_writes(apps: tuple[firebase_admin.App, ...]) -> None:
    admin, user, _ = apps
    _set("_sdk/python/protected/user2", admin)
    ref = db.reference("_sdk/python/protected/user2", user)
    assert ref.get() == "test"
    _denied(lambda: ref.set("test2"))
    assert ref.get() == "test"


def test_read_and_write_ones_own(apps: tuple[firebase_admin.App, ...]) -> None:
    admin, user, _ = apps
    _set("_sdk/python/protected/user1", admin)
    ref = db.reference("_sdk/python/protected/user1", user)
    assert ref.get() == "test"
    ref.set("test2")
    assert ref.get() == "test2"
    assert db.reference("_sdk/python/protected/user1", admin).get() == "test2"


def test_a_query_needs_read_where_it_runs(apps: tuple[firebase_admin.App, ...]) -> None:
    _, user, _ = apps
    ref = db.reference("_sdk/python/protected", user)
    _denied(lambda: ref.order_by_key().limit_to_first(2).get())


def test_signed_out_reads_only_the_public(apps: tuple[firebase_admin.App, ...]) -> None:
    admin, _, nobody = apps
    _set("_sdk/python/public", admin)
    assert db.reference("_sdk/python/public", nobody).get() == "test"
    ref = db.reference("_sdk/python", nobody)
    _denied(lambda: ref.child("protected/user1").get())
    _denied(lambda: ref.child("protected/user2").get())
    _denied(lambda: ref.child("admin").get())

"""The real firebase-admin SDK (its emulator mode: FIREBASE_DATABASE_EMULATOR_HOST) against
`thingstash serve --firebase-port`: every Reference method and query form that firebase-admin's
own integration suite uses, on one Redis and on the cluster."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import firebase_admin
import pytest
from firebase_admin import db, exceptions

from ..support.fbserve import FirebaseServed, firebase, firebase_server  # noqa: F401

pytestmark = pytest.mark.cluster

_names = itertools.count()

# Rivers: length in km, a nested rank, and a mixed bag of values for $value ordering.
RIVERS: dict[str, Any] = {
    "rivers": {
        "nile": {"length": 6650, "continent": "africa", "rank": {"world": 1}},
        "amazon": {"length": 6400, "continent": "america", "rank": {"world": 2}},
        "yangtze": {"length": 6300, "continent": "asia", "rank": {"world": 3}},
        "danube": {"length": 2850, "continent": "europe", "rank": {"world": 29}},
        "rhine": {"length": 1230, "continent": "europe", "rank": {"world": 80}},
        "thames": {"length": 346, "continent": "europe", "rank": {"world": 300}},
        "tiber": {"length": 406, "continent": "europe", "rank": {"world": 250}},
    },
    "flow": {"nile": 2830, "amazon": 209000, "yangtze": 30166, "rhine": 2330, "thames": 65},
}
BY_LENGTH = ["thames", "tiber", "rhine", "danube", "yangtze", "amazon", "nile"]


@pytest.fixture
def app(
    firebase: FirebaseServed,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[firebase_admin.App]:
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", firebase.host)
    app = firebase_admin.initialize_app(
        None, {"databaseURL": "https://demo-thingstash.firebaseio.com"}, name=f"t{next(_names)}"
    )
    yield app
    firebase_admin.delete_app(app)


@pytest.fixture
def base(app: firebase_admin.App) -> db.Reference:
    """The suite's own corner of the tree (a top-level name with _, as the upstream suite's)."""
    return db.reference("_sdk/python", app)


@pytest.fixture
def data(base: db.Reference) -> db.Reference:
    ref = base.child("geo")
    ref.set(RIVERS)
    return ref


# -- reads -------------------------------------------------------------------------------------


def test_reference_attributes(data: db.Reference) -> None:
    assert data.key == "geo"
    assert data.path == "/_sdk/python/geo"
    assert data.child("rivers").path == "/_sdk/python/geo/rivers"
    assert data.parent is not None and data.parent.key == "python"


def test_get_value_and_children(data: db.Reference) -> None:
    assert data.get() == RIVERS
    assert data.child("rivers").get() == RIVERS["rivers"]
    assert data.child("rivers/nile").get() == RIVERS["rivers"]["nile"]
    assert data.child("rivers").child("nile").child("rank").get() == {"world": 1}
    assert data.child("nowhere").get() is None
    assert data.child("rivers/nile/length/deeper").get() is None


def test_get_with_etag_and_shallow(data: db.Reference) -> None:
    value, etag = data.get(etag=True)
    assert value == RIVERS and isinstance(etag, str) and etag
    assert data.get(shallow=True) == {"rivers": True, "flow": True}
    assert data.child("flow/nile").get(shallow=True) == 2830


def test_get_if_changed(data: db.Reference) -> None:
    changed, value, etag = data.get_if_changed("not-the-etag")
    assert changed is True and value == RIVERS and isinstance(etag, str)
    assert data.get_if_changed(etag) == (False, None, None)
    data.child("flow/thames").set(66)
    changed, value, new_etag = data.get_if_changed(etag)
    assert changed is True and value["flow"]["thames"] == 66 and new_etag != etag


# -- writes ------------------------------------------------------------------------------------


def test_push_without_and_with_value(base: db.Reference) -> None:
    empty = base.child("users").push()
    assert empty.path == "/_sdk/python/users/" + empty.key
    assert empty.get() == ""
    person = base.child("users").push({"name": "Mary Anning", "since": 1799})
    assert person.get() == {"name": "Mary Anning", "since": 1799}
    later = base.child("users").push("third")
    assert sorted([empty.key, person.key, later.key]) == [empty.key, person.key, later.key]
    assert base.child("users").get() == {
        empty.key: "",
        person.key: {"name": "Mary Anning", "since": 1799},
        later.key: "third",
    }


@pytest.mark.parametrize(
    "value", ["text", 42, 4.5, True, False, [1, "two", {"three": 3}], {"a": {"b": [True]}}]
)
def test_set_any_value(base: db.Reference, value: Any) -> None:
    ref = base.child("users").push()
    ref.set(value)
    assert ref.get() == value


def test_set_over_and_into_values(base: db.Reference) -> None:
    ref = base.child("deep")
    ref.set({"a": {"b": 1}})
    ref.child("a/c/d").set("x")  # inside the thing: intermediate objects made
    assert ref.get() == {"a": {"b": 1, "c": {"d": "x"}}}
    ref.child("a/b").set({"replaced": True})
    assert ref.child("a").get() == {"b": {"replaced": True}, "c": {"d": "x"}}
    base.set({"deep": 1})  # above: replaces what was below
    assert base.get() == {"deep": 1}


def test_update_children(base: db.Reference) -> None:
    ref = base.child("users").push()
    ref.update({"name": "Robert Bakker", "since": 1945})
    assert ref.get() == {"name": "Robert Bakker", "since": 1945}
    ref.update({"since": 1946, "temp": True})
    assert ref.get() == {"name": "Robert Bakker", "since": 1946, "temp": True}
    ref.update({"temp": None})
    assert ref.get() == {"name": "Robert Bakker", "since": 1946}


def test_update_nested_children_across_things(base: db.Reference) -> None:
    users = base.child("users")
    edward = users.push({"name": "Edward Cope", "since": 1800})
    jack = users.push({"name": "Jack Horner", "since": 1940})
    users.update({f"{edward.key}/since": 1840, f"{jack.key}/since": 1946})
    assert edward.get() == {"name": "Edward Cope", "since": 1840}
    assert jack.get() == {"name": "Jack Horner", "since": 1946}


def test_set_if_unchanged(base: db.Reference) -> None:
    ref = base.child("users").push({"name": "Edward Cope", "since": 1800})
    ok, current, etag = ref.set_if_unchanged("stale-etag", {"name": "Jack"})
    assert ok is False and current == {"name": "Edward Cope", "since": 1800}
    ok, written, new_etag = ref.set_if_unchanged(etag, {"name": "Jack", "since": 1940})
    assert ok is True and written == {"name": "Jack", "since": 1940} and new_etag != etag
    assert ref.get() == {"name": "Jack", "since": 1940}


def test_transaction_on_object_scalar_and_nothing(base: db.Reference) -> None:
    ref = base.child("users").push({"name": "Richard"})

    def add_surname(current: dict[str, Any]) -> dict[str, Any]:
        return {**current, "name": current["name"] + " Owen", "since": 1804}

    assert ref.transaction(add_surname) == {"name": "Richard Owen", "since": 1804}
    assert ref.get() == {"name": "Richard Owen", "since": 1804}
    count = base.child("users/count")
    count.set(42)
    assert count.transaction(lambda x: x + 1 if x else 1) == 43
    assert count.get() == 43
    fresh = base.child("counters/new")  # null has an ETag too: a transaction creates
    assert fresh.transaction(lambda x: (x or 0) + 1) == 1
    assert fresh.get() == 1


def test_delete(base: db.Reference) -> None:
    ref = base.child("users").push("foo")
    assert ref.get() == "foo"
    ref.delete()
    assert ref.get() is None
    base.child("tree").set({"a": {"b": 1}, "c": 2})
    base.child("tree/a/b").delete()  # the last member: its object goes too
    assert base.child("tree").get() == {"c": 2}


def test_errors_are_firebase_errors(base: db.Reference) -> None:
    with pytest.raises(exceptions.InvalidArgumentError) as refused:
        base.child("bad").set({"a.b": 1})
    assert "Invalid data" in str(refused.value)
    with pytest.raises(exceptions.InvalidArgumentError) as refused:
        base.child("geo/rivers").order_by_child("length").limit_to_first(0).get()


# -- queries -----------------------------------------------------------------------------------


def test_order_by_key_value_and_child(data: db.Reference) -> None:
    by_key = data.child("rivers").order_by_key().get()
    assert isinstance(by_key, collections.OrderedDict)
    assert list(by_key) == sorted(RIVERS["rivers"])
    by_value = data.child("flow").order_by_value().get()
    assert list(by_value) == ["thames", "rhine", "nile", "yangtze", "amazon"]
    by_child = data.child("rivers").order_by_child("length").get()
    assert list(by_child) == BY_LENGTH
    assert by_child["nile"] == RIVERS["rivers"]["nile"]


def test_limits_and_ranges(data: db.Reference) -> None:
    rivers = data.child("rivers")
    length = rivers.order_by_child("length")
    assert list(length.limit_to_first(2).get()) == BY_LENGTH[:2]
    assert list(rivers.order_by_child("length").limit_to_first(10).get()) == BY_LENGTH
    assert list(rivers.order_by_child("length").limit_to_last(2).get()) == BY_LENGTH[-2:]
    assert list(rivers.order_by_child("length").limit_to_last(10).get()) == BY_LENGTH
    assert list(rivers.order_by_child("length").start_at(6300).get()) == BY_LENGTH[-3:]
    assert list(rivers.order_by_child("length").end_at(1230).get()) == BY_LENGTH[:3]
    assert list(rivers.order_by_child("length").start_at(400).end_at(3000).get()) == [
        "tiber",
        "rhine",
        "danube",
    ]
    assert list(rivers.order_by_child("continent").equal_to("europe").get()) == [
        "danube",
        "rhine",
        "thames",
        "tiber",
    ]
    nested = rivers.order_by_child("rank/world").start_at(80).get()
    assert set(nested) == {"rhine", "tiber", "thames"}
    assert set(rivers.order_by_key().limit_to_first(2).get()) == {"amazon", "danube"}
    assert set(rivers.order_by_key().start_at("r").end_at("t~").get()) == {
        "rhine",
        "thames",
        "tiber",
    }
    assert set(data.child("flow").order_by_value().limit_to_last(2).get()) == {
        "yangtze",
        "amazon",
    }


def test_queries_over_a_folder_of_things(base: db.Reference) -> None:
    scores = base.child("scores")
    for name, points in [("ann", 30), ("bob", 10), ("cy", 20), ("dee", 20)]:
        scores.child(name).set({"points": points})  # one thing each: a pure folder
    assert list(scores.order_by_child("points").get()) == ["bob", "cy", "dee", "ann"]
    assert list(scores.order_by_child("points").limit_to_last(2).get()) == ["dee", "ann"]
    assert list(scores.order_by_key().limit_to_last(1).get()) == ["dee"]
    assert scores.order_by_child("points").equal_to(20).get() == {
        "cy": {"points": 20},
        "dee": {"points": 20},
    }


def test_rules_with_index_on(app: firebase_admin.App, base: db.Reference) -> None:
    client = db.reference("", app)._client
    rules = client.body("get", "/.settings/rules.json", params="format=strict")
    assert "rules" in rules
    rules["rules"] = {"_sdk": {"python": {"scores": {".indexOn": ["points"]}}}}
    client.request("put", "/.settings/rules.json", json=rules)
    assert client.body("get", "/.settings/rules.json")["rules"] == rules["rules"]


def test_concurrent_transactions_lose_no_increment(base: db.Reference) -> None:
    # Two clients, each adding 1 fifteen times through if-match: every increment lands, inside
    # a thing (hits/n) and as a thing of its own (total).
    inside, whole = base.child("hits/n"), base.child("total")
    base.child("hits").set({"n": 0, "other": "kept"})

    def add(ref: db.Reference) -> None:
        for _ in range(15):
            ref.transaction(lambda value: (value or 0) + 1)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(add, ref) for ref in (inside, inside, whole, whole)]:
            future.result()
    assert inside.get() == 30 and whole.get() == 30
    assert base.child("hits/other").get() == "kept"

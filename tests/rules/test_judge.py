"""rules.judge on small hand-written rule sets (Firebase's semantics), and rules.written, the
tree a write would leave."""

from __future__ import annotations

from typing import Any

from thingstash.rules.judge import can_read, can_write
from thingstash.rules.model import QueryInfo
from thingstash.rules.ruleset import Ruleset, compile_rules
from thingstash.rules.snapshots import DictTree
from thingstash.rules.written import WrittenTree

NOW = 1_700_000_000_000
BOB = {"uid": "bob", "provider": "custom"}


class CountingTree:
    """A DictTree that records every location asked for."""

    def __init__(self, value: Any) -> None:
        self.inner = DictTree(value)
        self.asked: list[tuple[str, ...]] = []

    def value(self, path: tuple[str, ...]) -> Any:
        self.asked.append(path)
        return self.inner.value(path)


def rules(tree: dict[str, Any]) -> Ruleset:
    return compile_rules({"rules": tree})


def read(ruleset: Ruleset, path: str, data: Any = None, auth: Any = BOB, **query: Any) -> bool:
    where = tuple(part for part in path.split("/") if part)
    verdict = can_read(ruleset, where, auth, DictTree(data), NOW, QueryInfo(**query))
    return verdict.allowed


def write(ruleset: Ruleset, writes: dict[str, Any], data: Any = None, auth: Any = BOB) -> bool:
    pairs = [(tuple(p for p in path.split("/") if p), value) for path, value in writes.items()]
    return can_write(ruleset, pairs, auth, DictTree(data), NOW).allowed


# reads


def test_read_grants_cascade_and_cannot_be_taken_back() -> None:
    ruleset = rules({".read": False, "a": {".read": True, "b": {".read": False}}})
    assert read(ruleset, "a")
    assert read(ruleset, "a/b")
    assert read(ruleset, "a/b/c/d")
    assert not read(ruleset, "")
    assert not read(ruleset, "x")


def test_rules_are_not_filters_a_read_needs_a_grant_on_the_way_down() -> None:
    ruleset = rules({"a": {"b": {".read": True}}})
    assert read(ruleset, "a/b")
    assert not read(ruleset, "a", {"a": {"b": 1}})
    assert not read(ruleset, "")


def test_named_children_win_over_the_wildcard_and_wildcards_bind_keys() -> None:
    ruleset = rules(
        {"users": {"$uid": {".read": "auth != null && auth.uid === $uid"}, "admin": {}}}
    )
    assert read(ruleset, "users/bob")
    assert read(ruleset, "users/bob/inbox")
    assert not read(ruleset, "users/alice")
    assert not read(ruleset, "users/bob", auth=None)
    assert not read(ruleset, "users/admin", auth={"uid": "admin"})


def test_data_is_at_the_rules_location_and_root_at_the_root() -> None:
    ruleset = rules(
        {
            "posts": {
                "$post": {
                    ".read": "data.child('public').val() === true"
                    " || root.child('staff').child(auth.uid).exists()"
                }
            }
        }
    )
    data = {"posts": {"p1": {"public": True}, "p2": {"public": False}}, "staff": {"carol": True}}
    assert read(ruleset, "posts/p1", data)
    assert not read(ruleset, "posts/p2", data)
    assert read(ruleset, "posts/p2", data, auth={"uid": "carol"})


def test_query_rules_see_the_query() -> None:
    ruleset = rules(
        {"items": {".read": "query.orderByChild === 'owner' && query.equalTo === auth.uid"}}
    )
    assert read(ruleset, "items", order_by_child="owner", equal_to="bob")
    assert not read(ruleset, "items", order_by_child="owner", equal_to="alice")
    assert not read(ruleset, "items")


def test_a_read_under_read_true_at_the_root_reads_nothing() -> None:
    ruleset = rules({".read": True, "a": {".read": "data.exists()"}})
    tree = CountingTree({"a": {"b": 1}})
    assert can_read(ruleset, ("a",), None, tree, NOW).allowed
    assert tree.asked == []


def test_a_denied_read_says_so() -> None:
    verdict = can_read(rules({".read": "auth != null"}), ("a", "b"), None, DictTree(None), NOW)
    assert not verdict.allowed
    assert "/a/b" in verdict.reason


# writes


def test_write_grants_cascade_and_cannot_be_taken_back() -> None:
    ruleset = rules({"a": {".write": "auth != null", "b": {".write": False}}})
    assert write(ruleset, {"a/b": 1})
    assert write(ruleset, {"a": {"b": 1, "c": 2}})
    assert not write(ruleset, {"a/b": 1}, auth=None)
    assert not write(ruleset, {"x": 1})


def test_a_write_above_the_rules_is_granted_by_deeper_write_rules_for_what_it_changes() -> None:
    ruleset = rules({"a": {"b": {".write": True}, "c": {".write": False}}})
    before = {"a": {"b": 1, "c": 2}}
    assert write(ruleset, {"a": {"b": 5, "c": 2}}, before)  # only b changes
    assert not write(ruleset, {"a": {"b": 5}}, before)  # c would be deleted
    assert not write(ruleset, {"a": {"b": 5, "c": 3}}, before)
    assert not write(ruleset, {"a": {"b": 5, "d": 1}}, before)  # no rule for d
    assert not write(ruleset, {"a": 7}, before)  # a replaced by a value


def test_newdata_is_at_the_rules_location_and_root_is_the_data_before() -> None:
    ruleset = rules(
        {
            "$x": {
                ".write": "root.child('open').child($x).val() === true"
                " && data.val() === null && newData.val() === 5"
            }
        }
    )
    data = {"open": {"slot": True}}
    assert write(ruleset, {"slot": 5}, data)
    assert not write(ruleset, {"slot": 6}, data)
    assert not write(ruleset, {"slot": 5}, {**data, "slot": 4})
    assert not write(ruleset, {"other": 5}, data)


def test_validate_does_not_cascade_and_does_not_run_on_deletes() -> None:
    ruleset = rules({".write": True, "n": {".validate": "newData.isNumber()", "deep": {}}})
    assert write(ruleset, {"n": 1})
    assert not write(ruleset, {"n": "one"})
    assert write(ruleset, {"n": None}, {"n": 1})  # a delete is not validated
    assert write(ruleset, {"elsewhere": "one"})
    assert write(ruleset, {"n/deep": None}, {"n": {"deep": 1}})


def test_validate_runs_at_every_written_location_below_the_path() -> None:
    ruleset = rules({".write": True, "m": {"$k": {".validate": "newData.isNumber()"}}})
    assert write(ruleset, {"": {"m": {"a": 1, "b": 2}}})
    assert not write(ruleset, {"": {"m": {"a": 1, "b": "two"}}})


def test_validate_runs_at_the_ancestors_of_the_write_while_they_hold_something() -> None:
    ruleset = rules({".write": True, "room": {".validate": "newData.hasChildren(['name'])"}})
    before = {"room": {"name": "r", "topic": "t"}}
    assert write(ruleset, {"room/topic": None}, before)
    assert not write(ruleset, {"room/name": None}, before)  # the room would lack a name
    assert write(ruleset, {"room/name": None}, {"room": {"name": "r"}})  # the room goes away


def test_a_multi_path_write_is_all_or_nothing_with_newdata_after_all_of_it() -> None:
    ruleset = rules(
        {
            "a": {".write": True, ".validate": "newData.parent().child('b').val() === 2"},
            "b": {".write": True},
            "c": {".write": False},
        }
    )
    assert write(ruleset, {"a": 1, "b": 2})
    assert not write(ruleset, {"a": 1})
    assert not write(ruleset, {"a": 1, "b": 2, "c": 3})


def test_a_denied_write_says_which_rule() -> None:
    ruleset = rules({".write": True, "n": {".validate": "newData.isNumber()"}})
    verdict = can_write(ruleset, [(("n",), "x")], BOB, DictTree(None), NOW)
    assert not verdict.allowed
    assert "rules/n/.validate" in verdict.reason


def test_a_write_granted_at_the_root_reads_only_where_rules_ask() -> None:
    ruleset = rules({".write": True})
    tree = CountingTree({"a": {"b": 1}, "big": {"x": 1}})
    assert can_write(ruleset, [(("a", "b"), 2)], BOB, tree, NOW).allowed
    assert tree.asked == []


# the tree a write would leave


def test_written_tree_sets_deletes_and_prunes() -> None:
    base = DictTree({"a": {"b": 1, "c": {".priority": 3, "d": 1}}, "e": 1})
    after = WrittenTree(base, [(("a", "b"), None), (("a", "c", "d"), None), (("f",), [1, None])])
    assert after.value(()) == {"e": 1, "f": {"0": 1}}
    assert after.value(("a",)) is None


def test_written_tree_applies_writes_in_order_and_reads_the_base_lazily() -> None:
    base = CountingTree({"a": {"x": 1}, "z": 9})
    after = WrittenTree(base, [(("a",), {"y": 2}), (("a", "y"), 3), (("b", "c"), {})])
    assert after.value(("a",)) == {"y": 3}
    assert after.value(("b",)) is None
    assert base.asked == [("b",)]
    assert after.value(("a", "y")) == 3
    assert after.value(()) == {"a": {"y": 3}, "z": 9}

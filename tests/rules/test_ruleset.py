"""rules.ruleset: a rules document compiled at upload, or refused naming the place."""

from __future__ import annotations

from typing import Any

import pytest

from thingstash.rules.model import RulesError
from thingstash.rules.ruleset import compile_rules, compile_rules_text


def refused(document: Any) -> RulesError:
    with pytest.raises(RulesError) as caught:
        compile_rules(document)
    return caught.value


def test_a_tree_of_nodes_with_named_and_wildcard_children() -> None:
    ruleset = compile_rules(
        {
            "rules": {
                ".read": True,
                "users": {
                    "$uid": {".write": "auth != null && auth.uid === $uid", "name": {}},
                    "admin": {".validate": "newData.isString()"},
                },
            }
        }
    )
    root = ruleset.root
    assert root.read is not None and root.read.source == "true"
    users = root.children["users"]
    assert users.wildcard == "$uid"
    assert users.wildcard_child is not None
    assert users.wildcard_child.write is not None
    assert users.wildcard_child.place == "rules/users/$uid"
    assert set(users.wildcard_child.children) == {"name"}
    assert users.children["admin"].validate is not None
    found = users.match("admin")
    assert found is not None and found[0] is users.children["admin"] and found[1] is None
    found = users.match("bob")
    assert found is not None and found[0] is users.wildcard_child and found[1] == "$uid"
    assert root.match("nothing") is None


def test_index_declarations_keep_wildcards_as_pattern_segments() -> None:
    ruleset = compile_rules(
        {
            "rules": {
                "dinos": {".indexOn": ["height", "weight"]},
                "rooms": {"$room": {"posts": {".indexOn": "created"}}},
            }
        }
    )
    assert ruleset.index_declarations() == [
        (("dinos",), "height"),
        (("dinos",), "weight"),
        (("rooms", "$room", "posts"), "created"),
    ]


def test_two_wildcards_at_one_level_are_refused() -> None:
    error = refused({"rules": {"users": {"$a": {}, "$b": {}}}})
    assert error.place == "rules/users/$b"
    assert "two wildcards" in error.message


@pytest.mark.parametrize(
    ("document", "place"),
    [
        ({"rules": {"users": {"$uid": {".reed": "true"}}}}, "rules/users/$uid/.reed"),
        ({"rules": {"users": {"$uid": {".read": 5}}}}, "rules/users/$uid/.read"),
        ({"rules": {"a": {".write": None}}}, "rules/a/.write"),
        ({"rules": {"a": {".indexOn": 3}}}, "rules/a/.indexOn"),
        ({"rules": {"a": {".indexOn": ["x", 1]}}}, "rules/a/.indexOn"),
        ({"rules": {"a": True}}, "rules/a"),
        ({"rules": []}, "rules"),
        ({"rules": {}, "other": {}}, "document"),
        ({}, "document"),
        ([], "document"),
    ],
)
def test_wrong_shapes_are_refused_naming_the_place(document: Any, place: str) -> None:
    assert refused(document).place == place


def test_an_expression_that_does_not_compile_names_its_place_and_column() -> None:
    error = refused({"rules": {"users": {"$uid": {".read": "auth.uid === "}}}})
    assert error.place.startswith("rules/users/$uid/.read")


def test_wildcards_are_in_scope_only_below_where_they_are_bound() -> None:
    compile_rules({"rules": {"users": {"$uid": {"posts": {".read": "$uid === auth.uid"}}}}})
    error = refused({"rules": {"users": {"$uid": {}, ".read": "$uid === auth.uid"}}})
    assert error.place.startswith("rules/users/.read")


def test_kinds_are_checked_at_upload() -> None:
    error = refused({"rules": {".read": "newData.exists()"}})
    assert error.place.startswith("rules/.read")
    compile_rules({"rules": {".write": "newData.exists()", ".validate": "newData.exists()"}})


def test_text_in_firebases_dialect() -> None:
    ruleset = compile_rules_text(
        """{
          // comments are allowed
          "rules": {
            "a": { /* and these */ ".read": "auth != null
                && auth.uid == 'x'" }
          }
        }"""
    )
    assert ruleset.root.children["a"].read is not None
    with pytest.raises(RulesError):
        compile_rules_text('{"rules": {"a": {".read": }}}')

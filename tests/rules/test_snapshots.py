"""Snapshots over a Tree: children by path, parents, priorities kept out of values, existence,
and the type tests, as a rule sees them."""

from __future__ import annotations

from typing import Any

from thingstash.rules.snapshots import DictTree, TreeSnapshot, split_path
from thingstash.rules.written import WrittenTree

STORED: dict[str, Any] = {
    ".priority": 1,
    "users": {
        "bob": {".priority": "p", "name": {".value": "Bob", ".priority": 2.5}, "age": 40},
        "eve": {"flag": True},
    },
    "ranks": {"1": "a", "2": "b"},
    "empty": {".priority": 3},
}


def snap(path: str = "") -> TreeSnapshot:
    return TreeSnapshot(DictTree(STORED), split_path(path))


def test_paths_split_on_slashes_and_ignore_empty_segments() -> None:
    assert split_path("/a//b/") == ("a", "b")
    assert snap().child("users//bob/").child("age").val() == 40
    assert snap("users").child("bob/name").val() == "Bob"


def test_values_leave_priorities_out_recursively() -> None:
    assert snap("users/bob").val() == {"name": "Bob", "age": 40}
    assert snap().val()["users"]["bob"] == {"name": "Bob", "age": 40}
    assert snap("ranks").val() == {"1": "a", "2": "b"}  # numeric keys stay an object


def test_priorities() -> None:
    assert snap().get_priority() == 1
    assert snap("users/bob").get_priority() == "p"
    assert snap("users/bob/name").get_priority() == 2.5
    assert snap("users/eve").get_priority() is None
    assert snap("nowhere").get_priority() is None


def test_existence_and_children() -> None:
    assert snap("users/bob").exists()
    assert not snap("users/zed").exists()
    assert not snap("empty").exists()  # only a priority: nothing there
    assert not snap("users/bob/name/first").exists()  # under a leaf
    assert snap("users").has_child("bob/age")
    assert not snap("users").has_child("bob/.priority")
    assert snap("users/bob").has_children(None)
    assert snap("users/bob").has_children(["name", "age"])
    assert not snap("users/bob").has_children(["name", "email"])
    assert not snap("users/bob/age").has_children(None)
    assert not snap("nowhere").has_children([])


def test_parents() -> None:
    parent = snap("users/bob").parent()
    assert parent is not None and parent.has_child("eve")
    top = snap("users").parent()
    assert top is not None and top.parent() is None
    assert snap().parent() is None


def test_types() -> None:
    assert snap("users/bob/age").is_number()
    assert snap("users/bob/name").is_string()
    assert snap("users/eve/flag").is_boolean()
    assert not snap("users/eve/flag").is_number()  # a boolean is no number
    assert not snap("users").is_string()
    assert not snap("nowhere").is_boolean()


def test_the_tree_a_write_would_make() -> None:
    base = DictTree(STORED)
    after = WrittenTree(base, [(("users", "bob", "age"), 41), (("users", "eve"), None)])
    new = TreeSnapshot(after)
    assert new.child("users/bob").val() == {"name": "Bob", "age": 41}
    assert new.child("users/bob/name").get_priority() == 2.5  # untouched siblings keep theirs
    assert not new.child("users/eve").exists()
    assert new.child("users").val() == {"bob": {"name": "Bob", "age": 41}}
    assert TreeSnapshot(base, ("users", "bob", "age")).val() == 40  # the base is not changed
    replaced = TreeSnapshot(WrittenTree(base, [(("users",), {"zed": {"a": 1}})]))
    assert replaced.child("users").val() == {"zed": {"a": 1}}
    assert replaced.child("users/zed/a").val() == 1
    assert replaced.child("ranks/1").val() == "a"
    deeper = TreeSnapshot(WrittenTree(base, [(("users", "bob", "name", "first"), "B")]))
    assert deeper.child("users/bob/name").val() == {"first": "B"}  # a leaf became an object
    gone = TreeSnapshot(WrittenTree(DictTree({"a": {"b": 1}}), [(("a", "b"), None)]))
    assert not gone.child("a").exists() and gone.val() is None

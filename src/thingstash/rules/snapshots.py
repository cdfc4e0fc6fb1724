"""`data`, `newData` and `root` over a Tree: whatever can say what JSON sits at a path (a store,
a tree a write would make, a dict in tests). Values come as a store holds them: objects may
carry `.priority` members and `{".value": x, ".priority": p}` wrappers; a snapshot's `val()`
leaves priorities out, as Firebase's does."""

from __future__ import annotations

from typing import Any, Protocol

from .model import Snapshot

Path = tuple[str, ...]


class Tree(Protocol):
    """What a snapshot reads: the JSON at a location (priorities included), None when absent."""

    def value(self, path: Path) -> Any: ...


def split_path(path: str) -> Path:
    """`a/b//c` to ("a", "b", "c"): empty segments ignored, as Firebase's `child` does."""
    return tuple(part for part in path.split("/") if part)


def strip(value: Any) -> Any:
    """A stored value without priorities: `.value` wrappers unwrapped, `.priority` members
    dropped, empty objects gone (None), recursively. Numeric keys stay keys of an object."""
    if isinstance(value, dict):
        if ".value" in value:
            return strip(value[".value"])
        out = {}
        for key, child in value.items():
            if key == ".priority":
                continue
            stripped = strip(child)
            if stripped is not None:
                out[key] = stripped
        return out or None
    return value


def present(value: Any) -> bool:
    """Whether `strip(value)` is not None, without building it."""
    if isinstance(value, dict):
        if ".value" in value:
            return present(value[".value"])
        return any(key != ".priority" and present(child) for key, child in value.items())
    return value is not None


def walk(value: Any, path: Path) -> Any:
    """The stored value under `path` inside `value` (None when absent)."""
    for key in path:
        if not isinstance(value, dict) or ".value" in value or key == ".priority":
            return None
        value = value.get(key)
    return value


class DictTree:
    """An in-memory Tree over one JSON value (tests, the offline case runner)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def value(self, path: Path) -> Any:
        return walk(self._value, path)


class TreeSnapshot:
    """model.Snapshot over any Tree at `path`."""

    __slots__ = ("tree", "path")

    def __init__(self, tree: Tree, path: Path = ()) -> None:
        self.tree = tree
        self.path = path

    def _raw(self) -> Any:
        return self.tree.value(self.path)

    def val(self) -> Any:
        return strip(self._raw())

    def child(self, path: str) -> Snapshot:
        return TreeSnapshot(self.tree, self.path + split_path(path))

    def parent(self) -> Snapshot | None:
        return TreeSnapshot(self.tree, self.path[:-1]) if self.path else None

    def has_child(self, path: str) -> bool:
        return self.child(path).exists()

    def has_children(self, names: list[str] | None) -> bool:
        raw = self._raw()
        if not isinstance(raw, dict) or ".value" in raw or not present(raw):
            return False
        if names is None:
            return True
        value = raw
        return all(present(walk(value, split_path(name))) for name in names)

    def exists(self) -> bool:
        return present(self._raw())

    def get_priority(self) -> Any:
        raw = self._raw()
        return raw.get(".priority") if isinstance(raw, dict) else None

    def is_number(self) -> bool:
        value = self.val()
        return isinstance(value, int | float) and not isinstance(value, bool)

    def is_string(self) -> bool:
        return isinstance(self.val(), str)

    def is_boolean(self) -> bool:
        return isinstance(self.val(), bool)

    def __repr__(self) -> str:
        return f"TreeSnapshot(/{'/'.join(self.path)})"

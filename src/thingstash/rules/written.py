"""The tree a write would leave, for `newData` and a write's `root`: a base Tree with writes set
in order (a PUT is one; a multi-path PATCH several), read lazily: asking for a location reads
only that location of the base, and only when no write covers it.

Firebase's write semantics: each write sets the value at its path (None deletes), nulls and
empty objects vanish (an object left empty by a delete vanishes with it), arrays become objects
keyed by index, `.priority` members and `{".value": x, ".priority": p}` wrappers are kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .snapshots import Tree, present, walk

Path = tuple[str, ...]


def prune(value: Any) -> Any:
    """`value` with nulls and empty objects gone, recursively (None when nothing is left);
    an object holding only a `.priority` is empty; arrays become objects keyed by index, as
    Firebase stores them."""
    if isinstance(value, list):
        value = {str(index): item for index, item in enumerate(value)}
    if isinstance(value, dict):
        if ".value" in value:
            return value if value[".value"] is not None else None
        out = {}
        for key, child in value.items():
            kept = child if key == ".priority" else prune(child)
            if kept is not None:
                out[key] = kept
        return out if present(out) else None
    return value


def set_at(value: Any, path: Path, new: Any) -> Any:
    """`value` with `new` set at `path`, copying only the objects on the way; a leaf on the
    way becomes an object; objects left empty vanish (None)."""
    if not path:
        return prune(new)
    head, rest = path[0], path[1:]
    out = dict(value) if isinstance(value, dict) and ".value" not in value else {}
    child = set_at(out.get(head), rest, new)
    if child is None:
        out.pop(head, None)
    else:
        out[head] = child
    return out if present(out) else None


class WrittenTree:
    """`base` as it would be after `writes` ((path, value) pairs, applied in order)."""

    def __init__(self, base: Tree, writes: Sequence[tuple[Path, Any]]) -> None:
        self.base = base
        self.writes = [(tuple(path), prune(value)) for path, value in writes]

    def value(self, path: Path) -> Any:
        depth = len(path)
        start = 0
        value: Any = None
        for i in range(len(self.writes) - 1, -1, -1):
            where, new = self.writes[i]
            if path[: len(where)] == where:
                value = walk(new, path[len(where) :])
                start = i + 1
                break
        else:
            value = self.base.value(path)
        for where, new in self.writes[start:]:
            if len(where) > depth and where[:depth] == path:
                value = set_at(value, where[depth:], new)
        return value

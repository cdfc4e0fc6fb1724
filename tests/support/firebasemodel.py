"""Firebase's tree as plain JSON, the model the Firebase face's model tests compare with."""

from __future__ import annotations

from typing import Any


def pruned(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: pruned(v) for k, v in value.items()}
        kept = {k: v for k, v in kept.items() if v is not None}
        return kept or None
    return value


def model_get(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def model_set(tree: Any, path: tuple[str, ...], value: Any) -> Any:
    """Firebase's set on a plain JSON tree: the subtree at `path` becomes `value` (a null
    where nothing is changes nothing: a scalar on the way stays)."""
    if pruned(value) is None and model_get(tree, path) is None:
        return tree
    if not path:
        return pruned(value)
    node = dict(tree) if isinstance(tree, dict) else {}
    node[path[0]] = model_set(node.get(path[0]), path[1:], value)
    return pruned(node)

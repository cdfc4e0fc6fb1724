"""Strict JSON comparison for tests: same types (1 is not 1.0 is not "1"), values and key order."""

from __future__ import annotations

import json
from typing import Any


def strictly_equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def without_reserved(text: str) -> dict[str, Any]:
    value = json.loads(text)
    value.pop("ttl")
    value.pop("last_updated")
    return value

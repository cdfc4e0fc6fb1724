"""Hooks for the `schemathesis run` of tests/e2e/test_openapi.py (loaded through
SCHEMATHESIS_HOOKS): it has no serializer of its own for POST /_import's JSON Lines bodies."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/jsonl", "application/x-ndjson")
def json_lines(ctx: Any, value: Any) -> bytes:
    """The generated document as it is: a string is the lines already; anything else (the
    fuzzer also sends wrong types) goes as one line of JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()

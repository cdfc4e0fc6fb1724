"""JSON documents: faithful parsing and serialising, limits, reserved fields, patches, .sv values.

Pure functions with no I/O, so the HTTP layer and storage share one definition of what a valid
thing is. orjson does the work; the standard library steps in only for integers beyond 64 bits,
which orjson would silently turn into floats (and refuses to serialise).

Every number a request brings (JSON integers and floats, `?ttl=` and `?limit=`, increments and
their sums) meets its edges here, and each edge is a BadDocument in the client's words: no
OverflowError or interpreter message ever reaches a response.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from thingstash.core.config import MAX_INT_DIGITS

RESERVED_FIELDS = ("ttl", "last_updated")
SERVER_VALUE = ".sv"
SERVER_VALUE_KEY = b'".sv"'  # how the key looks in serialised JSON

# Integer literals of 19+ digits may not fit in 64 bits; only then is the slower exact parser used.
_LONG_DIGITS = re.compile(rb"\d{19,}")

Document = dict[str, Any]
_MISSING = object()


class BadDocument(ValueError):
    """The body is not an acceptable thing: `title` names the trouble, `detail` says why.
    (web.errors answers it 400; the kinds below have answers of their own.)"""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail


class NotAnObject(BadDocument):
    """Well-formed JSON that is not an object where a thing must be one (answered 422)."""


class CannotApply(BadDocument):
    """A server value cannot apply to what is stored (an increment of a string, a sum past
    the limits; answered 409)."""


def _reject_constant(name: str) -> Any:
    raise BadDocument("invalid JSON", f"{name} is not a JSON value")


# -- numbers at their edges -------------------------------------------------------------------

# Python refuses int() of longer digit strings (CVE-2020-10735: parsing them is quadratic); the
# limit is ours, stated in the API, whatever the interpreter's setting.
_INT_LIMIT = 10**MAX_INT_DIGITS


def _too_many_digits(digits: int) -> BadDocument:
    return BadDocument(
        "number too long",
        f"integers may have at most {MAX_INT_DIGITS:,} digits; this one has {digits:,}",
    )


def _json_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise _too_many_digits(digits)
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"
        raise BadDocument("invalid JSON", f"the number {shown} is too large for a float")
    return value


def whole_number(text: str, name: str, minimum: int, maximum: int) -> int:
    """A query parameter that must be a whole number from `minimum` to `maximum` (ASCII digits
    only, leading zeros allowed), checked by length before any conversion."""
    digits = text.lstrip("0") or "0"
    if not (text.isascii() and text.isdigit()):
        shown = dumps(text[:40]).decode() + ("..." if len(text) > 40 else "")
        raise BadDocument(
            f"bad {name}",
            f"{name} must be a whole number from {minimum} to {maximum}, not {shown}",
        )
    if len(digits) > len(str(maximum)) or not minimum <= int(digits) <= maximum:
        shown = digits if len(digits) <= 40 else f"a number of {len(digits):,} digits"
        raise BadDocument(
            f"bad {name}",
            f"{name} must be a whole number from {minimum} to {maximum}, not {shown}",
        )
    return int(digits)


def _add(current: int | float, step: int | float) -> int | float:
    """An increment's sum, if JSON can hold it (409 otherwise: it depends on what is stored)."""
    too_large = CannotApply(
        "cannot increment", "the sum is too large for a JSON number (past 1.8e308)"
    )
    try:
        total = current + step
    except OverflowError:  # an int past the largest float, added to a float
        raise too_large from None
    if isinstance(total, float) and not math.isfinite(total):
        # JSON has no infinity: stored, it would read back as null.
        raise too_large
    if isinstance(total, int) and not -_INT_LIMIT < total < _INT_LIMIT:
        raise CannotApply(
            "cannot increment",
            f"the sum would have more than {MAX_INT_DIGITS:,} digits, the most an integer may have",
        )
    return total


# -- parsing and serialising -------------------------------------------------------------------


def loads(raw: bytes) -> Any:
    """Parse JSON exactly: ints of any size stay ints, floats stay floats."""
    if not raw.strip():
        raise BadDocument("invalid JSON", "the body is empty; send a JSON object")
    try:
        if _LONG_DIGITS.search(raw) is None:
            return orjson.loads(raw)
        text = raw.decode("utf-8")
        value = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_json_int
        )
        dumps(value)  # refuses lone surrogates, which the standard library lets through
        return value
    except orjson.JSONDecodeError as error:
        raise BadDocument("invalid JSON", f"the body is not valid JSON: {error}") from None
    except UnicodeDecodeError as error:
        raise BadDocument(
            "invalid JSON", f"the body is not valid UTF-8 (at byte {error.start + 1})"
        ) from None
    except RecursionError:
        raise BadDocument("too deeply nested", "the body nests too deeply") from None
    except ValueError as error:
        if isinstance(error, BadDocument):
            raise
        raise BadDocument("invalid JSON", f"the body is not valid JSON: {error}") from None


def dumps(value: Any) -> bytes:
    """Serialise compactly, keeping key order and exact numbers."""
    try:
        return orjson.dumps(value)
    except TypeError:
        try:
            return json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        except UnicodeEncodeError as error:
            character = error.object[error.start : error.start + 1]
            raise BadDocument(
                "invalid JSON",
                f"a string holds a lone surrogate (\\u{ord(character):04x}), which is not Unicode",
            ) from None
        except ValueError:  # NaN or an infinity: the parsers let none in
            raise BadDocument("invalid JSON", "a number is not finite") from None


def loads_object(raw: bytes, max_depth: int) -> Document:
    """Parse a request body that must be a JSON object nested at most `max_depth` levels."""
    return check_object(loads(raw), max_depth, raw.count(b"{") + raw.count(b"["))


def check_object(
    value: Any, max_depth: int, brackets: int | None = None, what: str = "the body"
) -> Document:
    """`value` itself, if it is a JSON object nested at most `max_depth` levels. `brackets`, the
    number of `{` and `[` in its source, spares the walk when it is small; `what` names it in
    the error."""
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "null"
        raise NotAnObject(
            "not a JSON object", f"{what} must be a JSON object, not {_json_kind(kind)}"
        )
    # Each level opens with a bracket, so a body with few brackets needs no walk to be counted.
    if brackets is None or brackets > max_depth:
        depth = nesting_depth(value)
        if depth > max_depth:
            raise BadDocument(
                "too deeply nested",
                f"{what} nests {depth} levels; at most {max_depth} allowed",
            )
    return value


def _json_kind(python_kind: str) -> str:
    return {
        "list": "an array",
        "str": "a string",
        "int": "a number",
        "float": "a number",
        "bool": "a boolean",
        "dict": "an object",
        "NoneType": "null",
    }.get(python_kind, python_kind)


def nesting_depth(value: Any) -> int:
    """Levels of objects and arrays; a flat object is 1. Iterative, so no input can recurse."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    children: Iterable[Any]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def pop_reserved(doc: Document) -> Any:
    """Remove `ttl` and `last_updated` from the top level; return the `ttl` asked for, or None."""
    doc.pop("last_updated", None)
    return doc.pop("ttl", None)


def resolve_ttl(body_ttl: Any, query_ttl: str | None, default: int, maximum: int) -> int:
    """The lifetime a write asks for, from the body's `ttl` and the `?ttl=` query, agreeing."""
    from_query: int | None = None
    if query_ttl is not None:
        from_query = whole_number(query_ttl, "ttl", 1, maximum)
    from_body: int | None = None
    if body_ttl is not None:
        if isinstance(body_ttl, bool) or not isinstance(body_ttl, int):
            shown = dumps(body_ttl).decode()
            shown = shown if len(shown) <= 40 else f"{shown[:40]}..."
            raise BadDocument("bad ttl", f"ttl must be a positive integer or null, not {shown}")
        from_body = _check_ttl(body_ttl, maximum)
    if from_query is not None and from_body is not None and from_query != from_body:
        raise BadDocument("bad ttl", f"the body's ttl {from_body} and ?ttl={from_query} disagree")
    chosen = from_body if from_body is not None else from_query
    return default if chosen is None else chosen


def _check_ttl(ttl: int, maximum: int) -> int:
    if not 1 <= ttl <= maximum:
        shown = ttl if abs(ttl) < 10**40 else "a number of more than 40 digits"
        raise BadDocument("bad ttl", f"ttl must be between 1 and {maximum} seconds, not {shown}")
    return ttl


def thing_json(body: bytes, ttl: int, last_updated: int) -> bytes:
    """A stored object as clients see it, with the reserved fields spliced onto its end (bytes
    only: reads never parse or re-serialise the user's JSON)."""
    reserved = b'"ttl":%d,"last_updated":%d}' % (ttl, last_updated)
    if body == b"{}":
        return b"{" + reserved
    return body[:-1] + b"," + reserved


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge, null removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _server_value_specs(value: Any) -> Iterator[Any]:
    """The `.sv` specs found anywhere in `value` (iteratively: no input can recurse)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if SERVER_VALUE in node:
                yield node[SERVER_VALUE]
                continue
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def has_server_values(value: Any) -> bool:
    return any(True for _ in _server_value_specs(value))


def now_ms() -> int:
    """The server's time in ms since the epoch: what `{".sv": "timestamp"}` becomes."""
    return time.time_ns() // 1_000_000


def needs_current(value: Any) -> bool:
    """Whether resolving the server values in `value` reads the stored thing (increments do)."""
    return any(isinstance(spec, dict) for spec in _server_value_specs(value))


def resolve_thing(doc: Document, current: Any, now_ms: int) -> Document:
    """`doc` with its server values resolved, if it is still an object: a body that is one
    server value, `{".sv": "timestamp"}`, would resolve to a bare number, which is no thing."""
    # Only a `.sv` at the top makes the resolved body something other than an object; it is
    # refused before resolving, so the answer does not depend on what is stored.
    if SERVER_VALUE in doc:
        raise NotAnObject(
            "not a JSON object",
            "the body must be a JSON object; a server value stands for one value inside it "
            '(send {"at": {".sv": "timestamp"}}, not {".sv": "timestamp"})',
        )
    resolved: Document = resolve_server_values(doc, current, now_ms)  # an object stays one
    return resolved


def resolve_server_values(value: Any, current: Any, now_ms: int) -> Any:
    """Replace each `{".sv": ...}` with its value; increments add to what `current` holds there."""
    if isinstance(value, dict):
        if SERVER_VALUE in value:
            return _server_value(value, current, now_ms)
        return {
            key: resolve_server_values(
                child, current.get(key) if isinstance(current, dict) else None, now_ms
            )
            for key, child in value.items()
        }
    if isinstance(value, list):
        return [
            resolve_server_values(
                child,
                current[index] if isinstance(current, list) and index < len(current) else None,
                now_ms,
            )
            for index, child in enumerate(value)
        ]
    return value


def _server_value(node: dict[str, Any], current: Any, now_ms: int) -> Any:
    if len(node) != 1:
        raise BadDocument(
            "bad server value", 'an object with .sv must hold nothing else: {".sv": ...}'
        )
    spec = node[SERVER_VALUE]
    if spec == "timestamp":
        return now_ms
    if isinstance(spec, dict) and list(spec) == ["increment"]:
        step = spec["increment"]
        if isinstance(step, bool) or not isinstance(step, int | float):
            raise BadDocument("bad server value", "increment takes a number")
        if current is None:
            current = 0
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise CannotApply(
                "cannot increment",
                f"the stored value there is {_json_kind(type(current).__name__)}, not a number",
            )
        return _add(current, step)
    raise BadDocument(
        "bad server value",
        'the only server values are {".sv": "timestamp"} and {".sv": {"increment": N}}',
    )

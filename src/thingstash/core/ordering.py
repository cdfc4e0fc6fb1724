"""The order of a query, as bytes: JSON values encoded so that comparing the bytes compares the
values as Firebase orders them, and the names of things after them.

An index of a folder is a Redis sorted set with every score 0, so Redis orders its members by
their bytes (ZRANGE BYLEX, ZRANK, ZLEXCOUNT). A member is `sort_key(value) + name`: the key of
the thing's value of the indexed field, then the thing's name, so ties go by name for free and a
bound on values is a range of members. Queries computed in Python (small folders without an
index) sort the same members, so both give one answer.

The order (Firebase's, for `orderByChild`):

    missing or null  <  false  <  true  <  numbers  <  strings  <  arrays and objects

- numbers by value, ints and floats together: the key is the float64 of the value, 8 bytes that
  compare as the numbers do (the IEEE 754 bits, all flipped for a negative number, else only the
  sign bit). -0.0 is 0.0. Ints beyond 2^53 take the nearest float, so some of them tie (then
  their names order them); an int past the largest float counts as +/- infinity.
- strings by Unicode code point: their UTF-8 bytes order so. A string key ends with 0x00 0x00
  and any 0x00 inside it is written 0x00 0xFF, so a string sorts before every longer string it
  begins, and the name that follows never takes part in comparing values.
- arrays and objects all tie: among them, names order.

Names are UTF-8 and never hold the byte 0xFF, so `key + 0xFF` is above every member with that key
and below every member with a greater key: an inclusive upper bound needs no list of names.

Pure (stdlib and orjson): no Redis, no HTTP.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The first byte of a key: the kind of value, in Firebase's order.
NULL = b"\x01"
FALSE = b"\x02"
TRUE = b"\x03"
NUMBER = b"\x04"
STRING = b"\x05"
COMPOSITE = b"\x06"  # arrays and objects

_STRING_END = b"\x00\x00"
_ESCAPED_NUL = b"\x00\xff"
ABOVE_NAMES = b"\xff"  # above any byte of a UTF-8 name

NAME_FIELD = "$name"
UPDATED_FIELD = "$updated"
SPECIAL_FIELDS = (NAME_FIELD, UPDATED_FIELD)
MAX_FIELD_BYTES = 512
MAX_FIELD_DEPTH = 32
# Top-level fields the service keeps out of stored things (API.md, "Two reserved fields").
_NOT_STORED = {
    "ttl": "ttl is not stored in things (it is each thing's remaining lifetime); "
    "order_by=$updated orders by last write",
    "last_updated": "last_updated is not stored in things; order_by=$updated orders by last write",
}


class BadField(ValueError):
    """A field path a query cannot order by; the message says what to send instead."""


@dataclass(frozen=True, slots=True)
class Field:
    """What a query orders by: `$name`, `$updated`, or a path into each thing's JSON."""

    text: str
    segments: tuple[str, ...] = ()

    @property
    def is_name(self) -> bool:
        return self.text == NAME_FIELD

    @property
    def is_updated(self) -> bool:
        return self.text == UPDATED_FIELD


def parse_field(text: str) -> Field:
    """`score`, `stats/level`, `$name` or `$updated`; BadField says what is wrong otherwise."""
    if text in SPECIAL_FIELDS:
        return Field(text)
    if text == "":
        raise BadField("order_by names a field: `score`, `stats/level`, `$name` or `$updated`")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FIELD_BYTES:
        raise BadField(f"a field path may have at most {MAX_FIELD_BYTES} bytes")
    if text.startswith("$"):
        raise BadField(
            f"{text!r} is not a field: the special ones are $name (the thing's name) and "
            "$updated (its last write); a field of the JSON does not start with $"
        )
    segments = tuple(text.split("/"))
    if "" in segments:
        raise BadField(
            f"the field path {text!r} has an empty segment: separate the segments by one / "
            "with none at either end, as in stats/level"
        )
    if len(segments) > MAX_FIELD_DEPTH:
        raise BadField(f"a field path may have at most {MAX_FIELD_DEPTH} segments")
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise BadField("a field path may not contain control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadField("the field path is not valid UTF-8") from None
    if len(segments) == 1 and segments[0] in _NOT_STORED:
        raise BadField(_NOT_STORED[segments[0]])
    return Field(text, segments)


def field_value(document: Any, segments: Sequence[str]) -> Any:
    """The value at `segments` in a thing's JSON, None when missing (as Firebase, which makes
    no difference between null and absent). A segment of digits indexes an array, as it does
    in Firebase, where an array is an object keyed by index."""
    value = document
    for segment in segments:
        if isinstance(value, dict):
            if segment not in value:
                return None
            value = value[segment]
        elif isinstance(value, list) and segment.isascii() and segment.isdigit():
            if (segment != "0" and segment.startswith("0")) or int(segment) >= len(value):
                return None
            value = value[int(segment)]
        else:
            return None
    return value


# -- keys --------------------------------------------------------------------------------------

_DOUBLE = struct.Struct(">d")
_UNSIGNED = struct.Struct(">Q")
_SIGN = 1 << 63
_ALL = (1 << 64) - 1


def number_key(number: int | float) -> bytes:
    """8 bytes that compare as the numbers do (big-endian IEEE 754, made unsigned)."""
    if isinstance(number, int) and not isinstance(number, bool):
        try:
            number = float(number)
        except OverflowError:  # past 1.8e308: above (or below) every float
            number = math.inf if number > 0 else -math.inf
    if number == 0:
        number = 0.0  # -0.0 == 0.0
    (bits,) = _UNSIGNED.unpack(_DOUBLE.pack(number))
    bits = bits ^ _ALL if bits & _SIGN else bits | _SIGN
    return NUMBER + _UNSIGNED.pack(bits)


def string_key(text: str) -> bytes:
    return STRING + text.encode("utf-8").replace(b"\x00", _ESCAPED_NUL) + _STRING_END


def sort_key(value: Any) -> bytes:
    """The key of a JSON value (as parsed by orjson or documents.loads)."""
    if value is None:
        return NULL
    if value is False:
        return FALSE
    if value is True:
        return TRUE
    if isinstance(value, int | float):
        return number_key(value)
    if isinstance(value, str):
        return string_key(value)
    return COMPOSITE


def member(key: bytes, name: str) -> bytes:
    """An index member: a value's key, then the name of the thing that has it."""
    return key + name.encode("utf-8")


def split_member(raw: bytes) -> tuple[bytes, str]:
    """(key, name) of a member; ValueError when `raw` is not one (a forged cursor)."""
    kind = raw[:1]
    if kind in (NULL, FALSE, TRUE, COMPOSITE):
        end = 1
    elif kind == NUMBER:
        end = 9
        if len(raw) < end:
            raise ValueError("a number key has 8 bytes")
    elif kind == STRING:
        at = 1
        while True:
            at = raw.find(b"\x00", at)
            if at < 0 or at + 1 >= len(raw):
                raise ValueError("a string key ends with 0x00 0x00")
            if raw[at + 1] == 0:
                end = at + 2
                break
            if raw[at + 1] != 0xFF:
                raise ValueError("a 0x00 in a string key is followed by 0xFF or 0x00")
            at += 2
    else:
        raise ValueError("not a key")
    name = raw[end:].decode("utf-8")  # UnicodeDecodeError is a ValueError
    if not name or "/" in name:
        raise ValueError("a member ends with a thing's name")
    return raw[:end], name


# -- ranges ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LexRange:
    """Bounds of a ZRANGE BYLEX, in Redis's syntax (`-`, `+`, `[member`, `(member`), from the
    lowest member to the highest whatever the direction of the query."""

    low: bytes = b"-"
    high: bytes = b"+"


def _above(a: bytes, b: bytes) -> bytes:
    """The stricter of two lower bounds in Redis syntax."""
    if a == b"-":
        return b
    if b == b"-":
        return a
    if a[1:] != b[1:]:
        return a if a[1:] > b[1:] else b
    return a if a.startswith(b"(") else b


def _below(a: bytes, b: bytes) -> bytes:
    """The stricter of two upper bounds in Redis syntax."""
    if a == b"+":
        return b
    if b == b"+":
        return a
    if a[1:] != b[1:]:
        return a if a[1:] < b[1:] else b
    return a if a.startswith(b"(") else b


def lex_range(
    start: bytes | None, end: bytes | None, desc: bool, after: bytes | None = None
) -> LexRange:
    """The members a query covers: values from the key `start` to the key `end` inclusive (in
    the query's direction: with `desc`, `start` is the higher value), and, with a cursor, only
    those that come after the member `after` in that direction."""
    first, last = (end, start) if desc else (start, end)
    low = b"[" + first if first is not None else b"-"
    high = b"(" + last + ABOVE_NAMES if last is not None else b"+"
    if after is not None:
        if desc:
            high = _below(high, b"(" + after)
        else:
            low = _above(low, b"(" + after)
    return LexRange(low, high)


def in_range(raw: bytes, bounds: LexRange) -> bool:
    """Whether a member lies within `bounds` (as ZRANGE BYLEX would say)."""
    low, high = bounds.low, bounds.high
    if low != b"-" and (raw < low[1:] or (low[:1] == b"(" and raw == low[1:])):
        return False
    return not (high != b"+" and (raw > high[1:] or (high[:1] == b"(" and raw == high[1:])))


# -- cursors -----------------------------------------------------------------------------------


def encode_cursor(raw: bytes) -> str:
    """The last member of a page, base64url without padding: opaque to clients."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> bytes:
    """The member a cursor names; ValueError when it is not base64url."""
    if not text or len(text) > 4096 or not text.isascii():
        raise ValueError("not a cursor")
    if not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not a cursor")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not a cursor") from None

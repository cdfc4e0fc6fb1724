"""Writes: where a Firebase write's data lives: which locations become things of their own
(docs/firebase.md, "Where things begin").

A value written as the thing at a location is laid out as one thing, except that:

- a child keyed by a push id (what POST makes, and the SDKs' `push()` then `set()`) becomes a
  thing of its own at its location, so a chat of n messages is n things and a push never
  rewrites the messages before it;
- a thing whose JSON would pass half the thing size limit (THINGSTASH_MAX_BODY) moves its
  largest members out into things of their own until it is under that, so a later small write
  still fits and one key's data never grows a neighbour's thing;
- every object on the way from a thing down to a member that became a thing is a thing of its
  own too (with its other members), since a folder's entries show on top of the members of the
  location above them (reading.read_value), never merged into them.

Only a scalar or an array past the limit itself cannot be split: TooLargeToStore. Pure: no
store here.
"""

from __future__ import annotations

import re
from typing import Any

from thingstash.core import documents
from thingstash.core.pushids import ALPHABET
from thingstash.firebase.errors import TooLargeToStore
from thingstash.firebase.mapping import Location, wrap

PUSH_ID_LENGTH = 20
_PUSH_CHARACTERS = frozenset(ALPHABET)
# A push id as a key of serialised JSON: a quick scan of a body spares walking most values.
_PUSH_KEY = re.compile(rb'"-[-0-9A-Za-z_]{19}":')

Laid = list[tuple[Location, Any]]


def is_push_id(key: str) -> bool:
    """Whether `key` is a Firebase push id: 20 characters of its alphabet, the first `-` (the
    top of a millisecond time that stays 0 until the year 2109)."""
    return (
        len(key) == PUSH_ID_LENGTH
        and key[0] == "-"
        and all(character in _PUSH_CHARACTERS for character in key)
    )


def threshold(limit: int) -> int:
    """The size past which a thing moves members out: half the thing size limit."""
    return max(1, limit // 2)


def _size(value: Any) -> int:
    return len(documents.dumps(value))


def stays_whole(body: bytes, limit: int) -> bool:
    """Whether a thing's serialised JSON needs no layout: small enough, no push id key."""
    return len(body) <= threshold(limit) and _PUSH_KEY.search(body) is None


def lay_out(location: Location, value: Any, limit: int) -> tuple[Any, Laid]:
    """`value` written as the thing at `location`: (what the thing there holds, None when
    nothing stays there; the things of their own below it, each (location, value)).
    TooLargeToStore for a scalar or array past `limit`, which cannot be split."""
    return _lay_out(location, value, threshold(limit), limit)


def _lay_out(location: Location, value: Any, most: int, limit: int) -> tuple[Any, Laid]:
    if not isinstance(value, dict):
        size = _size(wrap(value))
        if size > limit:
            raise TooLargeToStore(
                f"The value at /{'/'.join(location)} is {size} bytes of JSON, past the thing "
                f"size limit of {limit} bytes (THINGSTASH_MAX_BODY); only objects are split",
            )
        return value, []
    kept: dict[str, Any] = {}
    below: Laid = []
    for key, child in value.items():
        here = (*location, key)
        own, deeper = _lay_out(here, child, most, limit)
        if is_push_id(key) or deeper:
            if own is not None:
                below.append((here, own))
            below.extend(deeper)
        else:
            kept[key] = own
    size = _size(kept)
    if size > most:
        # Largest first, until what stays is under the threshold.
        sizes = sorted(
            ((_size(child) + len(key) + 4, key) for key, child in kept.items()), reverse=True
        )
        for child_size, key in sizes:
            if size <= most:
                break
            below.append(((*location, key), kept.pop(key)))
            size -= child_size
    return (kept or None), below


def paths(laid: Laid) -> set[str]:
    return {"/".join(location) for location, _ in laid}

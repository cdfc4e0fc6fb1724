"""The mapping between Firebase's single JSON tree and thingstash's things, as pure functions.

A Firebase location is a tuple of keys ("" is the root, `()`). A thing stores an object as it
is, and any other value (an array, a string, a number, a boolean) wrapped as `{".value": x}`.
Places inside a thing are its members, into objects by name and into arrays by decimal index.
The value of a location overlays what a thing holds there with the things of the folder below
it (`overlay`); reading.py does the reading, tree.py the writing, this module the arithmetic.

Firebase's rules for data apply to what a client sends: keys may not hold `. $ # [ ] /` or
ASCII control characters, `null` members and empty objects are no data, `.priority` is dropped
and `{".value": x}` is x. `.sv` server values pass through untouched (documents.py resolves
them against what is stored).

Pure: stdlib, orjson and the core only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

import orjson

from thingstash.core import documents
from thingstash.core.config import MAX_PATH_BYTES
from thingstash.firebase.errors import BadRequest

Location = tuple[str, ...]
ROOT: Location = ()
WRAPPED = ".value"
PRIORITY = ".priority"
# Firebase refuses these in keys: . $ # [ ] / and ASCII control characters (0-31, 127).
_BAD_KEY = re.compile(r"[.$#\[\]/\x00-\x1f\x7f]")
MAX_KEY_BYTES = 768  # Firebase's own limit on a key
MAX_DEPTH = 32  # Firebase's limit: a path into the tree is at most 32 keys deep
_MISSING: Any = object()


def invalid_data(detail: str) -> BadRequest:
    return BadRequest(f"Invalid data; {detail}")


def key_problem(key: str) -> str | None:
    """Why `key` cannot be a Firebase key, or None when it can."""
    if key == "":
        return "a key may not be empty"
    if _BAD_KEY.search(key):
        return f"key {_shown(key)} contains one of . $ # [ ] / or an ASCII control character"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"a key may be at most {MAX_KEY_BYTES} bytes long"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "a key must be valid UTF-8"
    return None


def _shown(text: str) -> str:
    return json.dumps(text if len(text) <= 40 else text[:40] + "...")


def parse_location(text: str) -> Location:
    """A URL path (no `.json`, no leading slash needed) as a location. Empty segments are
    ignored, as Firebase does (`a//b` is `a/b`); a bad key is a BadRequest."""
    keys = tuple(segment for segment in text.split("/") if segment != "")
    if len(keys) > MAX_DEPTH:
        raise BadRequest(f"Invalid path: a path may be at most {MAX_DEPTH} keys deep")
    if len("/".join(keys).encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES - 16:
        raise BadRequest(f"Invalid path: a path may be at most {MAX_PATH_BYTES - 16} bytes")
    for key in keys:
        problem = key_problem(key)
        if problem is not None:
            raise BadRequest(f"Invalid path: {problem}")
    return keys


def thing_path(location: Location) -> str:
    """The path of the thing at `location` (none at the root)."""
    return "/".join(location)


def folder_path(location: Location) -> str:
    """The folder below `location`: "a/b/" (the root folder is "")."""
    return "".join(key + "/" for key in location)


def ancestors(location: Location) -> list[Location]:
    """The locations that may hold a thing containing `location`, deepest first, itself
    included (the root holds no thing)."""
    return [location[:depth] for depth in range(len(location), 0, -1)]


# -- values as clients send them -----------------------------------------------------------------


def normalize(value: Any) -> Any:
    """A value as Firebase stores it: keys checked, `null` members and empty objects gone
    (None when nothing is left: a write of it deletes), `.priority` dropped, `{".value": x}`
    read as x. `.sv` objects are kept for documents.resolve_server_values."""
    depth = documents.nesting_depth(value)
    if depth > MAX_DEPTH:
        raise invalid_data(f"the data nests {depth} levels; at most {MAX_DEPTH} allowed")
    return _normalize(value)


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        if documents.SERVER_VALUE in value:
            if len(value) != 1:
                raise invalid_data('an object with ".sv" may hold nothing else')
            return value
        if WRAPPED in value:
            extra = set(value) - {WRAPPED, PRIORITY}
            if extra:
                raise invalid_data(
                    f'an object with ".value" may hold only ".priority" beside it, not '
                    f"{_shown(sorted(extra)[0])}"
                )
            return _normalize(value[WRAPPED])
        result = {}
        for key, child in value.items():
            if key == PRIORITY:
                continue
            problem = key_problem(key)
            if problem is not None:
                raise invalid_data(problem)
            kept = _normalize(child)
            if kept is not None:
                result[key] = kept
        return result or None
    if isinstance(value, list):
        items = [_normalize(item) for item in value]
        while items and items[-1] is None:
            items.pop()
        return items or None
    return value


def wrap(value: Any) -> Any:
    """What a thing stores for `value` (not None): an object as it is, else `{".value": x}`."""
    return value if isinstance(value, dict) else {WRAPPED: value}


def unwrap(document: Any) -> Any:
    """The Firebase value of a thing's JSON: `{".value": x}` is x, an empty object is null."""
    if isinstance(document, dict):
        if len(document) == 1 and WRAPPED in document:
            return document[WRAPPED]
        if not document:
            return None
    return document


def thing_value(body: bytes) -> Any:
    return unwrap(documents.loads(body))


# -- members -------------------------------------------------------------------------------------


def _index(key: str) -> int | None:
    """`key` as an array index (canonical decimal), None when it is not one."""
    if key.isascii() and key.isdigit() and (key == "0" or not key.startswith("0")):
        return int(key) if len(key) < 10 else None
    return None


def get_member(value: Any, relative: Iterable[str]) -> Any:
    """The value at `relative` inside `value`, None when nothing is there."""
    for key in relative:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list):
            index = _index(key)
            value = value[index] if index is not None and index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def set_member(value: Any, relative: Location, new: Any) -> Any:
    """`value` with `new` at `relative` (intermediate objects made, a scalar in the way
    replaced); `new` None deletes the member (nothing there: `value` as it is, as Firebase
    leaves a scalar alone when a child of it is deleted). The result may be None."""
    if not relative:
        return new
    if new is None and get_member(value, relative) is None:
        return value
    key, rest = relative[0], relative[1:]
    if isinstance(value, list):
        index = _index(key)
        if index is not None and index <= len(value):
            items = list(value)
            child = set_member(items[index] if index < len(items) else None, rest, new)
            if index < len(items):
                items[index] = child
            elif child is not None:
                items.append(child)
            while items and items[-1] is None:
                items.pop()
            return items or None
        # Past the end, or not an index: the array becomes the object Firebase sees in it.
        value = {str(i): item for i, item in enumerate(value) if item is not None}
    result = dict(value) if isinstance(value, dict) else {}
    child = set_member(result.get(key), rest, new)
    if child is None:
        result.pop(key, None)
    else:
        result[key] = child
    return result or None


def overlay(own: Any, children: dict[str, Any]) -> Any:
    """The value of a location: what its thing (or the thing above it) holds there, with the
    values of the folder's entries below it on top, an entry winning over a member of its name."""
    if not children:
        return own
    if isinstance(own, dict):
        result = dict(own)
    elif isinstance(own, list):
        result = {str(i): item for i, item in enumerate(own) if item is not None}
    else:
        result = {}
    for name, child in children.items():
        if child is not None:
            result[name] = child
    return result or None


# -- answers -------------------------------------------------------------------------------------


def shallow(value: Any) -> Any:
    """`shallow=true`: an object's (or array's) members as `true`, a scalar as it is."""
    if isinstance(value, dict):
        return dict.fromkeys(value, True)
    if isinstance(value, list):
        return {str(i): True for i, item in enumerate(value) if item is not None}
    return value


def canonical(value: Any) -> bytes:
    """JSON of `value` with object keys sorted: equal values, equal bytes (big integers too)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer past 64 bits
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )


def etag(value: Any) -> str:
    """The ETag of a location's value (null has one too, so a transaction can create)."""
    digest = hashlib.sha1(canonical(value), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")

"""The parts of a Firebase REST request and the shape of its answer, as every verb reads and
writes them: the address (`<path>.json`, the rules document), the query parameters Firebase
takes once (`print`, `format`, `timeout`, `shallow`), the JSON body, and the answer's JSON with
its `print` mode and ETag. The verbs are reads.py, writes.py and rules.py."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import orjson
from flask import Response, request

from thingstash.core import documents
from thingstash.core.documents import BadDocument
from thingstash.firebase import mapping, reading
from thingstash.firebase.errors import BadRequest, NotFound
from thingstash.firebase.mapping import Location
from thingstash.web.context import settings

JSON_TYPE = "application/json"
# What `curl -d` sends, as Firebase's REST documentation writes its examples.
FORM_TYPE = "application/x-www-form-urlencoded"
RULES = ".settings/rules"
METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")
WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})
_TIMEOUT = re.compile(r"([0-9]{1,9})(ms|s|min)")
_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0}
MAX_TIMEOUT_SECONDS = 15 * 60  # Firebase's own bound on `timeout`


# -- the request -----------------------------------------------------------------------------------


def arg(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} may be given once")
    return values[0] if values else None


def _location(raw: str) -> tuple[str, Location]:
    """(the path without `.json`, its location); NotFound for a path that does not end in .json."""
    if not raw.endswith(".json"):
        raise NotFound("Not found: Firebase REST paths end in .json (as in /users/ada.json)")
    text = raw[: -len(".json")]
    return text, mapping.parse_location(text)


def target(raw: str) -> tuple[str, Location]:
    """(path, location) of a request path: the rules document, or a location's `.json`."""
    if raw == RULES + ".json":
        return RULES, mapping.ROOT
    return _location(raw)


def budget() -> reading.Budget:
    """What this read may cost: the settings' bytes and folders, and `?timeout=`."""
    raw = arg("timeout")
    deadline = None
    if raw is not None:
        match = _TIMEOUT.fullmatch(raw)
        if match is None:
            raise BadRequest("timeout must be a number with ms, s or min, as in 3s or 150ms")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds > MAX_TIMEOUT_SECONDS:
            raise BadRequest("timeout may be at most 15min")
        deadline = time.monotonic() + seconds
    config = settings()
    return reading.Budget(config.firebase_max_read, deadline, config.firebase_max_folders)


def _check_type() -> None:
    """A body is JSON: sent as application/json (or another `+json` type), with no Content-Type,
    or as curl's `-d` sends it (form-urlencoded); any other type (text/plain, multipart/form-data,
    ...) is refused, as Firebase's own clients send JSON."""
    given = request.mimetype  # lower case, without parameters; "" when none
    if not given or given == JSON_TYPE or given == FORM_TYPE or given.endswith("+json"):
        return
    raise BadRequest(
        f"Invalid data; send the body as JSON with Content-Type: {JSON_TYPE} (not {given[:100]})"
    )


def body() -> Any:
    """The request's JSON body, as it was sent (not yet normalized)."""
    _check_type()
    raw = request.get_data(cache=True)
    try:
        return documents.loads(raw)
    except BadDocument as error:
        raise BadRequest(
            f"Invalid data; couldn't parse JSON object, array, or value. {error.detail}"
        ) from None


def raw_text() -> str:
    """The request's body as text (UTF-8), for a body that is not plain JSON (the rules)."""
    _check_type()
    try:
        return request.get_data(cache=True).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Invalid data; the body is not UTF-8") from None


def flag(name: str) -> bool:
    raw = arg(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise BadRequest(f"{name} must be true or false")


def print_mode() -> str | None:
    mode = arg("print")
    if mode not in (None, "pretty", "silent"):
        raise BadRequest("print must be pretty or silent")
    return mode


def check_format() -> None:
    mode = arg("format")
    if mode not in (None, "export", "strict"):
        raise BadRequest("format must be export")


def if_match() -> str | None:
    return request.headers.get("if-match")


def wants_etag() -> bool:
    return request.headers.get("X-Firebase-ETag", "").lower() == "true"


# -- answers -------------------------------------------------------------------------------------


def _json(value: Any, pretty: bool) -> bytes:
    if not pretty:
        return documents.dumps(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:  # an integer past 64 bits
        return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")


def answer(value: Any, etag: bool = False, status: int = 200) -> Response:
    mode = print_mode()
    if mode == "silent":
        response = Response(status=204)
    else:
        response = Response(_json(value, mode == "pretty"), status=status, mimetype=JSON_TYPE)
    if etag:
        response.headers["ETag"] = mapping.etag(value)
    response.headers["Cache-Control"] = "no-cache"
    return response

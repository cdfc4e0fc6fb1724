"""`GET|PUT|POST|PATCH|DELETE /<path>.json` as Firebase's REST API answers them, and the rules
document at `/.settings/rules.json`. The tree itself is firebase/tree.py's."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, g, request

from thingstash.core import documents
from thingstash.core.documents import BadDocument
from thingstash.core.pushids import push_id
from thingstash.firebase import mapping, querying, reading, rules, tree
from thingstash.firebase import query as fbquery
from thingstash.firebase.errors import (
    BadRequest,
    NotAllowed,
    NotFound,
    PermissionDenied,
    Refusal,
)
from thingstash.firebase.mapping import Location
from thingstash.web import auth
from thingstash.web.context import settings, store
from thingstash.web.firebase import stream

bp = Blueprint("firebase", __name__)

JSON_TYPE = "application/json"
# What `curl -d` sends, as Firebase's REST documentation writes its examples.
FORM_TYPE = "application/x-www-form-urlencoded"
RULES = ".settings/rules"
METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")
_TIMEOUT = re.compile(r"([0-9]{1,9})(ms|s|min)")
_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0}
MAX_TIMEOUT_SECONDS = 15 * 60  # Firebase's own bound on `timeout`
_WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})


# -- the request -----------------------------------------------------------------------------------


def _arg(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} may be given once")
    return values[0] if values else None


def _location(raw: str) -> tuple[str, Location]:
    """(the path without `.json`, its location); 404 for a path that does not end in .json."""
    if not raw.endswith(".json"):
        raise NotFound("Not found: Firebase REST paths end in .json (as in /users/ada.json)")
    text = raw[: -len(".json")]
    return text, mapping.parse_location(text)


def _target(raw: str) -> tuple[str, Location]:
    """(path, location) of a request path: the rules document, or a location's `.json`."""
    if raw == RULES + ".json":
        return RULES, mapping.ROOT
    return _location(raw)


def _key() -> str | None:
    """The key a request brings: `?auth=`, else `Authorization: Bearer`."""
    given = _arg("auth")
    if given:
        return given
    header: str = request.environ.get("HTTP_AUTHORIZATION", "")
    kind, _, token = header.partition(" ")
    if kind.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def identify() -> None:
    """Who asks and whether they may (auth.init_app runs it before the rate limiter): the
    request's Access in `g`, or the Problem auth's enforcement raises after the limiter. A
    path that is no location is left for the view to refuse."""
    if request.method == "OPTIONS":
        return
    try:
        text, location = _target(request.path[1:])
    except Refusal:
        return
    if text == RULES:
        scope, path = "admin", None
    else:
        scope = "write" if request.method in _WRITE_METHODS else "read"
        path = mapping.thing_path(location)
    g.thingstash_access = authorize(scope, path)


def authorize(scope: str, path: str | None) -> auth.Access:
    """Who may: an open store lets any token (or none) do everything; once keys exist, a key
    as `auth=` or Bearer, with its scope and prefix (a prefixed key reaches locations at or
    below its prefix). Refused: 401 "Permission denied"."""
    if auth.store_is_open():
        access = auth.OPEN
    else:
        key = _key()
        if key is None:
            access = auth.check_keyless(scope, path)
        else:
            access = auth.check_key(key, scope, path, folders_above=False)
    # Kept for the request, as the native face's check does: a stream asks it again later
    # (auth.still_allowed), and ends when the key is revoked.
    g.thingstash_access = access
    return access


def _budget() -> reading.Budget:
    raw = _arg("timeout")
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
        f"Invalid data; send the body as JSON with Content-Type: {JSON_TYPE} (not {given[:100]})",
    )


def _body() -> Any:
    _check_type()
    raw = request.get_data(cache=True)
    try:
        return documents.loads(raw)
    except BadDocument as error:
        raise BadRequest(
            f"Invalid data; couldn't parse JSON object, array, or value. {error.detail}"
        ) from None


def _lifetime() -> tree.Lifetime:
    """The lifetime of the things this write writes: `?ttl=` or the default. A thing lying
    outside the key's prefix (a plain string prefix of paths, as auth checks it) keeps its own,
    to the second: a key limited to `users/ada` may change its place inside the thing `users`,
    but not when `users` ends; and a write that asked for a lifetime itself (`?ttl=`) is
    refused there (PermissionDenied)."""
    config = settings()
    given = _arg("ttl")
    seconds = documents.resolve_ttl(None, given, config.default_ttl, config.max_ttl)
    prefix = auth.current().prefix

    def renews(path: str) -> bool:
        if path.startswith(prefix):
            return True
        if given is not None:
            raise PermissionDenied(
                f"Permission denied: this key may not set the lifetime of {path!r}, which lies "
                f"outside its prefix {prefix!r}"
            )
        return False

    return tree.Lifetime(seconds, renews)


def _flag(name: str) -> bool:
    raw = _arg(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise BadRequest(f"{name} must be true or false")


def _print() -> str | None:
    mode = _arg("print")
    if mode not in (None, "pretty", "silent"):
        raise BadRequest("print must be pretty or silent")
    return mode


def _format() -> None:
    mode = _arg("format")
    if mode not in (None, "export", "strict"):
        raise BadRequest("format must be export")


# -- answers -------------------------------------------------------------------------------------


def _json(value: Any, pretty: bool) -> bytes:
    if not pretty:
        return documents.dumps(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:  # an integer past 64 bits
        return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")


def answer(value: Any, etag: bool = False, status: int = 200) -> Response:
    mode = _print()
    if mode == "silent":
        response = Response(status=204)
    else:
        response = Response(_json(value, mode == "pretty"), status=status, mimetype=JSON_TYPE)
    if etag:
        response.headers["ETag"] = mapping.etag(value)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _wants_etag() -> bool:
    return request.headers.get("X-Firebase-ETag", "").lower() == "true"


# -- views ---------------------------------------------------------------------------------------


@bp.route("/<anypath:raw>", methods=[*METHODS, "OPTIONS"])
@bp.route("/", defaults={"raw": ""}, methods=[*METHODS, "OPTIONS"])
def handle(raw: str) -> Response:
    method = request.method
    if method == "OPTIONS":
        response = Response(status=204)
        response.headers["Allow"] = ", ".join(METHODS)
        return response
    text, location = _target(raw)
    _print()
    _format()
    if text == RULES:
        return _rules(method)
    if method in ("GET", "HEAD"):  # Flask answers HEAD with the GET's headers, no body
        return _get(location)
    if request.headers.get("if-match") is not None and method not in ("PUT", "DELETE"):
        raise BadRequest("if-match is supported with PUT and DELETE only")
    if method == "PUT":
        return _put(location)
    if method == "DELETE":
        written = tree.set_value(
            store(), location, None, _lifetime(), _if_match(), settings().max_body
        )
        return answer(written, etag=_if_match() is not None)
    if method == "POST":
        name = push_id()
        value = mapping.normalize(_body())
        tree.push_value(store(), location, name, value, _lifetime(), settings().max_body)
        return answer({"name": name})
    if method != "PATCH":
        raise NotAllowed(f"{method} is not one of {', '.join(METHODS)}")
    written = tree.update_values(store(), location, _body(), _lifetime(), settings().max_body)
    return answer(written)


def _if_match() -> str | None:
    return request.headers.get("if-match")


def _get(location: Location) -> Response:
    if "text/event-stream" in request.environ.get("HTTP_ACCEPT", ""):
        return stream.respond(location)
    query = fbquery.parse_query(request.args.to_dict(flat=False))
    shallow = _flag("shallow")
    budget = _budget()
    if shallow:
        if query is not None:
            raise BadRequest("shallow cannot be combined with query parameters")
        return answer(reading.shallow_value(store(), location, budget))
    if query is not None:
        return answer(querying.query_value(store(), location, query, budget))
    value = reading.read_value(store(), location, budget)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and if_none_match == mapping.etag(value):
        response = Response(status=304)
        response.headers["ETag"] = if_none_match
        return response
    return answer(value, etag=_wants_etag() or if_none_match is not None)


def _put(location: Location) -> Response:
    value = mapping.normalize(_body())
    expected = _if_match()
    written = tree.set_value(store(), location, value, _lifetime(), expected, settings().max_body)
    return answer(written, etag=expected is not None or _wants_etag())


def _rules(method: str) -> Response:
    if method == "GET":
        return answer(rules.read_rules(store()))
    if method != "PUT":
        raise NotAllowed("The rules document answers GET and PUT")
    document = _body()
    rules.write_rules(store(), document, settings().max_ttl)
    return answer({"status": "ok"})


def init_app(app: Flask) -> None:
    from thingstash.web.things import AnyPathConverter

    app.url_map.converters["anypath"] = AnyPathConverter
    app.url_map.merge_slashes = False
    app.register_blueprint(bp)

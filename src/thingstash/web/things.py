"""The HTTP face of things: routes, request checks, preconditions and responses.

Views turn requests into calls on the store and its errors into problems; they never see a
Redis key. A thing's JSON travels as bytes: the stored object gets `ttl` and `last_updated`
spliced onto its end, so a read never parses or re-serialises the user's JSON. What a GET of
a path answers (a thing, a listing, a query, a stream) is one table: `read`.

Not every request for a thing comes here. Its twin, fastpath.py, answers the plain ones in
front of Flask, with exactly what these views would: a keyless GET, HEAD, PUT or PATCH of a
thing, or GET or HEAD of a listing page, on an open store (or, for reads, one anyone may read),
with no precondition, no query but a listing's, no Origin, no stream, no server values... (the
list is its docstring). A change to what `read`, `replace`, `patch` or folders.read_folder
answer is a change to fastpath.py too (tests/web/test_fastpath.py compares the two).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.http import http_date

from thingstash.core import documents
from thingstash.core.config import MAX_DEPTH
from thingstash.core.documents import BadDocument
from thingstash.core.model import (
    NO_CONDITIONS,
    Conditions,
    PreconditionFailed,
    Thing,
    ThingMissing,
    WriteResult,
    version_time_ms,
)
from thingstash.core.paths import Path, is_reserved, parse_path
from thingstash.core.pushids import push_id
from thingstash.core.store import Store
from thingstash.web import folders, preconditions, queries, queryargs, rulesguard, watch
from thingstash.web.context import settings, store
from thingstash.web.errors import Problem, thing_missing
from thingstash.web.routing import AnyPathConverter

bp = Blueprint("things", __name__)

JSON_TYPE = "application/json"
MERGE_PATCH_TYPE = "application/merge-patch+json"
PATCH_TYPES = (MERGE_PATCH_TYPE, JSON_TYPE)
THING_METHODS = "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
FOLDER_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"


# -- request checks ---------------------------------------------------------------------------


def _path_as_sent(routed: str) -> str:
    """The path the client sent, without its leading slash. Werkzeug's router strips every
    leading slash and decodes invalid UTF-8 to U+FFFD: `//a/x` would be another name for `a/x`,
    and `/a%FF` the same thing as `/a%EF%BF%BD`. PATH_INFO (its bytes, as WSGI carries them in
    latin-1) is what was sent."""
    wire = request.environ.get("PATH_INFO", "")
    if wire.isascii():  # the common case: nothing to decode, nothing replaced
        return wire[1:] if wire.startswith("/") else routed
    try:
        text = wire.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise Problem(
            400, "bad path", "the path is not valid UTF-8 (percent-encode UTF-8 bytes only)"
        ) from None
    return text[1:] if text.startswith("/") else routed


def _path(raw: str) -> Path:
    path = parse_path(_path_as_sent(raw))
    if is_reserved(path):
        allowed = _service_methods("/" + path.text)
        if allowed:
            raise Problem(
                405,
                "method not allowed",
                f"/{path.text} answers {', '.join(sorted(allowed))}",
                {"Allow": ", ".join(sorted(allowed))},
            )
        raise Problem(
            404, "not found", "top-level names starting with _ are reserved for the service"
        )
    return path


def _service_methods(url: str) -> set[str]:
    """The methods of a service endpoint at exactly `url` (empty when there is none)."""
    methods: set[str] = set()
    for rule in current_app.url_map.iter_rules():
        if rule.rule == url and rule.methods:
            methods |= rule.methods
    return methods


def _thing_path(raw: str, method: str) -> Path:
    path = _path(raw)
    if path.is_folder:
        raise Problem(
            405,
            "method not allowed",
            f"{method} needs a thing's path; {path.text or '/'} is a folder (it ends in /)",
            {"Allow": FOLDER_METHODS},
        )
    return path


def _body(allowed_types: tuple[str, ...]) -> dict[str, Any]:
    # The common exact header needs no parsing (parameters, case, spaces: the slow way).
    content_type = request.environ.get("CONTENT_TYPE")
    if content_type not in allowed_types:
        content_type = request.mimetype
    if content_type and content_type not in allowed_types:
        raise Problem(
            415,
            "unsupported media type",
            f"send the body as {' or '.join(allowed_types)}, not {content_type}",
        )
    return documents.loads_object(request.get_data(cache=False), MAX_DEPTH)


def _conditions() -> Conditions:
    # Straight from the WSGI environ: every request asks, and Headers.get costs ten calls.
    environ = request.environ
    if_match = environ.get("HTTP_IF_MATCH")
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_match is None and if_none_match is None:
        return NO_CONDITIONS
    return preconditions.from_headers(if_match, if_none_match)


def _ttl(body_ttl: Any) -> int:
    config = settings()
    query_ttl = queryargs.single("ttl")
    return documents.resolve_ttl(body_ttl, query_ttl, config.default_ttl, config.max_ttl)


# -- responses --------------------------------------------------------------------------------


def _thing_response(body: bytes, ttl: int, version: str, status: int = 200) -> Response:
    last_updated = version_time_ms(version) // 1000
    return Response(
        documents.thing_json(body, ttl, last_updated),
        status=status,
        headers=_version_header_list(version, last_updated),
        mimetype=JSON_TYPE,
    )


# Formatting a date costs more than the rest of the headers; many responses share the second.
_http_date = functools.lru_cache(maxsize=1024)(http_date)
cached_http_date = _http_date  # the fast path's dates too (fastpath.py)


def _version_header_list(version: str, last_updated: int) -> list[tuple[str, str]]:
    return [
        ("ETag", preconditions.etag(version)),
        ("Last-Modified", _http_date(last_updated)),
        # Things change at any moment: let caches keep them only if they revalidate the ETag.
        ("Cache-Control", "no-cache"),
    ]


def _version_headers(response: Response, version: str, last_updated: int) -> None:
    response.headers.extend(_version_header_list(version, last_updated))


def _written(result: WriteResult, body: bytes) -> Response:
    return _thing_response(
        body, result.ttl_ms // 1000, result.version, 201 if result.created else 200
    )


# -- views ------------------------------------------------------------------------------------


def _not_modified_since(thing: Thing) -> bool:
    """If-Modified-Since holds: the thing is no newer than the date the client has. Ignored
    with If-None-Match (which decides alone) and when it is not an HTTP date (RFC 9110 13.1.3)."""
    environ = request.environ
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since is None or "HTTP_IF_NONE_MATCH" in environ:
        return False
    date = preconditions.modified_since(since)
    return date is not None and thing.last_updated <= date


def wants_events() -> bool:
    # Straight from the WSGI environ: every GET asks, and Headers.get costs ten calls.
    return "text/event-stream" in request.environ.get("HTTP_ACCEPT", "")


@bp.get("/<anypath:raw>")
def read(raw: str) -> Response:
    """What a GET (or HEAD) of a path answers, the whole table:

    path    `Accept: text/event-stream`  query string (queries.asked)  answer
    thing   no                                                         the thing (_read_thing)
    thing   yes                                                        its events (watch.stream)
    folder  no                           none (or limit, cursor...)    a listing page
                                                                       (folders.read_folder)
    folder  no                           a query (order_by...)         its answer
                                                                       (queries.read_query)
    folder  yes                          none                          its events (watch.stream)
    folder  yes                          a query                       its answers, live
                                                                       (queries.watch_query)

    Plain GETs of a thing or a listing page never reach this view: fastpath.FastPath answers
    them in front of Flask (its _read and _list), the same way."""
    path = _path(raw)
    events = wants_events()
    judged = rulesguard.is_judged()
    if path.is_folder:
        query = queries.asked()
        if query is not None:
            if judged:  # rules are not filters: the query is read at the folder
                rulesguard.check_read(path.text, rulesguard.query_info(query))
            return queries.watch_query(path, query) if events else queries.read_query(path, query)
        if judged:
            rulesguard.check_read(path.text)
        return watch.stream(path) if events else folders.read_folder(path)
    if judged:
        rulesguard.check_read(path.text)
    return watch.stream(path) if events else _read_thing(path)


def _read_thing(path: Path) -> Response:
    conditions = _conditions()
    thing = store().get(path.text)
    version = thing.version if thing else None
    if not conditions.if_match_holds(version):
        raise PreconditionFailed(version)
    if thing is None:
        raise thing_missing(path.text)
    if not conditions.if_none_match_holds(thing.version) or _not_modified_since(thing):
        # For reads, a matching If-None-Match means "you already have it" (RFC 9110 13.1.2).
        response = Response(status=304)
        _version_headers(response, thing.version, thing.last_updated)
        return response
    return _thing_response(thing.body, thing.ttl, thing.version)


@bp.put("/<anypath:raw>")
def replace(raw: str) -> Response:
    """PUT of a thing. Plain ones are answered by fastpath.FastPath._replace, the same way."""
    path = _thing_path(raw, "PUT")
    doc = _body((JSON_TYPE,))
    ttl = _ttl(documents.pop_reserved(doc))
    return _write_whole(path, doc, ttl, _conditions(), "put")


def _write_whole(
    path: Path, doc: dict[str, Any], ttl: int, conditions: Conditions, event: str
) -> Response:
    if rulesguard.is_judged():
        return rulesguard.write(lambda reading: _judged_whole(reading, path, doc, ttl, conditions))
    body = documents.dumps(doc)
    # A server value's key shows in the serialised JSON as ".sv" (no letter is escaped), so
    # one substring search spares most bodies the walk through every value.
    if documents.SERVER_VALUE_KEY in body and documents.has_server_values(doc):
        if documents.needs_current(doc):
            # Increments add to what is stored: resolve them against the version written over.
            def change(current: Thing | None) -> tuple[bytes, int]:
                stored = documents.loads(current.body) if current else None
                resolved = documents.resolve_thing(doc, stored, documents.now_ms())
                return documents.dumps(resolved), ttl

            result, body = store().update(path.text, change, conditions, event)
            return _written(result, body)
        body = documents.dumps(documents.resolve_thing(doc, None, documents.now_ms()))
    return _written(store().put(path.text, body, ttl, conditions, event), body)


def _judged_whole(
    reading: Store, path: Path, doc: dict[str, Any], ttl: int, conditions: Conditions
) -> tuple[rulesguard.Writes, Callable[[Store], Response]]:
    """A whole thing's write as the rules judge it (rulesguard.write): its value, server
    values resolved against what is stored (read through `reading`), written as a PUT."""
    resolved = doc
    if documents.SERVER_VALUE_KEY in documents.dumps(doc) and documents.has_server_values(doc):
        current = reading.get(path.text) if documents.needs_current(doc) else None
        stored = documents.loads(current.body) if current else None
        resolved = documents.resolve_thing(doc, stored, documents.now_ms())
    body = documents.dumps(resolved)
    value = rulesguard.thing_value(resolved)

    def make(writing: Store) -> Response:
        return _written(writing.put(path.text, body, ttl, conditions, "put"), body)

    return [(rulesguard.location(path.text), value)], make


@bp.patch("/<anypath:raw>")
def patch(raw: str) -> Response:
    """PATCH of a thing. Plain ones are answered by fastpath.FastPath._patch, the same way."""
    path = _thing_path(raw, "PATCH")
    merge = _body(PATCH_TYPES)
    ttl = _ttl(documents.pop_reserved(merge))
    if rulesguard.is_judged():  # judged as the writes of its leaves
        conditions = _conditions()
        return rulesguard.write(
            lambda reading: _judged_patch(reading, path.text, merge, ttl, conditions)
        )
    result, body = store().update(
        path.text, merge_patch_change(path.text, merge, ttl), _conditions(), "patch"
    )
    return _written(result, body)


def _judged_patch(
    reading: Store, path: str, merge: dict[str, Any], ttl: int, conditions: Conditions
) -> tuple[rulesguard.Writes, Callable[[Store], Response]]:
    """A PATCH as the rules judge it (rulesguard.write): the writes of its leaves (server
    values resolved against the thing, read through `reading`), the merged thing written as a
    PUT that lands only if the thing is still the one merged into."""
    current = reading.get(path)
    now = documents.now_ms()
    body, _ = merge_patch_change(path, merge, ttl, now)(current)
    assert current is not None  # else ThingMissing, above
    resolved = documents.resolve_thing(merge, documents.loads(current.body), now)

    def make(writing: Store) -> Response:
        return _written(writing.put(path, body, ttl, conditions, "patch"), body)

    return rulesguard.patch_writes(path, resolved), make


def merge_patch_change(
    path: str, merge: dict[str, Any], ttl: int, now_ms: int | None = None
) -> Callable[[Thing | None], tuple[bytes, int]]:
    """What a PATCH does to the stored thing, for Store.update (the fast path's PATCH too);
    server values get `now_ms` (the time of the change, unless given)."""

    def change(current: Thing | None) -> tuple[bytes, int]:
        if current is None:
            raise ThingMissing(path)
        stored = documents.loads(current.body)
        now = documents.now_ms() if now_ms is None else now_ms
        resolved = documents.resolve_thing(merge, stored, now)
        merged = documents.merge_patch(stored, resolved)
        depth = documents.nesting_depth(merged)
        if depth > MAX_DEPTH:
            raise BadDocument(
                "too deeply nested",
                f"the patched thing would nest {depth} levels; at most {MAX_DEPTH} allowed",
            )
        return documents.dumps(merged), ttl

    return change


@bp.delete("/<anypath:raw>")
def delete(raw: str) -> Response:
    path = _path(raw)
    if path.is_folder:
        return folders.delete_folder(path)
    conditions = _conditions()

    def plan(reading: Store) -> tuple[rulesguard.Writes, Callable[[Store], Response]]:
        def make(writing: Store) -> Response:
            writing.delete(path.text, conditions)
            return Response(status=204)

        return [(rulesguard.location(path.text), None)], make

    return rulesguard.write(plan)


@bp.post("/<anypath:raw>")
def push(raw: str) -> Response:
    folder = _path(raw)
    if not folder.is_folder:
        raise Problem(
            405,
            "method not allowed",
            f"POST creates a thing inside a folder: send it to {folder.text}/",
            {"Allow": THING_METHODS},
        )
    doc = _body((JSON_TYPE,))
    ttl = _ttl(documents.pop_reserved(doc))
    path = Path(folder.text + push_id())  # the rules judge a write at the new child
    response = _write_whole(path, doc, ttl, Conditions(if_none_match="*"), "put")
    response.status_code = 201
    response.headers["Location"] = "/" + path.text
    response.set_data(response.get_data()[:-1] + b',"path":' + documents.dumps(path.text) + b"}")
    return response


def init_app(app: Flask) -> None:
    app.url_map.converters["anypath"] = AnyPathConverter
    # "a//b" must reach the view (and be refused there), not be redirected to "a/b".
    app.url_map.merge_slashes = False
    app.register_blueprint(bp)

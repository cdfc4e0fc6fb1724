"""POST /_import: many things in one request, in the export's own format (JSON Lines).

Every line is checked first (exportlines.py: as a PUT of it would be), and so is the key's right
to write each path (auth.may_write), or for a user the rules (each line a write of its thing at
its path: rulesguard.py); the first line that fails answers 400 (401/403 for a path the key or
the rules do not allow) naming it, and nothing is stored. Then all are written through
Store.put_many, each exactly as a PUT writes it (version, lifetime, folder indexes, feed
event), so listings and watches see them; a user's import through Store.write_together,
guarded by what the rules read (the check and the write one step; a restored thing is held to
the usual size limit there). The body limit is the server's, as for any request:
the client sends a big file in batches under it.

Every line `export` writes imports: a line sent alone may be longer than the body limit, by as
much as a thing of the largest size and its envelope (`path`, `ttl`), and a thing stored before
the size limit was checked on every write (grown past it by PATCHes) restores too, up to
RESTORE_FACTOR times the limit (Settings.max_restored_thing). Several lines together are held
to the body limit; a thing past what a restore allows is `413` naming its line.

A line with `{".sv": "timestamp"}` gets the server's time. A line with an increment is refused
(exportlines.py): it depends on what is stored when it runs, so a request holding one could
not be all-or-nothing, nor sent again safely after a lost answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import orjson
from flask import Blueprint, Flask, Response, request

from thingstash.core import documents
from thingstash.core.exportlines import Line, parse_line
from thingstash.core.model import ThingWrite, TooLarge
from thingstash.core.store import Store
from thingstash.web import auth, rulesguard
from thingstash.web.context import settings, store
from thingstash.web.errors import Problem

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

bp = Blueprint("import", __name__)
PATH = "/_import"

# application/jsonl is the name in use for JSON Lines; x-ndjson is what many tools send.
IMPORT_TYPES = ("application/jsonl", "application/x-ndjson")


def _check_type() -> None:
    content_type = request.mimetype
    # Named, always: a body without a type is what a web page's form or script can send
    # anywhere without asking first (crosssite.py); `thingstash import` names it.
    if content_type not in IMPORT_TYPES:
        raise Problem(
            415,
            "unsupported media type",
            f"send the lines as {' or '.join(IMPORT_TYPES)}, "
            + (f"not {content_type[:100]}" if content_type else "naming it in Content-Type"),
        )


def _read_body() -> bytes:
    """The request's lines: one alone up to max_import_body, several up to max_body."""
    config = settings()
    request.max_content_length = config.max_import_body
    raw = request.get_data(cache=False)
    if len(raw) > config.max_body and sum(1 for t in raw.split(b"\n") if t.strip()) > 1:
        raise Problem(
            413,
            "request entity too large",
            f"the body is {len(raw)} bytes, over the limit of {config.max_body} for several "
            "lines; send a line this long alone",
            {"Connection": "close"},
        )
    return raw


def _lines(raw: bytes) -> list[Line]:
    config = settings()
    lines = []
    for number, text in enumerate(raw.split(b"\n"), 1):
        if not text.strip():
            continue
        line = parse_line(text, number, config.default_ttl, config.max_ttl)
        if len(line.body) > config.max_restored_thing:
            too_large = TooLarge(line.path, len(line.body), config.max_restored_thing)
            raise Problem(413, "thing too large", f"line {number}: {too_large.detail}")
        if not auth.may_write(line.path):
            raise Problem(
                403,
                "forbidden",
                f"line {number}: this key is limited to paths starting with "
                f"{auth.current().prefix!r}; {line.path!r} is not",
            )
        lines.append(line)
    return lines


def _judged_import(lines: list[Line], now: int) -> Response:
    """The import of a user the rules judge: each line judged alone as a write of its thing at
    its path, all before any is written (a denied one refuses the whole import, 401/403 naming
    its line), then all written together, guarded by what the rules read (rulesguard.write)."""
    bodies = [_resolved(line, now) for line in lines]

    def plan(reading: Store) -> tuple[rulesguard.Writes, Callable[[Store], Response]]:
        writes = [
            (rulesguard.location(line.path), rulesguard.thing_value(documents.loads(body)))
            for line, body in zip(lines, bodies, strict=True)
        ]

        def make(writing: Store) -> Response:
            changes = [
                ThingWrite(line.path, body, line.ttl)
                for line, body in zip(lines, bodies, strict=True)
            ]
            results = writing.write_together(changes)
            created = sum(1 for result in results if result is not None and result.created)
            return _answer(len(lines), created)

        return writes, make

    return rulesguard.write(plan, each=lambda number: f"line {lines[number].number}")


def _answer(imported: int, created: int) -> Response:
    return Response(
        orjson.dumps({"imported": imported, "created": created}), mimetype="application/json"
    )


def _resolved(line: Line, now_ms: int) -> bytes:
    """The line's thing, with its timestamps (the only server values a line may hold) set."""
    if not line.server_values:
        return line.body
    return documents.dumps(documents.resolve_thing(line.thing, None, now_ms))


@bp.post("/_import")
def import_lines() -> Response:
    _check_type()
    lines = _lines(_read_body())
    now = documents.now_ms()
    if rulesguard.is_judged():
        return _judged_import(lines, now)
    results = store().put_many(
        [(line.path, _resolved(line, now), line.ttl) for line in lines],
        max_thing_bytes=settings().max_restored_thing,
    )
    return _answer(len(lines), sum(result.created for result in results))


def with_import_bodies(usual: WSGIApplication, for_import: WSGIApplication) -> WSGIApplication:
    """The app reading bodies up to the usual limit (`usual`), or POST /_import's (`for_import`,
    Settings.max_import_body): one path compared per request."""

    def by_path(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        chosen = for_import if environ.get("PATH_INFO") == PATH else usual
        return chosen(environ, start_response)

    return by_path


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

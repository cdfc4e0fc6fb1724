"""POST /_import: many things in one request, in the export's own format (JSON Lines).

Every line is checked first (exportlines.py: as a PUT of it would be), and so is the key's right
to write each path (auth.may_write); the first line that fails answers 400 (403 for a path the
key may not write) naming it, and nothing is stored. Then all are written through
Store.put_many, each exactly as a PUT writes it (version, lifetime, folder indexes, feed
event), so listings and watches see them. The body limit is the server's, as for any request:
the client sends a big file in batches under it.

A line with `{".sv": "timestamp"}` gets the server's time. A line with an increment is refused
(exportlines.py): it depends on what is stored when it runs, so a request holding one could
not be all-or-nothing, nor sent again safely after a lost answer.
"""

from __future__ import annotations

import orjson
from flask import Blueprint, Flask, Response, request

from thingstash import documents
from thingstash.exportlines import Line, parse_line
from thingstash.web import auth
from thingstash.web.context import settings, store
from thingstash.web.errors import Problem

bp = Blueprint("import", __name__)

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


def _lines(raw: bytes) -> list[Line]:
    config = settings()
    lines = []
    for number, text in enumerate(raw.split(b"\n"), 1):
        if not text.strip():
            continue
        line = parse_line(text, number, config.default_ttl, config.max_ttl)
        if not auth.may_write(line.path):
            raise Problem(
                403,
                "forbidden",
                f"line {number}: this key is limited to paths starting with "
                f"{auth.current().prefix!r}; {line.path!r} is not",
            )
        lines.append(line)
    return lines


def _resolved(line: Line, now_ms: int) -> bytes:
    """The line's thing, with its timestamps (the only server values a line may hold) set."""
    if not line.server_values:
        return line.body
    return documents.dumps(documents.resolve_thing(line.thing, None, now_ms))


@bp.post("/_import")
def import_lines() -> Response:
    _check_type()
    lines = _lines(request.get_data(cache=False))
    now = documents.now_ms()
    results = store().put_many([(line.path, _resolved(line, now), line.ttl) for line in lines])
    body = {"imported": len(lines), "created": sum(result.created for result in results)}
    return Response(orjson.dumps(body), mimetype="application/json")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

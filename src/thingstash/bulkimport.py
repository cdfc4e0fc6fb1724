"""POST /_import: many things in one request, in the export's own format (JSON Lines).

Every line is checked first (exportlines.py: as a PUT of it would be), and so is the key's right
to write each path (auth.may_write); the first line that fails answers 400 (403 for a path the
key may not write) naming it, and nothing is stored. Then all are written through
Store.put_many, each exactly as a PUT writes it (version, lifetime, folder indexes, feed
event), so listings and watches see them. The body limit is the server's, as for any request:
the client sends a big file in batches under it.

A line with `{".sv": "timestamp"}` gets the server's time. One with an increment is added to
the value stored at that place, as a PUT does (read-modify-write): it is checked against the
stored thing before anything is written, and written after the other lines of the request.
"""

from __future__ import annotations

import time

import orjson
from flask import Blueprint, Flask, Response, request

from thingstash import auth, documents
from thingstash.context import settings, store
from thingstash.documents import BadDocument
from thingstash.errors import Problem
from thingstash.exportlines import BadLine, Line, parse_line
from thingstash.storage import Thing, TooMuchContention

bp = Blueprint("import", __name__)

# application/jsonl is the name in use for JSON Lines; x-ndjson is what many tools send.
IMPORT_TYPES = ("application/jsonl", "application/x-ndjson")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_type() -> None:
    content_type = request.mimetype
    # No Content-Type is taken for JSON Lines, as a body without one is taken for JSON elsewhere.
    if content_type and content_type not in IMPORT_TYPES:
        raise Problem(
            415,
            "unsupported media type",
            f"send the lines as {' or '.join(IMPORT_TYPES)}, not {content_type}",
        )


def _lines(raw: bytes) -> list[Line]:
    config = settings()
    lines = []
    for number, text in enumerate(raw.split(b"\n"), 1):
        if not text.strip():
            continue
        try:
            line = parse_line(text, number, config.default_ttl, config.max_ttl)
        except BadLine as error:
            raise Problem(400, "bad import line", str(error)) from None
        if not auth.may_write(line.path):
            raise Problem(
                403,
                "forbidden",
                f"line {number}: this key is limited to paths starting with "
                f"{auth.current().prefix!r}; {line.path!r} is not",
            )
        lines.append(line)
    return lines


def _resolve(line: Line, current: Thing | None, now_ms: int) -> bytes:
    stored = documents.loads(current.body) if current else None
    try:
        return documents.dumps(documents.resolve_server_values(line.thing, stored, now_ms))
    except BadDocument as error:
        raise Problem(error.status, error.title, f"line {line.number}: {error.detail}") from None


@bp.post("/_import")
def import_lines() -> Response:
    _check_type()
    lines = _lines(request.get_data(cache=False))
    now = _now_ms()
    plain: list[tuple[str, bytes, int]] = []
    increments = []
    for line in lines:
        if not line.server_values:
            plain.append((line.path, line.body, line.ttl))
        elif documents.needs_current(line.thing):
            # Checked now against what is stored (a string can't be incremented: 409), so that
            # a line that cannot be written stops the request before anything is stored.
            _resolve(line, store().get(line.path), now)
            increments.append(line)
        else:
            plain.append((line.path, _resolve(line, None, now), line.ttl))
    created = sum(result.created for result in store().put_many(plain))
    for line in increments:

        def change(current: Thing | None, line: Line = line) -> tuple[bytes, int]:
            return _resolve(line, current, _now_ms()), line.ttl

        try:
            result, _ = store().update(line.path, change, event="put")
        except TooMuchContention:
            raise Problem(
                409,
                "too much contention",
                f"line {line.number}: {line.path} kept changing under this write; retry",
                {"Retry-After": "1"},
            ) from None
        created += result.created
    body = {"imported": len(lines), "created": created}
    return Response(orjson.dumps(body), mimetype="application/json")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

"""The Firebase face's door: `GET|PUT|POST|PATCH|DELETE /<path>.json` and the rules document at
`/.settings/rules.json`, each request sent to its verb: reads.py (GET), writes.py (PUT, POST,
PATCH, DELETE), rules.py (the rules document). Who asks is checked first (`identify`, with
access.py's key check)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g, request

from thingstash.firebase import mapping
from thingstash.firebase.errors import Refusal
from thingstash.web.firebase import reads, writes
from thingstash.web.firebase.access import authorize
from thingstash.web.firebase.protocol import (
    METHODS,
    RULES,
    WRITE_METHODS,
    check_format,
    print_mode,
    target,
)
from thingstash.web.firebase.rules import rules_document
from thingstash.web.routing import AnyPathConverter

bp = Blueprint("firebase", __name__)


def identify() -> None:
    """Who asks and whether they may (auth.init_app runs it before the rate limiter): the
    request's Access in `g`, or the Problem auth's enforcement raises after the limiter. A
    path that is no location is left for the view to refuse."""
    if request.method == "OPTIONS":
        return
    try:
        text, location = target(request.path[1:])
    except Refusal:
        return
    if text == RULES:
        scope, path = "admin", None
    else:
        scope = "write" if request.method in WRITE_METHODS else "read"
        path = mapping.thing_path(location)
    g.thingstash_access = authorize(scope, path)


@bp.route("/<anypath:raw>", methods=[*METHODS, "OPTIONS"])
@bp.route("/", defaults={"raw": ""}, methods=[*METHODS, "OPTIONS"])
def handle(raw: str) -> Response:
    method = request.method
    if method == "OPTIONS":
        response = Response(status=204)
        response.headers["Allow"] = ", ".join(METHODS)
        return response
    text, location = target(raw)
    print_mode()
    check_format()
    if text == RULES:
        return rules_document(method)
    if method in ("GET", "HEAD"):  # Flask answers HEAD with the GET's headers, no body
        return reads.get(location)
    return writes.write(method, location)


def init_app(app: Flask) -> None:
    app.url_map.converters["anypath"] = AnyPathConverter
    app.url_map.merge_slashes = False
    app.register_blueprint(bp)

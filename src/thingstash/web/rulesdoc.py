"""/_rules: the store's rules document over HTTP, for an admin (an admin key for the whole
store, or `Bearer owner` on an open store: auth.py checked it before these views run).

- `GET /_rules`: the document as stored (JSON; comments are not kept), 404 when the store has
  none (it then judges nobody: API.md, "Who is judged").
- `PUT /_rules`: the body is the document in Firebase's dialect of JSON (comments, multi-line
  strings), checked and stored by firebase/rules.py, its `.indexOn`s declared as indexes: the
  same document `PUT /.settings/rules.json` stores on the Firebase face. One that does not parse
  or type-check is `400` naming the place, and the rules in force stay as they were.

This process enforces a new document from its next request; other processes' fast paths learn
that a first document exists within auth.RULES_PRESENCE_SECONDS.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Flask, Response, request

from thingstash.firebase import rules
from thingstash.firebase.errors import BadRequest
from thingstash.firebase.reading import RULES_PATH
from thingstash.web import auth
from thingstash.web.context import settings, store
from thingstash.web.errors import Problem

bp = Blueprint("rules", __name__)
PATH = "/_rules"


def _json(body: Any) -> Response:
    response = Response(orjson.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get(PATH)
def get_rules() -> Response:
    thing = store().get(RULES_PATH)
    if thing is None:
        raise Problem(404, "no rules", "this store has no rules document: PUT /_rules sets one")
    return Response(thing.body, mimetype="application/json", headers={"Cache-Control": "no-cache"})


@bp.put(PATH)
def put_rules() -> Response:
    raw = request.get_data(cache=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "bad rules", "send the rules document as UTF-8 text") from None
    try:
        document = rules.parse_rules_text(text)
        declared = rules.write_rules(store(), document, settings().max_ttl)
    except BadRequest as refused:
        raise Problem(400, "bad rules", refused.message) from None
    auth.rules_presence().forget()  # enforced by this process's fast path at once
    indexes = [{"folder": folder, "field": field} for folder, field in declared]
    return _json({"status": "ok", "indexes": indexes})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

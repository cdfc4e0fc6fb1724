"""/_keys: admin keys (for the whole store) list, create and revoke API keys over HTTP.

auth.py has already checked the admin key before these views run. An open store makes no key
over HTTP: anyone who can reach it (or a web page a user visits) could mint the first admin key
and lock everyone else out. Its first key comes from `thingstash keys create` on the store.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Flask, Response, request

from thingstash.core import keys
from thingstash.core.model import KeyRecord
from thingstash.web import auth
from thingstash.web.context import store
from thingstash.web.errors import Problem

bp = Blueprint("keys", __name__)


def describe(record: KeyRecord) -> dict[str, Any]:
    """A key as users see it: never the key, nor its hash."""
    return {
        "id": record.id,
        "scope": record.scope,
        "prefix": record.prefix,
        "created": record.created,
        "last_used": record.last_used,
    }


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


@bp.get("/_keys")
def list_keys() -> Response:
    return _json({"keys": [describe(r) for r in store().list_keys()]})


@bp.post("/_keys")
def create_key() -> Response:
    if auth.current().key_id is None:
        raise Problem(
            403,
            "forbidden",
            "this store is open (it has no API key), and an open store makes no key over "
            "HTTP: create the first one on the store's machine with "
            "`thingstash keys create --scope admin`",
        )
    try:
        body = orjson.loads(request.get_data(cache=False) or b"{}")
    except orjson.JSONDecodeError:
        raise Problem(400, "bad JSON", 'send {"scope": ..., "prefix": ...} as JSON') from None
    if not isinstance(body, dict):
        raise Problem(400, "bad key request", "send a JSON object")
    scope, prefix = body.get("scope"), body.get("prefix", "")
    if scope not in keys.SCOPES:
        raise Problem(400, "bad scope", f"scope must be one of {', '.join(keys.SCOPES)}")
    if not isinstance(prefix, str) or prefix.startswith("/") or len(prefix) > 1024:
        raise Problem(400, "bad prefix", "prefix must be a path prefix without a leading /")
    record, key = keys.create_key(store(), scope, prefix)
    auth.key_created()
    response = _json({**describe(record), "key": key}, 201)
    response.headers["Location"] = f"/_keys/{record.id}"
    # The key is shown this once: no cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/_keys/<key_id>")
def show_key(key_id: str) -> Response:
    for record in store().list_keys():
        if record.id == key_id:
            return _json(describe(record))
    raise Problem(404, "no such key", f"there is no key with id {key_id!r}")


@bp.delete("/_keys/<key_id>")
def revoke_key(key_id: str) -> Response:
    if not store().revoke_key(key_id):
        raise Problem(404, "no such key", f"there is no key with id {key_id!r}")
    auth.key_created()
    return Response(status=204)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

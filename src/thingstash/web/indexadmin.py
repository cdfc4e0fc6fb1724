"""/_indexes: admin keys (for the whole store) list, declare and drop query indexes over HTTP.

auth.py has already checked the admin key before these views run. A new index takes in what is
stored in the background (each service process's live.indexer), so POST answers at once with
the index "building"; GET shows when it is "ready".
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Flask, Response, request

from thingstash.core import indexes
from thingstash.web.context import store
from thingstash.web.errors import Problem

bp = Blueprint("indexes", __name__)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


@bp.get("/_indexes")
def list_indexes() -> Response:
    return _json({"indexes": [index.public() for index in store().indexes()]})


@bp.post("/_indexes")
def create_index() -> Response:
    try:
        body = orjson.loads(request.get_data(cache=False) or b"{}")
    except orjson.JSONDecodeError:
        raise Problem(
            400, "bad JSON", 'send {"folder": "games/*/scores/", "field": "score"} as JSON'
        ) from None
    if not isinstance(body, dict) or set(body) - {"folder", "field"}:
        raise Problem(
            400, "bad index", 'send a JSON object {"folder": ..., "field": ...} and nothing else'
        )
    folder, field = body.get("folder"), body.get("field")
    if not isinstance(folder, str) or not isinstance(field, str):
        raise Problem(
            400,
            "bad index",
            'folder and field are strings: {"folder": "games/*/scores/", "field": "score"}',
        )
    index, created = store().create_index(
        indexes.parse_index_folder(folder), indexes.parse_index_field(field).text
    )
    response = _json(index.public(), 201 if created else 200)
    response.headers["Location"] = f"/_indexes/{index.id}"
    return response


@bp.get("/_indexes/<index_id>")
def show_index(index_id: str) -> Response:
    for index in store().indexes():
        if index.id == index_id:
            return _json(index.public())
    raise Problem(404, "no such index", f"there is no index with id {index_id!r}")


@bp.delete("/_indexes/<index_id>")
def drop_index(index_id: str) -> Response:
    if store().drop_index(index_id) is None:
        raise Problem(404, "no such index", f"there is no index with id {index_id!r}")
    return Response(status=204)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

"""The service's own endpoints, under reserved `_` names."""

from __future__ import annotations

import orjson
from flask import Blueprint, Flask, Response

from thingstash.web import live
from thingstash.web.context import store

bp = Blueprint("service", __name__)


@bp.get("/_health")
def health() -> Response:
    reachable = store().ping()
    body: dict[str, object] = {"status": "ok" if reachable else "unavailable", "redis": reachable}
    body.update(live.current().health())
    headers = {} if reachable else {"Retry-After": "1"}
    return Response(
        orjson.dumps(body),
        status=200 if reachable else 503,
        mimetype="application/json",
        headers=headers,
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

"""The floor of our design: the least a Flask view on Redis can do for a PUT or a GET.

Exactly one Redis round trip per request (SET with the default lifetime, or GET), the body
passed through as bytes with no checks, served by `thingstash.serve.server` with the very
settings of `thingstash serve`, its admission gate (web.admission.admit) included. What thingstash
does beyond this (paths, validation, versions, indexes, the change feed, headers) is what its
features cost.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, Response, request

from thingstash.core.config import Settings
from thingstash.web.admission import admit

ONE_YEAR = 31104000

app = Flask(__name__)
app.wsgi_app = admit(  # type: ignore[method-assign]  # as create_app does
    app.wsgi_app, Settings.from_env().threads
)
db = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.put("/<path:path>")
def put(path: str) -> Response:
    body = request.get_data(cache=False)
    db.set("floor:" + path, body, ex=ONE_YEAR)
    return Response(body, 201, mimetype="application/json")


@app.get("/<path:path>")
def get(path: str) -> Response:
    body = db.get("floor:" + path)
    if body is None:
        return Response(b'{"error": "missing"}', 404, mimetype="application/json")
    return Response(body, 200, mimetype="application/json")

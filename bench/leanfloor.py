"""The lean floor: floor.py's Flask view with its one Redis call made the cheapest way redis-py
allows, to show what the stack itself can do.

Exactly floor.py's shape (one SET with the default lifetime, or one GET; the body passed
through as bytes with no checks; the same `thingstash.serve.server` settings and admission
gate), but the Redis call goes over a raw per-thread `redis.connection.Connection` (hiredis
parsing): `send_command` then `read_response`, no connection pool checkout, no retry wrapper,
no response callbacks. What floor.py spends beyond this is redis-py's command machinery; what
thingstash spends beyond this is its features and its own overheads.
"""

from __future__ import annotations

import os
import threading

import redis
from flask import Flask, Response, request

from thingstash.core.config import Settings
from thingstash.web.admission import admit

ONE_YEAR = 31104000

app = Flask(__name__)
app.wsgi_app = admit(  # type: ignore[method-assign]  # as create_app does
    app.wsgi_app, Settings.from_env().threads
)
# The pool is only a parser of the URL here (unix:// or redis://): no connection is taken from it.
_pool = redis.ConnectionPool.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
_local = threading.local()


def _connection() -> redis.connection.AbstractConnection:
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = _pool.connection_class(**_pool.connection_kwargs)
    return connection


def _call(*args: object) -> object:
    connection = _connection()
    connection.send_command(*args)
    return connection.read_response()


@app.put("/<path:path>")
def put(path: str) -> Response:
    body = request.get_data(cache=False)
    _call("SET", "lean:" + path, body, "EX", ONE_YEAR)
    return Response(body, 201, mimetype="application/json")


@app.get("/<path:path>")
def get(path: str) -> Response:
    body = _call("GET", "lean:" + path)
    if body is None:
        return Response(b'{"error": "missing"}', 404, mimetype="application/json")
    return Response(body, 200, mimetype="application/json")

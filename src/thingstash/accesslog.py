"""Request ids and structured access logs: one JSON line per request on the
`thingstash.access` logger (stderr unless configured otherwise).

The id is the client's `X-Request-ID` if it is a sane token (so a proxy's id follows the request
through), else a new random one; either way it is echoed in the response. The log line holds
the method, path, status, duration, client address and, for a request with a key, the key's id:
never the key, the Authorization header or the query string.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import time

import orjson
from flask import Flask, Response, g, request

from thingstash import auth

log = logging.getLogger("thingstash.access")

HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id() -> str:
    rid = g.get("request_id")
    if rid is None:
        incoming = request.headers.get(HEADER, "")
        rid = incoming if _SANE_ID.fullmatch(incoming) else secrets.token_hex(12)
        g.request_id = rid
    return rid


def _start() -> None:
    g.request_started = time.perf_counter()
    request_id()


def _finish(response: Response) -> Response:
    rid = request_id()
    response.headers[HEADER] = rid
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 3) if started else None
    if log.isEnabledFor(logging.INFO):
        log.info(
            orjson.dumps(
                {
                    "ts": round(time.time(), 3),
                    "request_id": rid,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                    "bytes": response.content_length,
                    "client": request.remote_addr,
                    "key_id": auth.current().key_id,
                    "user_agent": request.environ.get("HTTP_USER_AGENT") or None,
                    "pid": os.getpid(),  # which worker answered
                }
            ).decode()
        )
    return response


def to_stderr() -> None:
    """Access lines to stderr as bare JSON, one per line (what `thingstash serve` does, and
    what a WSGI host gets when it set up no logging of its own)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _configure() -> None:
    if log.handlers or logging.getLogger().handlers:
        if log.level == logging.NOTSET:
            log.setLevel(logging.INFO)
        return
    to_stderr()


def init_app(app: Flask) -> None:
    _configure()
    app.before_request(_start)
    app.after_request(_finish)

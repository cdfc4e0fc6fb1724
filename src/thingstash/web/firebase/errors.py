"""Errors as Firebase answers them: `{"error": "..."}` with Firebase's statuses, for every
failure a request may end with (the native face's problem+json never shows here).

The one table from what went wrong to a status: the Firebase layer's kinds of refusal
(firebase/errors.py, which the face's own modules raise too) in STATUSES, the model's errors and
the web layer's in HANDLERS."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask, Response
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from thingstash.core import documents
from thingstash.core.documents import BadDocument
from thingstash.core.model import (
    PreconditionFailed,
    StorageUnavailable,
    StoreFull,
    ThingMissing,
    TooLarge,
    TooMuchContention,
)
from thingstash.core.paths import BadPath
from thingstash.firebase import mapping
from thingstash.firebase.errors import (
    BadRequest,
    Mismatch,
    NotAllowed,
    NotFound,
    PermissionDenied,
    Refusal,
    TooLargeToStore,
    TooMuchToRead,
)
from thingstash.web.crosssite import CrossSiteWrite
from thingstash.web.errors import RETRY_AFTER_SECONDS, Problem

log = logging.getLogger(__name__)
PERMISSION_DENIED = "Permission denied"

# Each kind of refusal, as Firebase's REST API answers it; the body is `{"error": message}`.
STATUSES: dict[type[Refusal], int] = {
    BadRequest: 400,
    TooMuchToRead: 400,  # Firebase's own status for a read past its limits
    TooLargeToStore: 413,
    NotFound: 404,
    NotAllowed: 405,
    PermissionDenied: 401,
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        orjson.dumps({"error": message}), status=status, mimetype="application/json"
    )
    if headers:
        response.headers.update(headers)
    return response


def status_of(error: Refusal) -> int:
    """The status a refusal is answered with: its kind's (400 for a refusal of no kind)."""
    return next((status for kind, status in STATUSES.items() if isinstance(error, kind)), 400)


def _refusal(error: Refusal) -> Response:
    return error_response(status_of(error), error.message)


def _mismatch(error: Mismatch) -> Response:
    # Firebase answers a failed if-match with the value there now and its ETag, to retry with.
    response = Response(documents.dumps(error.current), status=412, mimetype="application/json")
    response.headers["ETag"] = mapping.etag(error.current)
    return response


def _problem(error: Problem) -> Response:
    if error.status in (401, 403):
        return error_response(401, PERMISSION_DENIED)
    return error_response(error.status, error.detail, error.headers)


def _cross_site(error: CrossSiteWrite) -> Response:
    return error_response(403, error.detail)


def _bad_document(error: BadDocument) -> Response:
    return error_response(400, f"Invalid data; {error.detail}")


def _bad_path(error: BadPath) -> Response:
    return error_response(400, f"Invalid path: {error}")


def _precondition(error: PreconditionFailed) -> Response:
    return error_response(412, "The data changed while it was written; read it and retry")


def _missing(error: ThingMissing) -> Response:
    return error_response(409, "The data changed while it was written; retry")


def _contention(error: TooMuchContention) -> Response:
    return error_response(409, f"/{error.path} kept changing under this write; retry it")


def _unavailable(error: StorageUnavailable) -> Response:
    log.warning("storage unavailable: %s", error)
    return error_response(
        503,
        "The data store cannot be reached right now; retry shortly",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


def _full(error: StoreFull) -> Response:
    log.warning("store full: %s", error)
    return error_response(507, "The data store is out of memory; nothing was written")


def _too_large(error: TooLarge) -> Response:
    # Firebase's own words for a write past its limit, then ours.
    return error_response(
        413, f"Data to write exceeds the maximum size that can be stored: {error.detail}"
    )


def _http(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    if status == 413:
        headers["Connection"] = "close"
    return error_response(status, error.description or error.name or "error", headers)


def _unexpected(error: Exception) -> Response:
    log.exception("unexpected error", exc_info=error)
    return error_response(500, "Internal server error")


HANDLERS: dict[type[Exception], Callable[[Any], Response]] = {
    Refusal: _refusal,
    Mismatch: _mismatch,
    CrossSiteWrite: _cross_site,
    Problem: _problem,
    BadDocument: _bad_document,
    BadPath: _bad_path,
    PreconditionFailed: _precondition,
    ThingMissing: _missing,
    TooMuchContention: _contention,
    StorageUnavailable: _unavailable,
    StoreFull: _full,
    TooLarge: _too_large,
    HTTPException: _http,
    Exception: _unexpected,
}


def init_app(app: Flask) -> None:
    for error, handler in HANDLERS.items():
        app.register_error_handler(error, handler)


def _too_many(error: RateLimitExceeded) -> Response:
    # web/ratelimit.py made a problem+json answer with its Retry-After: say it Firebase's way.
    made = error.response
    retry = made.headers.get("Retry-After", "1") if isinstance(made, Response) else "1"
    return error_response(429, f"Too many requests; retry in {retry} s", {"Retry-After": retry})


def init_rate_limit(app: Flask) -> None:
    """After web/ratelimit.py's init_app, whose own 429 handler this one replaces."""
    app.register_error_handler(RateLimitExceeded, _too_many)

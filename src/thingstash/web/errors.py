"""One error family and one problem+json (RFC 9457) builder for every non-success response.

The core and the store raise domain errors only (a bad document, path or line, a failed
precondition, a missing thing, storage unavailable); HANDLERS below is the one table that says
which problem a client sees for each, registered once on the app: views never map them.
Werkzeug's own errors (404, 405, 413, ...) go through the same builder, so a client never sees an
HTML page; anything unexpected becomes a bare 500 problem with no internals, logged server-side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from thingstash.core.answers import NamesBuilding, NeedsIndex
from thingstash.core.documents import BadDocument, CannotApply, NotAnObject
from thingstash.core.exportlines import BadLine
from thingstash.core.model import (
    PreconditionFailed,
    StorageUnavailable,
    StoreFull,
    ThingMissing,
    TooLarge,
    TooMuchContention,
)
from thingstash.core.paths import BadPath
from thingstash.core.queries import BadQuery
from thingstash.web.preconditions import BadPrecondition, etag

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = "1"


class Problem(Exception):
    """An error a client can act on: raised anywhere below a view, rendered as problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail or title
        self.headers = headers or {}


def problem_response(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    response = Response(body, status=status, mimetype=PROBLEM_TYPE)
    if headers:
        response.headers.update(headers)
    return response


def thing_missing(path: str) -> Problem:
    return Problem(404, "thing doesn't exist", f"there is no thing at {path!r}")


def _render_problem(error: Problem) -> Response:
    return problem_response(error.status, error.title, error.detail, error.headers)


def _bad_document(status: int) -> Callable[[BadDocument], Response]:
    def render(error: BadDocument) -> Response:
        # Whatever raised it (a body, a query number, an increment), its words are the client's.
        return problem_response(status, error.title, error.detail)

    return render


def _render_bad_path(error: BadPath) -> Response:
    return problem_response(400, "bad path", str(error))


def _render_bad_precondition(error: BadPrecondition) -> Response:
    return problem_response(400, "bad precondition", str(error))


def _render_bad_line(error: BadLine) -> Response:
    return problem_response(400, "bad import line", str(error))


def _render_precondition_failed(error: PreconditionFailed) -> Response:
    headers = {"ETag": etag(error.current)} if error.current else {}
    detail = (
        "the thing has changed since the version you named"
        if error.current
        else "the thing does not exist"
    )
    if error.current and request.headers.get("If-None-Match"):
        detail = "the thing exists (If-None-Match asked for it not to)"
    return problem_response(412, "precondition failed", detail, headers)


def _render_thing_missing(error: ThingMissing) -> Response:
    return _render_problem(thing_missing(error.path))


def _render_contention(error: TooMuchContention) -> Response:
    return problem_response(
        409, "too much contention", f"{error.path} kept changing under this write; retry it"
    )


def _render_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    title = (error.name or "error").lower()
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    if status == 413:
        # The body may be unread; closing tells the client not to reuse the connection for it.
        headers["Connection"] = "close"
    return problem_response(status, title, error.description or title, headers)


def _render_bad_query(error: BadQuery) -> Response:
    return problem_response(400, error.title, error.detail)


def _render_needs_index(error: NeedsIndex) -> Response:
    return problem_response(400, "index needed", error.detail)


def _render_unavailable(error: StorageUnavailable) -> Response:
    log.warning("storage unavailable: %s", error)
    return problem_response(
        503,
        "storage unavailable",
        "the data store cannot be reached right now; retry shortly",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


def _render_names_building(error: NamesBuilding) -> Response:
    return problem_response(503, "building", error.detail, {"Retry-After": RETRY_AFTER_SECONDS})


def _render_store_full(error: StoreFull) -> Response:
    log.warning("store full: %s", error)
    return problem_response(
        507,
        "store full",
        "the data store is out of memory (Redis maxmemory) and refused the write; nothing was "
        "written: delete things or give Redis more memory",
    )


def _render_too_large(error: TooLarge) -> Response:
    return problem_response(413, "thing too large", f"{error.path}: {error.detail}")


def _render_unexpected(error: Exception) -> Response:
    log.exception("unexpected error", exc_info=error)
    return problem_response(500, "internal server error", "the server failed to answer")


# Each error a request may end with, and how it is answered. Flask picks the handler of the
# nearest class in an error's MRO, so a subclass's entry wins over its base's.
HANDLERS: dict[type[Exception], Callable[[Any], Response]] = {
    Problem: _render_problem,
    BadDocument: _bad_document(400),
    NotAnObject: _bad_document(422),
    CannotApply: _bad_document(409),
    BadPath: _render_bad_path,
    BadPrecondition: _render_bad_precondition,
    BadLine: _render_bad_line,
    BadQuery: _render_bad_query,
    NeedsIndex: _render_needs_index,
    PreconditionFailed: _render_precondition_failed,
    ThingMissing: _render_thing_missing,
    TooMuchContention: _render_contention,
    StorageUnavailable: _render_unavailable,
    NamesBuilding: _render_names_building,
    StoreFull: _render_store_full,
    TooLarge: _render_too_large,
    HTTPException: _render_http_exception,
    Exception: _render_unexpected,
}


def init_app(app: Flask) -> None:
    for error, handler in HANDLERS.items():
        app.register_error_handler(error, handler)

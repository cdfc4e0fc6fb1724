"""One error family and one problem+json (RFC 9457) builder for every non-success response.

Werkzeug's own errors (404, 405, 413, ...) go through the same builder, so a client never sees an
HTML page; anything unexpected becomes a bare 500 problem with no internals, logged server-side.
"""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from thingstash.documents import BadDocument
from thingstash.store.single import StorageUnavailable

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


def _render_bad_document(error: BadDocument) -> Response:
    # Whatever raised it (a body, a query number, an increment), its words are the client's.
    return problem_response(error.status, error.title, error.detail)


def _render_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    title = (error.name or "error").lower()
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    if status == 413:
        # The body may be unread; closing tells the client not to reuse the connection for it.
        headers["Connection"] = "close"
    return problem_response(status, title, error.description or title, headers)


def _render_unavailable(error: StorageUnavailable) -> Response:
    log.warning("storage unavailable: %s", error)
    return problem_response(
        503,
        "storage unavailable",
        "the data store cannot be reached right now; retry shortly",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


def _render_unexpected(error: Exception) -> Response:
    log.exception("unexpected error", exc_info=error)
    return problem_response(500, "internal server error", "the server failed to answer")


def init_app(app: Flask) -> None:
    app.register_error_handler(Problem, _render_problem)
    app.register_error_handler(BadDocument, _render_bad_document)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.register_error_handler(StorageUnavailable, _render_unavailable)
    app.register_error_handler(Exception, _render_unexpected)

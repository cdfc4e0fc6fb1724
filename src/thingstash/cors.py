"""CORS through flask-cors: browsers on any origin (or the ones THINGSTASH_CORS_ORIGINS lists,
comma-separated) may call the store, send keys and preconditions, and read the headers a client
of this API needs (ETag for conditional writes, Location for pushes, Retry-After, ...).

flask-cors matches its resource patterns and computes the headers on every request, which costs
as much as a Redis round trip. What it adds to a request without an `Origin` header (scripts,
sensors, curl; browsers send one on every cross-origin request) is the same every time, so it is
computed once, by asking flask-cors itself at start, and added as is; requests with an Origin
and OPTIONS requests still go through flask-cors.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, request
from flask_cors import CORS

EXPOSED = ["ETag", "Last-Modified", "Location", "Last-Event-ID", "Retry-After", "X-Request-ID"]
ALLOWED = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Last-Event-ID",
    "X-Request-ID",
]


def init_app(app: Flask, origins: str) -> None:
    allowed: str | list[str] = "*"
    if origins.strip() != "*":
        allowed = [o.strip() for o in origins.split(",") if o.strip()]
    CORS(
        app,
        origins=allowed,
        expose_headers=EXPOSED,
        allow_headers=ALLOWED,
        methods=["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"],
        max_age=600,
        # Keys travel in Authorization, not cookies: no credentials mode needed.
        supports_credentials=False,
        # Error responses pass through the after-request hook below like any other; flask-cors
        # wrapping Flask's exception handlers as well would add its headers a second time.
        intercept_exceptions=False,
    )
    per_request: Callable[[Response], Response] = app.after_request_funcs[None].pop()
    with app.test_request_context("/"):
        plain = Response()
        without_origin = [
            (name, value)
            for name, value in per_request(Response()).headers
            if (name, value) not in plain.headers.items()
        ]

    def add_cors_headers(response: Response) -> Response:
        environ = request.environ
        if "HTTP_ORIGIN" in environ or environ["REQUEST_METHOD"] == "OPTIONS":
            return per_request(response)
        response.headers.extend(without_origin)
        return response

    app.after_request(add_cors_headers)

"""CORS through flask-cors: which web pages' scripts may call the store, send keys and
preconditions, and read the headers a client of this API needs (ETag for conditional writes,
Location for pushes, Retry-After, ...).

Which origins: THINGSTASH_CORS_ORIGINS (comma-separated, or "*") when set, always. Unset, it
depends on the store: while it is open (no key, anyone may do anything) only loopback origins
(http or https, localhost, 127.0.0.1, [::1], *.localhost, any port), so that a page on the
internet a user visits cannot read or change their local store; once it is closed every origin
may call it, since every request then needs a key the page must be given. The answer depends
on the Origin, so every response says `Vary: Origin` (unless the setting is "*"), a refused
origin's included, lest a cache hand one origin's answer to another.

flask-cors matches its resource patterns and computes the headers on every request, which costs
as much as a Redis round trip. What it adds to a request without an `Origin` header (scripts,
sensors, curl; browsers send one on every cross-origin request) is the same every time, so it is
computed once, by asking flask-cors itself at start, and added as is; requests with an Origin
and OPTIONS requests still go through flask-cors.

The same policy decides which pages may write (crosssite.py): `allows_origin(app)` answers, for
an origin, what flask-cors answers with these settings at this moment (its own matching).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from flask_cors import CORS
from flask_cors.core import get_cors_options, get_cors_origins

from thingstash.core.model import StorageUnavailable
from thingstash.web import auth

EXPOSED = ["ETag", "Last-Modified", "Location", "Last-Event-ID", "Retry-After", "X-Request-ID"]
ALLOWED = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Last-Event-ID",
    "X-Request-ID",
]
LOOPBACK_ORIGIN = re.compile(
    r"https?://(localhost|127\.0\.0\.1|\[::1\]|[a-z0-9.-]+\.localhost)(:[0-9]{1,5})?\Z",
    re.IGNORECASE,
)


class _Origins:
    """One set of origins as flask-cors has it: its per-request hook, what it adds to an answer
    without an Origin, and whether it allows an origin."""

    def __init__(self, app: Flask, origins: Any, more_headers: tuple[str, ...]) -> None:
        settings: dict[str, Any] = {
            "origins": origins,
            "expose_headers": EXPOSED,
            "allow_headers": [*ALLOWED, *more_headers],
            "methods": ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"],
            "max_age": 600,
            # Keys travel in Authorization, not cookies: no credentials mode needed.
            "supports_credentials": False,
            # Error responses pass through the after-request hook below like any other;
            # flask-cors wrapping Flask's exception handlers as well would add its headers a
            # second time.
            "intercept_exceptions": False,
        }
        CORS(app, **settings)
        hook = app.after_request_funcs[None].pop()
        # The options flask-cors made of these settings for its one resource (every path).
        self.options = get_cors_options(app, settings)

        def per_request(response: Response) -> Response:
            # Flask types its hooks as sync or async; flask-cors's is a plain function that
            # returns the response it was given.
            result = hook(response)
            if not isinstance(result, Response):
                raise TypeError(
                    f"flask-cors's hook returned {type(result).__name__}, not a response"
                )
            return result

        self.per_request = per_request
        with app.test_request_context("/"):
            plain = Response()
            self.plain = [
                (name, value)
                for name, value in per_request(Response()).headers
                if (name, value) not in plain.headers.items() and name.lower() != "vary"
            ]

    def allows(self, origin: str) -> bool:
        """Whether flask-cors would let a page of `origin` read the answer."""
        return get_cors_origins(self.options, origin) is not None


def _store_is_open() -> bool:
    try:
        return auth.store_is_open()
    except StorageUnavailable:
        return True  # the narrower choice, while we cannot tell


# Where init_app leaves the headers every answer to a request without an Origin ends with (the
# fast path adds them itself), and the policy's answer for an origin (allows_origin).
PLAIN_HEADERS = "thingstash.cors.plain"
POLICY = "thingstash.cors.policy"


def allows_origin(app: Flask) -> Callable[[str], bool]:
    """Whether the CORS policy of `app` (init_app) allows a page of an origin, now."""
    policy: Callable[[str], bool] = app.extensions[POLICY]
    return policy


def init_app(app: Flask, origins: str | None, more_headers: tuple[str, ...] = ()) -> None:
    """`more_headers`: request headers a page may send besides ALLOWED (the Firebase face's)."""
    if origins is not None and origins.strip() == "*":
        everyone = _Origins(app, "*", more_headers)

        def add_cors_headers(response: Response) -> Response:
            environ = request.environ
            if "HTTP_ORIGIN" in environ or environ["REQUEST_METHOD"] == "OPTIONS":
                return everyone.per_request(response)
            response.headers.extend(everyone.plain)
            return response

        app.after_request(add_cors_headers)
        app.extensions[PLAIN_HEADERS] = list(everyone.plain)
        app.extensions[POLICY] = everyone.allows
        return

    if origins is not None:
        listed = [o.strip() for o in origins.split(",") if o.strip()]
        configured = _Origins(app, listed, more_headers)
        plain = configured.plain

        def now() -> _Origins:
            return configured
    else:
        everyone = _Origins(app, "*", more_headers)
        loopback = _Origins(app, [LOOPBACK_ORIGIN], more_headers)
        plain = loopback.plain

        def now() -> _Origins:
            return loopback if _store_is_open() else everyone

    def add_varying_cors_headers(response: Response) -> Response:
        environ = request.environ
        if "HTTP_ORIGIN" in environ or environ["REQUEST_METHOD"] == "OPTIONS":
            response = now().per_request(response)
        else:
            # Without an Origin (not a browser's cross-origin call) the headers would differ
            # by state for nobody's benefit: the listed origins' or the loopback set's (none)
            # spare the state check.
            response.headers.extend(plain)
        if "origin" not in response.vary:
            response.vary.add("Origin")
        return response

    def allows(origin: str) -> bool:
        return now().allows(origin)

    app.after_request(add_varying_cors_headers)
    app.extensions[PLAIN_HEADERS] = [*plain, ("Vary", "Origin")]
    app.extensions[POLICY] = allows

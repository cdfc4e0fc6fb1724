"""create_firebase_app: the Firebase face's Flask app over the same store as the native one.

It shares the native app's body reading, admission, access log, Host check, key checks and
CORS policy and rate limit; its errors are Firebase's `{"error": ...}` (errors.py). No fast
path here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from flask import Flask

from thingstash.core.config import Settings
from thingstash.core.store import Store

OVERRIDABLE = frozenset({"GET", "PUT", "PATCH", "DELETE"})


def method_override(wsgi_app: Callable[..., Any]) -> Callable[..., Any]:
    """A POST with `X-HTTP-Method-Override: PUT|PATCH|DELETE|GET` (or the same as the query
    parameter `x-http-method-override`) is that request, for clients that can only POST."""

    def overridden(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            wanted = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE")
            if wanted is None and "x-http-method-override" in environ.get("QUERY_STRING", ""):
                given = parse_qs(environ["QUERY_STRING"]).get("x-http-method-override")
                wanted = given[0] if given else None
            if wanted is not None and wanted.upper() in OVERRIDABLE:
                environ["REQUEST_METHOD"] = wanted.upper()
        return wsgi_app(environ, start_response)

    return overridden


def create_firebase_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    """The Firebase face: settings (given, or read from the environment), the store, routes."""
    from thingstash.web import (
        accesslog,
        admission,
        auth,
        bodies,
        capacity,
        context,
        cors,
        crosssite,
        hosts,
        ratelimit,
    )
    from thingstash.web.firebase import errors, stream, views

    settings, store = context.configured(settings, store)
    app = Flask("thingstash.firebase", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    context.install(app, settings, store)
    errors.init_app(app)
    app.wsgi_app = method_override(  # type: ignore[method-assign]
        bodies.read_first(
            admission.admit(app.wsgi_app, settings.threads),
            settings.max_body,
            settings.body_timeout,
            capacity.Places(settings.max_bodies, settings.max_bodies_per_client),
            capacity.firebase_refusal,
        )
    )
    # As the native face: open streams counted, and refused past the count, first.
    app.wsgi_app = capacity.cap_streams(  # type: ignore[method-assign]
        app.wsgi_app,
        capacity.Places(settings.max_streams, settings.max_streams_per_client),
        capacity.firebase_refusal,
    )
    accesslog.init_app(app)
    hosts.init_app(app, settings)
    # As the native face: who asks, then the rate limit counts them, then refusals.
    auth.init_app(app, views.identify)
    ratelimit.init_app(app, settings.rate_limit, store)
    errors.init_rate_limit(app)
    auth.init_enforcement(app)
    # The native face's CORS policy (cors.py), with the headers Firebase's REST API takes.
    cors.init_app(app, settings.cors_origins, ("X-Firebase-ETag", "X-HTTP-Method-Override"))
    # Its writes from pages that policy does not allow are refused, overrides included.
    crosssite.init_app(app)
    views.init_app(app)
    stream.init_app(app, store, settings.firebase_keepalive)
    return app

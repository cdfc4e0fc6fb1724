"""create_firebase_app: the Firebase face's Flask app over the same store as the native one.

It shares the native app's stack (web/stack.py: ProxyFix, access log, stream and body places,
admission, Host check, key checks, rate limit, CORS policy, cross-site check) and adds the
method override, its key check (views.identify) and its errors, Firebase's `{"error": ...}`
(errors.py). No fast path here.
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
    from thingstash.web import capacity, context, live, stack, users
    from thingstash.web.firebase import errors, views

    settings, store = context.configured(settings, store)
    app = Flask("thingstash.firebase", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    context.install(app, settings, store)
    errors.init_app(app)
    users.install(app)
    # What both faces share, in its order (stack.py), ProxyFix included. The method override
    # goes on outside the body reading, so that it and every hook see the overridden method.
    stack.install(
        app,
        settings,
        store,
        app.wsgi_app,
        capacity.firebase_refusal,
        read_bodies=lambda read: method_override(read(settings.max_body)),
        identify=views.identify,
        # The native face's CORS policy (cors.py), with the headers Firebase's REST API takes.
        cors_headers=("X-Firebase-ETag", "X-HTTP-Method-Override"),
    )
    errors.init_rate_limit(app)  # Firebase's 429, in place of ratelimit.py's
    views.init_app(app)
    # Its streams' feed reader only: the expiry and index threads are the native face's, whose
    # server `serve` runs beside this one (serve/firebase.py).
    live.install(app, store, settings.firebase_keepalive, background=False)
    return app

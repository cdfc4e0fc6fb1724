"""create_app: the Flask app, its hooks in order, its blueprints, over a store."""

from __future__ import annotations

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from thingstash.core.config import Settings
from thingstash.core.store import Store


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    """Build the app: settings (given, or read from the environment), the store, the routes."""
    from thingstash.web import (
        accesslog,
        admission,
        auth,
        bodies,
        capacity,
        context,
        cors,
        crosssite,
        errors,
        faces,
        fastpath,
        hosts,
        imports,
        indexadmin,
        keyadmin,
        metrics,
        ratelimit,
        service,
        things,
        watch,
    )

    settings, store = context.configured(settings, store)
    app = Flask("thingstash", static_folder=None)  # /static/... are things' paths
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    if isinstance(app.json, DefaultJSONProvider):  # always: no other provider is set
        app.json.sort_keys = False
    context.install(app, settings, store)
    errors.init_app(app)
    # Order matters: request id and timing first (so they count the body's arrival and the wait
    # for a place in admission.admit too), then which host is asked, who is asking, how often, and
    # only then a refusal (so refused requests count against the rate limit). The body is read
    # whole before a place is taken: a slow sender holds only its own connection.
    # Plain reads and writes of a thing are answered in front of Flask (fastpath.py), switched
    # on at the end once it can check that it knows every hook the app has.
    fast = fastpath.FastPath(app.wsgi_app)
    app.extensions[fastpath.EXTENSION] = fast
    # Middleware replace wsgi_app as Flask's documentation says; mypy forbids assigning to a
    # method, hence the ignores here and for ProxyFix below.
    admitted = admission.admit(fast, settings.threads)
    app.extensions[admission.COSTLY] = admission.CostlyGate(settings.costly_queries)
    arriving = capacity.Places(settings.max_bodies, settings.max_bodies_per_client)
    # POST /_import reads a longer body: a line alone with the largest thing (imports.py).
    app.wsgi_app = imports.with_import_bodies(  # type: ignore[method-assign,assignment]
        bodies.read_first(
            admitted, settings.max_body, settings.body_timeout, arriving, capacity.problem_refusal
        ),
        bodies.read_first(
            admitted,
            settings.max_import_body,
            settings.body_timeout,
            arriving,
            capacity.problem_refusal,
        ),
    )
    # Open streams are counted (and refused past the count) before the body is read.
    app.wsgi_app = capacity.cap_streams(  # type: ignore[method-assign]
        app.wsgi_app,
        capacity.Places(settings.max_streams, settings.max_streams_per_client),
        capacity.problem_refusal,
    )
    accesslog.init_app(app, observers=(metrics.observe,))
    metrics.init_app(app)
    hosts.init_app(app, settings)
    auth.init_app(app)
    ratelimit.init_app(app, settings.rate_limit, store)
    auth.init_enforcement(app)  # after the limiter: refusals count against the limit too
    cors.init_app(app, settings.cors_origins)
    crosssite.init_app(app)  # a page the CORS policy does not allow changes nothing
    keyadmin.init_app(app)
    indexadmin.init_app(app)
    imports.init_app(app)
    if settings.proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client address (rate limits, access logs) is the one the proxies saw.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxies, x_proto=settings.proxies
        )
    service.init_app(app)
    faces.init_app(app)
    things.init_app(app)
    watch.init_app(app, store, settings.keepalive)
    fastpath.switch_on_if_known(app, fast, settings, store)
    return app

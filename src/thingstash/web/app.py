"""create_app: the native face's Flask app over a store: the stack both faces share
(stack.py) around its fast path, its own blueprints, its live parts (live.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from thingstash.core.config import Settings
from thingstash.core.store import Store

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    """Build the app: settings (given, or read from the environment), the store, the routes."""
    from thingstash.web import (
        admission,
        capacity,
        context,
        errors,
        faces,
        fastpath,
        imports,
        indexadmin,
        keyadmin,
        live,
        metrics,
        rulesdoc,
        service,
        stack,
        things,
        users,
    )

    settings, store = context.configured(settings, store)
    app = Flask("thingstash", static_folder=None)  # /static/... are things' paths
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    if isinstance(app.json, DefaultJSONProvider):  # always: no other provider is set
        app.json.sort_keys = False
    context.install(app, settings, store)
    errors.init_app(app)
    users.install(app)  # the rules in force and the token verifier (rulesguard.py judges)
    # Plain reads and writes of a thing, and listing pages, are answered in front of Flask
    # (fastpath.py), switched on at the end once it can check that it knows every hook the
    # app has.
    fast = fastpath.FastPath(app.wsgi_app)
    app.extensions[fastpath.EXTENSION] = fast
    app.extensions[admission.COSTLY] = admission.CostlyGate(settings.costly_queries)

    def read_bodies(read: stack.BodyReader) -> WSGIApplication:
        # POST /_import reads a longer body: a line alone with the largest thing (imports.py).
        return imports.with_import_bodies(read(settings.max_body), read(settings.max_import_body))

    # What both faces share, in its order (stack.py): ProxyFix, the access log, the stream and
    # body places, admission around the fast path; the Host, key, rate limit, CORS and
    # cross-site hooks.
    stack.install(
        app,
        settings,
        store,
        fast,
        capacity.problem_refusal,
        read_bodies=read_bodies,
        observers=(metrics.observe,),
    )
    metrics.init_app(app)
    keyadmin.init_app(app)
    indexadmin.init_app(app)
    rulesdoc.init_app(app)
    imports.init_app(app)
    service.init_app(app)
    faces.init_app(app)
    things.init_app(app)
    live.install(app, store, settings.keepalive)
    fastpath.switch_on_if_known(app, fast, settings, store)
    return app

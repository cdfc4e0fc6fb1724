"""The middleware and request hooks both faces share, installed in one order by `install`
(create_app and create_firebase_app call it; each adds only its own around it).

WSGI layers, outermost first: ProxyFix when proxies are trusted (THINGSTASH_PROXIES: the client
address, for rate limits, access logs and per-client places, is the one the proxies saw), the
request id and access log (accesslog.py), the count of open streams (capacity.py), the body read
whole before a place is taken (bodies.py: a slow sender holds only its own connection), the
admission gate (admission.py), then the face's own app. Request id and timing come first so that
they count the body's arrival and the wait for a place too; open streams are counted, and
refused past the count, before a body is read.

Flask hooks, in order: which host is asked (hosts.py), who is asking (auth.py), how often
(ratelimit.py), and only then a refusal (so refused requests count against the rate limit);
then the CORS headers (cors.py), and the refusal of writes from pages the CORS policy does not
allow (crosssite.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask

from thingstash.core.config import Settings
from thingstash.core.store import Store
from thingstash.web import (
    accesslog,
    admission,
    auth,
    bodies,
    capacity,
    cors,
    crosssite,
    hosts,
    ratelimit,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

# An app reading bodies up to a size (bytes) before calling the admitted app.
BodyReader = Callable[[int], "WSGIApplication"]


def install(
    app: Flask,
    settings: Settings,
    store: Store,
    inner: WSGIApplication,
    refusal: capacity.Refusal,
    *,
    read_bodies: Callable[[BodyReader], WSGIApplication] | None = None,
    observers: tuple[accesslog.Observer, ...] = (),
    identify: Callable[[], None] | None = None,
    cors_headers: tuple[str, ...] = (),
) -> None:
    """Install the shared stack on `app` around `inner` (the face's own WSGI app: Flask's, or
    what stands in front of it). `refusal` words an answer given outside Flask (a place
    refused, a late body); `read_bodies`, given how to read a body up to a size first, makes the
    face's body layer (by default the usual limit, Settings.max_body); `observers` hear of every
    request (accesslog.Observer); `identify` checks a request's key the face's way (auth.py);
    `cors_headers`, the face's request headers CORS allows beyond the usual ones."""
    _wrap(app, settings, inner, refusal, read_bodies, observers)
    hosts.init_app(app, settings)
    auth.init_app(app, identify)
    ratelimit.init_app(app, settings.rate_limit, store)
    auth.init_enforcement(app)  # after the limiter: refusals count against the limit too
    cors.init_app(app, settings.cors_origins, cors_headers)
    crosssite.init_app(app)  # a page the CORS policy does not allow changes nothing


def _wrap(
    app: Flask,
    settings: Settings,
    inner: WSGIApplication,
    refusal: capacity.Refusal,
    read_bodies: Callable[[BodyReader], WSGIApplication] | None,
    observers: tuple[accesslog.Observer, ...],
) -> None:
    admitted = admission.admit(inner, settings.threads)
    arriving = capacity.Places(settings.max_bodies, settings.max_bodies_per_client)

    def read_first(limit: int) -> WSGIApplication:
        return bodies.read_first(admitted, limit, settings.body_timeout, arriving, refusal)

    # Middleware replace wsgi_app as Flask's documentation says; mypy forbids assigning to a
    # method, hence the ignores.
    reading = read_bodies(read_first) if read_bodies else read_first(settings.max_body)
    app.wsgi_app = reading  # type: ignore[method-assign,assignment]
    app.wsgi_app = capacity.cap_streams(  # type: ignore[method-assign]
        app.wsgi_app,
        capacity.Places(settings.max_streams, settings.max_streams_per_client),
        refusal,
    )
    accesslog.init_app(app, observers)
    if settings.proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxies, x_proto=settings.proxies
        )

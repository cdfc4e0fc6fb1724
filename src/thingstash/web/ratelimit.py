"""A request rate limit per API key (or per client address without one), through flask-limiter.

Counters live in the store's own Redis (fixed windows, keys under `ns:rl`; store/layout.py gives the
URI and prefix), so every worker and process shares them. Off unless THINGSTASH_RATE_LIMIT is
set (e.g. "100/minute"). /_health and CORS preflights are not counted.

If Redis is down the limiter lets the request through (swallow_errors): the request then meets
the same outage in the store and gets the store's 503, not a 500 from the limiter.
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit

from thingstash.core.store import Store
from thingstash.web import auth
from thingstash.web.errors import problem_response


def _client() -> str:
    access = auth.current()
    if access.key_id is not None:
        return "key:" + access.key_id
    return "addr:" + (request.remote_addr or "unknown")


def _exempt() -> bool:
    return request.method == "OPTIONS" or request.path == "/_health"


def _too_many(limit: RequestLimit) -> Response:
    # reset_at is rounded up to a whole second; never ask for more than one window.
    retry_after = min(max(1, math.ceil(limit.reset_at - time.time())), limit.limit.get_expiry())
    return problem_response(
        429,
        "too many requests",
        f"over the limit of {limit.limit}; retry in {retry_after} s",
        {"Retry-After": str(retry_after)},
    )


def _render(error: RateLimitExceeded) -> Response:
    # The response made by _too_many, which the generic HTTPException handler would drop.
    if isinstance(error.response, Response):  # always so: _too_many made it
        return error.response
    return problem_response(429, "too many requests", str(error.description), {"Retry-After": "1"})


def init_app(app: Flask, rate: str | None, store: Store) -> None:
    if not rate:
        return
    storage = store.limiter_storage()
    uri, options = storage if storage else ("memory://", {})
    app.register_error_handler(RateLimitExceeded, _render)
    Limiter(
        _client,
        app=app,
        application_limits=[rate],
        application_limits_exempt_when=_exempt,
        storage_uri=uri,
        storage_options=options,
        strategy="fixed-window",
        swallow_errors=True,
        on_breach=_too_many,
    )


def close(app: Flask) -> None:
    """Close the limiter's own Redis connections (for apps made and dropped, as in tests)."""
    for limiter in app.extensions.get("limiter", ()):
        client = getattr(limiter.storage, "storage", None)
        if client is not None and hasattr(client, "close"):
            client.close()

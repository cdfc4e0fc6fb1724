"""The app's live parts (thingstash.live.Live: the feed reader, and the expiry and index
threads): made and started by the app factory (`install`), used by the stream modules during a
request (`current`: watch.py, queries.py, firebase/stream.py), stopped by the workers through
the app (`of`)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, has_request_context, request

from thingstash.core.environ import LIVE_BODY
from thingstash.core.model import parse_event_id
from thingstash.core.store import Store
from thingstash.live import Live
from thingstash.live.hub import Hub, Subscription
from thingstash.live.streamloop import Face, LiveBody, shortcut, stream_loop
from thingstash.live.waiting import observe_rings
from thingstash.web import metrics

EXTENSION = "thingstash.live"


def install(app: Flask, store: Store, keepalive: float, background: bool = True) -> Live:
    """Make `app`'s Live over `store` and start it (see Live for `background`)."""
    live = Live(store, keepalive, background)
    live.start()
    observe_rings(metrics.observe_ring)
    app.extensions[EXTENSION] = live
    return live


def of(app: Flask) -> Live:
    """`app`'s live parts (outside a request too: a worker stopping them)."""
    live: Live = app.extensions[EXTENSION]
    return live


def current() -> Live:
    """The live parts of the app answering this request."""
    return of(current_app)


def last_event_id(raw: str | None) -> str | None:
    """A request's `Last-Event-ID` (both faces' streams resume from it): None when absent or
    blank; ValueError when it is not an id this server sends."""
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if parse_event_id(raw) is None:
        raise ValueError(
            "Last-Event-ID must be an event id this server sent (like 1700000000000-0)"
        )
    return raw


def body(
    hub: Hub,
    keepalive: float,
    subscription: Subscription,
    face: Face,
    opening: list[bytes],
    allowed: Callable[[], bool],
) -> LiveBody:
    """A stream's response body: the one stream loop (live/streamloop.py) of `face`, run by
    this request's thread, or as a coroutine by an async front (which finds it in the environ:
    core/environ.LIVE_BODY); counted as open while it runs, unsubscribed when it ends."""
    metrics.WATCHES.inc()

    def ended() -> None:
        metrics.WATCHES.dec()
        hub.unsubscribe(subscription)

    steps = stream_loop(face, opening, allowed, keepalive, lambda: hub.closed)
    live_body = LiveBody(steps, subscription, ended, shortcut(face, allowed))
    if has_request_context():
        request.environ[LIVE_BODY] = live_body
    return live_body

"""Watching: the change feed as Server-Sent Events (a GET with `Accept: text/event-stream`).

Each stream subscribes to the process's feed reader (live.hub, owned and started by the app:
web/live.py) and runs the one stream loop (live/streamloop.py) as a WatchFace; one that
resumes with `Last-Event-ID`, or falls behind, reads what it missed from the feed itself and
gets a `reset` when that is no longer retained.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, request

from thingstash.core.model import parse_event_id
from thingstash.core.paths import Path
from thingstash.core.store import Store
from thingstash.live.hub import BATCH, Delivery, Ordering, Subscription, frame
from thingstash.live.streamloop import MIN_INTERVAL
from thingstash.web import auth, rulesguard
from thingstash.web.errors import Problem
from thingstash.web.live import body, last_event_id
from thingstash.web.live import current as live

# The last thing a stream sends when its key was revoked (or an open store closed, or the rules
# no longer let its user read there): a comment, which clients ignore; the stream then ends, and
# a reconnect meets the 401 or 403.
REVOKED = b": access revoked\n\n"


def _last_event_id() -> str | None:
    try:
        return last_event_id(request.headers.get("Last-Event-ID"))
    except ValueError as error:
        raise Problem(400, "bad Last-Event-ID", str(error)) from None


def stream(path: Path) -> Response:
    """Answer a GET with `Accept: text/event-stream`: the events of a thing or a folder."""
    resume = _last_event_id()
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        return Response(mimetype="text/event-stream", headers=headers)
    current = live()
    subscription = current.hub.subscribe(path.text, path.is_folder)
    # Checked as events are sent (below), so none queued before this line slips through.
    subscription.prefix = auth.current().prefix
    # Its key, and for a user the rules, asked again as it goes: it ends when either refuses.
    allowed = rulesguard.still_allowed(path.text)
    try:
        opening = _opening(current.hub.store, subscription, resume)
    except BaseException:
        current.hub.unsubscribe(subscription)
        raise
    face = WatchFace(current.hub.store, subscription, opening)
    # Sent at once so the client knows the stream is open and subscribed.
    first = [b": watching /" + subscription.path.encode("utf-8") + b"\n\n", *opening.frames]
    return Response(
        body(current.hub, current.keepalive, subscription, face, first, allowed),
        mimetype="text/event-stream",
        headers=headers,
    )


@dataclass
class _Opening:
    frames: list[bytes]
    position: str
    resume: str | None


def _opening(store: Store, subscription: Subscription, resume: str | None) -> _Opening:
    """What a stream starts with, read after subscribing (so nothing falls in between):
    a thing's current state, or nothing for a folder; when resuming, the catch-up is done
    lazily by the stream itself."""
    if resume is not None:
        return _Opening([], resume, resume)
    if subscription.folder:
        return _Opening([], store.feed_position(), None)
    position, thing = store.position_and_get(subscription.path)
    return _Opening([frame("put", position, subscription.path, thing)], position, None)


def _catch_up(store: Store, subscription: Subscription, after: str) -> tuple[list[bytes], str]:
    """The frames a watcher missed after `after`, from the stream; a reset if they're gone."""
    frames: list[bytes] = []
    # This catch-up's own view of the range it reads (see Ordering).
    ordering = None if store.feed_in_order else Ordering(store)
    while True:
        backlog = store.feed_since(after, BATCH)
        if backlog.reset:
            thing = None if subscription.folder else store.get(subscription.path)
            frames.append(
                frame("reset", backlog.position, subscription.path, thing, not subscription.folder)
            )
            return frames, backlog.position
        matched = [event for event in backlog.events if subscription.matches(event.path)]
        if ordering is not None and matched:
            keep = ordering.keep(matched)
            matched = [event for event, kept in zip(matched, keep, strict=True) if kept]
        for event in matched:
            frames.append(frame(event.kind, event.id, event.path, event.thing))
        after = backlog.position
        if backlog.complete:
            return frames, after


class WatchFace:
    """A native watch (live/streamloop.py's Face): each event as it comes (`put`, `delete`,
    `expire`, as the feed reader framed it), within the key's prefix; after a lag or when
    resuming, what was missed from the feed itself (a `reset` when it is no longer retained)."""

    keepalive_frame = b": keep-alive\n\n"
    revoked_frame = REVOKED
    waiting_frame: bytes | None = b": waiting for the store\n\n"
    gather_s = 0.0
    rest_s = MIN_INTERVAL

    def __init__(self, store: Store, subscription: Subscription, opening: _Opening) -> None:
        self.store = store
        self.subscription = subscription
        self.name = f"watch of {subscription.path}"
        self.position = opening.position
        self.seen = parse_event_id(opening.position) or (0, 0)
        self.behind = opening.resume is not None  # must read the feed from `position` first
        self.fresh: list[Delivery] = []

    @property
    def pending(self) -> bool:
        return self.behind or bool(self.fresh)

    @property
    def blocking(self) -> bool:
        return self.behind  # only a catch-up reads the store

    def note(self, deliveries: list[Delivery], lagging: bool) -> None:
        if lagging:
            self.behind = True  # the feed holds these deliveries too: read from there
            self.fresh = []
            return
        # Not those already sent (from the opening read or a catch-up).
        self.fresh += [delivery for delivery in deliveries if delivery.order > self.seen]
        if self.fresh:
            self.seen, self.position = self.fresh[-1].order, self.fresh[-1].event.id

    def at_once(self, deliveries: list[Delivery]) -> list[bytes] | None:
        """As note then produce, for a stream in step with the feed (live/riding.py)."""
        if self.behind or self.fresh:
            return None
        self.note(deliveries, False)
        return self.produce()

    def produce(self) -> list[bytes]:
        if self.behind:
            # Resuming, too slow, or the reader lost Redis: read the feed.
            frames, self.position = _catch_up(self.store, self.subscription, self.position)
            self.behind = False
            self.seen = parse_event_id(self.position) or self.seen
            return frames
        fresh, self.fresh = self.fresh, []
        prefix = self.subscription.prefix  # the key's
        return [delivery.frame for delivery in fresh if delivery.event.path.startswith(prefix)]

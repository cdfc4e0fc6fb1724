"""Firebase streams: `GET <path>.json` with `Accept: text/event-stream` (docs/firebase.md,
"Streams"). The stream opens with `put` "/" of the location's whole value, then sends a `put` for
each change of a thing that touches it (thingstash.firebase.streaming says which, where), each
with an `id:` (the change feed's position) so that a client reconnecting with `Last-Event-ID`
misses nothing; a `keep-alive` when quiet; a `cancel` when its key is revoked.

Like native watches (web.watch) it subscribes to the process's feed reader (live.hub, owned and
started by the app: web/live.py), as a tree: the thing at the location, everything below it and
the things above it. A stream that falls behind, resumes, or meets an unavailable store reads
what it missed from the feed itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from flask import Response, request

from thingstash.core.model import StorageUnavailable, parse_event_id
from thingstash.core.shared import SharedBy
from thingstash.firebase import reading
from thingstash.firebase.errors import BadRequest, Refusal
from thingstash.firebase.mapping import Location
from thingstash.firebase.streaming import (
    CANCEL_FRAME,
    KEEPALIVE_FRAME,
    cancel_frame,
    event_location,
    location_of,
    put_frame,
    puts_for,
)
from thingstash.firebase.streamreads import StreamReads
from thingstash.live.hub import BATCH, Delivery, Hub, Subscription
from thingstash.live.streamloop import MIN_INTERVAL, Ended, LiveBody
from thingstash.web import live
from thingstash.web.context import settings, store
from thingstash.web.firebase import guard

log = logging.getLogger(__name__)

# The JSON of a location's value now (b"null" when there is none).
Read = Callable[[Location], bytes]

# The values read for changes, shared by this process's streams of a store (one read per change
# and place).
SHARED: SharedBy[tuple[Location, str], bytes] = SharedBy()


@dataclass
class Opened:
    """A stream subscribed and ready: what it sends first, and from which feed position on."""

    subscription: Subscription
    frames: list[bytes]
    position: str
    resume: bool


def open_stream(hub: Hub, location: Location, read: Read, resume: str | None) -> Opened:
    """Subscribe, then read what the stream starts with (so nothing falls in between): `put`
    "/" of the whole value at the feed's position, or, when resuming, nothing yet (the stream
    catches up from `resume` itself). Raises StorageUnavailable before anything is sent."""
    subscription = hub.subscribe("/".join(location), False, tree=True)
    try:
        if resume is not None:
            # A keep-alive first, so the client sees the stream open before any change comes.
            return Opened(subscription, [KEEPALIVE_FRAME], resume, True)
        position = hub.store.feed_position()
        return Opened(subscription, [put_frame((), read(location), position)], position, False)
    except BaseException:
        hub.unsubscribe(subscription)
        raise


def frames_for(
    location: Location, changes: Iterable[tuple[str, str, str]], read: Read
) -> list[bytes]:
    """The `put` frames for changes (event id, thing path, kind) in feed order (puts_for).
    With a StreamReads as `read`, writes inside the thing at or above the location send what
    changed in it (StreamReads.own_changes) with the id of the last of them, rather than the
    location's whole value; all in the order of their ids."""
    changes = list(changes)
    above = {
        event_id
        for event_id, path, _ in changes
        if event_location(location, location_of(path)) == ()
    }
    # The thing at the location replaced or deleted: its whole value, as Firebase sends a set.
    replaced = any(path == "/".join(location) and kind != "patch" for _, path, kind in changes)
    pairs = [(event_id, path) for event_id, path, _ in changes]
    try:
        own = None
        if above and not replaced and isinstance(read, StreamReads):
            own = read.own_changes()
        if own is not None:
            pairs = [pair for pair in pairs if pair[0] not in above]
        shown = [
            (event_id, put_frame(at, _value(read, location + at, event_id), event_id))
            for at, event_id in puts_for(location, pairs)
        ]
        if own is not None:
            last = max(above, key=lambda event_id: parse_event_id(event_id) or (0, 0))
            shown += [(last, put_frame(at, data, last)) for at, data in own]
            shown.sort(key=lambda frame: parse_event_id(frame[0]) or (0, 0))
        return [frame for _, frame in shown]
    except BaseException:
        if isinstance(read, StreamReads):
            read.forget()  # none of it is sent: the next change of own(L) sends L whole
        raise


def _value(read: Read, at: Location, event_id: str) -> bytes:
    """The JSON of the value at `at` for the change `event_id` (shared by the streams sending
    it, with a StreamReads)."""
    return read.for_change(at, event_id) if isinstance(read, StreamReads) else read(at)


def catch_up(hub: Hub, opened: Opened, location: Location, read: Read) -> list[bytes]:
    """The `put`s for what changed after `opened.position`, from the feed itself; past what it
    retains, a fresh `put` "/" of the whole value. Advances `opened.position`."""
    store, changes = hub.store, []
    after = opened.position
    while True:
        backlog = store.feed_since(after, BATCH)
        if backlog.reset:
            fresh = put_frame((), read(location), backlog.position)
            opened.position = backlog.position
            return [fresh]
        changes += [
            (event.id, event.path, event.kind)
            for event in backlog.events
            if event.kind != "reset" and opened.subscription.matches(event.path)
        ]
        after = backlog.position
        if backlog.complete:
            break
    frames = frames_for(location, changes, read)
    opened.position = after
    return frames


class FirebaseFace:
    """A Firebase stream (live/streamloop.py's Face): a `put` for each change of a thing that
    touches the location (frames_for); when resuming, after a lag or a failed read, what was
    missed from the feed itself (catch_up); a `cancel` when a read grows past its budget."""

    keepalive_frame = KEEPALIVE_FRAME
    revoked_frame = CANCEL_FRAME
    # (Not a comment: Firebase's SDK takes any event for data. A keep-alive also tells whether
    # the client is still there.)
    waiting_frame: bytes | None = KEEPALIVE_FRAME
    gather_s = 0.0
    rest_s = MIN_INTERVAL
    blocking = True  # every change reads a value

    def __init__(self, hub: Hub, opened: Opened, location: Location, read: Read) -> None:
        self.hub, self.opened, self.location, self.read = hub, opened, location, read
        self.name = f"firebase stream of /{opened.subscription.path}"
        self.seen = parse_event_id(opened.position) or (0, 0)
        self.behind = opened.resume  # must read the feed from `opened.position` first
        self.fresh: list[Delivery] = []

    @property
    def pending(self) -> bool:
        return self.behind or bool(self.fresh)

    def note(self, deliveries: list[Delivery], lagging: bool) -> None:
        if lagging:
            self.behind = True  # the feed holds these too: read from the last position sent
            self.fresh = []
            return
        self.fresh += [delivery for delivery in deliveries if delivery.order > self.seen]

    def produce(self) -> list[bytes]:
        try:
            if not self.behind:
                fresh, self.fresh = self.fresh, []
                changes = ((d.event.id, d.event.path, d.event.kind) for d in fresh)
                try:
                    frames = frames_for(self.location, changes, self.read)
                except StorageUnavailable:
                    self.behind = True  # nothing of these was sent: read them from the feed
                else:
                    self.seen, self.opened.position = fresh[-1].order, fresh[-1].event.id
                    return frames
            frames = catch_up(self.hub, self.opened, self.location, self.read)
        except Refusal as refusal:  # the value grew past what one read may take
            raise Ended(cancel_frame(refusal.message)) from None
        self.behind = False
        self.seen = parse_event_id(self.opened.position) or self.seen
        return frames


def events(
    hub: Hub,
    opened: Opened,
    location: Location,
    read: Read,
    allowed: Callable[[], bool],
    keepalive: float,
) -> Iterator[bytes]:
    """The stream's frames (the one stream loop with a FirebaseFace), until the client goes,
    the process stops, or `allowed()` says the key is gone (then `cancel`). Unsubscribes when
    it ends."""
    face = FirebaseFace(hub, opened, location, read)
    # Made now, not when first iterated: an async front finds it in the environ (web/live.body).
    return _frames(live.body(hub, keepalive, opened.subscription, face, opened.frames, allowed))


def _frames(body: LiveBody) -> Iterator[bytes]:
    try:
        yield from body
    finally:
        body.close()


# -- over HTTP (Flask) ---------------------------------------------------------------------------


def _last_event_id() -> str | None:
    try:
        return live.last_event_id(request.headers.get("Last-Event-ID"))
    except ValueError as error:
        raise BadRequest(str(error)) from None


def respond(location: Location) -> Response:
    """A GET with `Accept: text/event-stream`, its access already checked (the caller's
    authorize): the stream of `location`."""
    if request.args.get("orderBy") is not None or request.args.get("shallow") is not None:
        raise BadRequest("Streams of queries or shallow reads are not supported")
    resume = _last_event_id()
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":  # what a stream would answer, with nothing opened
        return Response(mimetype="text/event-stream", headers=headers)
    the_store, config = store(), settings()

    def budget() -> reading.Budget:
        return reading.Budget(config.firebase_max_read, max_folders=config.firebase_max_folders)

    read = StreamReads(the_store, location, budget, SHARED.of(the_store))

    allowed = guard.still_allowed(location)
    current = live.current()  # the app's (web/live.py), its keep-alive the Firebase face's
    opened = open_stream(current.hub, location, read, resume)
    face = FirebaseFace(current.hub, opened, location, read)
    body = live.body(
        current.hub, current.keepalive, opened.subscription, face, opened.frames, allowed
    )
    return Response(body, mimetype="text/event-stream", headers=headers)

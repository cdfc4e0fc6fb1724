"""Watching: the change feed as Server-Sent Events (a GET with `Accept: text/event-stream`).

Each stream subscribes to the process's feed reader (live.hub, owned and started by the app:
web/live.py); one that resumes with `Last-Event-ID`, or falls behind, reads what it missed from
the feed itself and gets a `reset` when that is no longer retained.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Response, request

from thingstash.core.model import StorageUnavailable, parse_event_id
from thingstash.core.paths import Path
from thingstash.core.store import Store
from thingstash.live import Live
from thingstash.live.hub import BATCH, Ordering, Subscription, frame
from thingstash.web import auth, metrics, rulesguard
from thingstash.web.errors import Problem
from thingstash.web.live import current as live
from thingstash.web.live import last_event_id

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.1  # seconds between two writes to one stream, when events keep coming
RETRY_S = 0.5  # how often a stream tries the store again while it is away
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
    return Response(
        _events(current, subscription, opening, allowed),
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


def _still(allowed: Callable[[], bool]) -> bool:
    try:
        return allowed()
    except StorageUnavailable:
        return True  # can't tell now: the next write or keep-alive asks again


def _events(
    current: Live, subscription: Subscription, opening: _Opening, allowed: Callable[[], bool]
) -> Iterator[bytes]:
    """The stream's frames. Before each write (events or a keep-alive) the request's access is
    checked again (`auth.still_allowed`, cached a second per key and process): a revoked key's
    stream ends at its next event or keep-alive, delivering nothing more."""
    hub, store = current.hub, current.hub.store
    metrics.WATCHES.inc()
    try:
        # Sent at once so the client knows the stream is open and subscribed.
        yield b": watching /" + subscription.path.encode("utf-8") + b"\n\n"
        yield from opening.frames
        position = opening.position
        seen = parse_event_id(position) or (0, 0)
        behind = opening.resume is not None  # must read the stream from `position` first
        waiting = False
        quiet_since = time.monotonic()
        while not hub.closed:
            if behind:
                # Resuming, too slow, or the reader lost Redis: read the stream. While the
                # store is away (Redis down, a cluster failing over) the stream stays open and
                # tries again, so the client need not reconnect and misses nothing.
                try:
                    frames, position = _catch_up(store, subscription, position)
                except StorageUnavailable as error:
                    if not waiting:
                        log.warning("watch of %s waits for the store: %s", subscription.path, error)
                    waiting = True
                    yield b": waiting for the store\n\n"
                    time.sleep(min(RETRY_S, current.keepalive))
                    continue
                behind = waiting = False
                seen = parse_event_id(position) or seen
                if frames:
                    if not _still(allowed):
                        yield REVOKED
                        return
                    yield b"".join(frames)
                    quiet_since = time.monotonic()
            wait = current.keepalive - (time.monotonic() - quiet_since)
            taken = subscription.take(max(wait, 0.0))
            if taken is None:
                if not _still(allowed):
                    yield REVOKED
                    return
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
                continue
            deliveries, lagging, closed = taken
            if closed:
                return
            if lagging:
                behind = True  # the stream holds these deliveries too: read from there
                continue
            start = 0
            while start < len(deliveries) and deliveries[start].order <= seen:
                start += 1  # already sent (from the opening read or a catch-up)
            if start < len(deliveries):
                seen, position = deliveries[-1].order, deliveries[-1].event.id
                out = [
                    delivery.frame
                    for delivery in deliveries[start:]
                    if delivery.event.path.startswith(subscription.prefix)  # the key's prefix
                ]
                if out:
                    if not _still(allowed):
                        yield REVOKED
                        return
                    # A burst costs this thread one wake-up and the client one write.
                    yield b"".join(out)
                    quiet_since = time.monotonic()
                    # Under a stream of events, wake at most every MIN_INTERVAL: what arrives
                    # meanwhile waits in the group's log and goes out in one write. With
                    # hundreds of watchers this bounds the process's wake-ups, so ordinary
                    # requests stay prompt; an event after a quiet spell goes out at once.
                    time.sleep(MIN_INTERVAL)
    except StorageUnavailable as error:
        # Catch-ups wait for the store above; should another read fail all the same, the
        # stream ends and the client reconnects with the last id it got, missing nothing.
        log.warning("watch of %s ended: %s", subscription.path, error)
    finally:
        metrics.WATCHES.dec()
        hub.unsubscribe(subscription)

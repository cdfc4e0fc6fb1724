"""Watching: the change feed as Server-Sent Events, and expiries turned into feed events.

Per serving process there is one feed reader (a thread doing XREAD BLOCK on the feed stream)
that hands each event to the in-process watchers it concerns, through one bounded queue per
watcher; so a thousand open streams cost one Redis connection, not a thousand. A watcher that
falls behind (its queue full) or resumes with `Last-Event-ID` reads what it missed from the
stream itself, and gets a `reset` when that is no longer retained.

Per process there is also one expiry listener (keyspace notifications, `expired` events) that
records each expiry with an idempotent script: every process hears every expiry, but the
first script run removes the thing from its folder index, which is the guard that makes
exactly one `expire` event.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask import Flask, Response, current_app, request

from thingstash import auth, documents, metrics
from thingstash.errors import Problem
from thingstash.paths import Path
from thingstash.storage import (
    Event,
    StorageUnavailable,
    Store,
    Thing,
    parse_event_id,
)

log = logging.getLogger(__name__)

_LIVE = "thingstash.live"
QUEUE_SIZE = 1000
BLOCK_MS = 1000
BATCH = 1000
MIN_INTERVAL = 0.1  # seconds between two writes to one stream, when events keep coming
_RESYNC = object()  # queued to a watcher that must catch up from the stream itself
_CLOSE = object()  # queued to every watcher when the process shuts down


@dataclass(eq=False)
class Subscription:
    """One watcher: a thing's path, or a folder's (matching any depth below it)."""

    path: str
    folder: bool
    queue: queue.Queue[object] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))
    lagging: bool = False  # events were dropped: catch up from the stream before going on
    prefix: str = ""  # the API key's prefix: a watch above it shows only what lies under it

    def matches(self, path: str) -> bool:
        if not path.startswith(self.prefix):
            return False
        return path.startswith(self.path) if self.folder else path == self.path

    def offer(self, item: object) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            # Too slow to keep up: rather than grow without bound, make it re-read the stream.
            self.lagging = True


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as handed to watchers: its id as a comparable pair, and its SSE frame."""

    event: Event
    order: tuple[int, int]
    frame: bytes


class Hub:
    """The process's one feed reader and the watchers it serves."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._things: dict[str, set[Subscription]] = {}
        self._folders: dict[str, set[Subscription]] = {}
        self._thread: threading.Thread | None = None
        self._after = "0-0"
        self.closed = False

    @property
    def watchers(self) -> int:
        with self._lock:
            return sum(map(len, self._things.values())) + sum(map(len, self._folders.values()))

    def subscribe(self, path: str, folder: bool) -> Subscription:
        """Register a watcher. From this moment on it is handed every event the reader reads,
        and the reader reads from a position no later than now: nothing can fall between."""
        subscription = Subscription(path, folder)
        with self._lock:
            if self.closed:
                raise StorageUnavailable("the server is shutting down")
            if self._thread is None or not self._thread.is_alive():
                self._after = self.store.feed_position()
                self._thread = threading.Thread(target=self._run, name="feed-reader", daemon=True)
                self._thread.start()
            table = self._folders if folder else self._things
            table.setdefault(path, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            table = self._folders if subscription.folder else self._things
            group = table.get(subscription.path)
            if group is not None:
                group.discard(subscription)
                if not group:
                    del table[subscription.path]

    def close(self) -> None:
        with self._lock:
            self.closed = True
            everyone = [s for t in (self._things, self._folders) for g in t.values() for s in g]
        for subscription in everyone:
            subscription.offer(_CLOSE)

    def _run(self) -> None:
        while not self.closed:
            with self._lock:
                if not self._things and not self._folders:
                    # Nobody watching: stop reading; the next watcher starts a new reader.
                    self._thread = None
                    return
            try:
                events = self.store.read_feed(self._after, BLOCK_MS, BATCH)
            except Exception as error:  # noqa: BLE001 - the reader must outlive any error
                if self.closed:
                    return
                log.warning("change feed unreadable, watchers will catch up: %s", error)
                self._broadcast(_RESYNC)
                time.sleep(0.5)
                continue
            for event in events:
                self._dispatch(event)
            if events:
                self._after = events[-1].id

    def _dispatch(self, event: Event) -> None:
        with self._lock:
            targets = list(self._things.get(event.path, ()))
            # The folders holding the path, at every depth, the root ("") included.
            cut = len(event.path)
            while cut > 0:
                cut = event.path.rfind("/", 0, cut)
                folder = event.path[: cut + 1]
                targets.extend(self._folders.get(folder, ()))
                if cut < 0:
                    break
        if targets:
            # Framed once here, not once per watcher.
            delivery = Delivery(
                event,
                parse_event_id(event.id) or (0, 0),
                _frame(event.kind, event.id, event.path, event.thing),
            )
            for subscription in targets:
                subscription.offer(delivery)

    def _broadcast(self, item: object) -> None:
        with self._lock:
            everyone = [s for t in (self._things, self._folders) for g in t.values() for s in g]
        for subscription in everyone:
            subscription.offer(item)


class ExpiryListener:
    """Hears Redis expire a thing's key and records it as an `expire` event (idempotently)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.enabled = store.enable_expiry_notifications()
        self._stop = False
        self._wake_channel = f"{store.prefix}:wake:{uuid.uuid4().hex}"
        self._thread = threading.Thread(target=self._run, name="expiry-listener", daemon=True)
        if not self.enabled:
            log.warning(
                "Redis keyspace notifications are off and CONFIG SET is not allowed: expired "
                "things leave listings only when listed, and watchers hear of them only then. "
                "Set notify-keyspace-events to include 'Ex' on the Redis server."
            )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.store.listen_expired(self._record, lambda: self._stop, self._wake_channel)
        except Exception:  # noqa: BLE001 - a dying listener must say so, not vanish
            if not self._stop:
                log.exception("expiry listener failed")

    def _record(self, path: str) -> None:
        try:
            self.store.record_expiry(path)
        except StorageUnavailable as error:
            log.warning("could not record the expiry of %s: %s", path, error)

    def close(self, wait: bool = True) -> None:
        self._stop = True
        if self._thread.is_alive():
            self.store.wake(self._wake_channel)
            if wait:
                self._thread.join(2)


class Live:
    """The process's live parts: the feed reader and the expiry listener."""

    def __init__(self, store: Store, keepalive: float) -> None:
        self.hub = Hub(store)
        self.expiry = ExpiryListener(store)
        self.keepalive = keepalive

    def health(self) -> dict[str, object]:
        """For /_health: open watch streams in this process, and whether expiries are heard
        (False when Redis's keyspace notifications are off and could not be turned on)."""
        return {"watchers": self.hub.watchers, "expiry_events": self.expiry.enabled}

    def close(self) -> None:
        self.hub.close()
        self.expiry.close()

    def stop(self) -> None:
        """Like close, without waiting: safe in a signal handler."""
        self.hub.close()
        self.expiry.close(wait=False)


def init_app(app: Flask, store: Store, keepalive: float = 15.0) -> Live:
    live = Live(store, keepalive)
    live.expiry.start()
    app.extensions[_LIVE] = live
    return live


def live() -> Live:
    return current_app.extensions[_LIVE]


# -- Server-Sent Events -----------------------------------------------------------------------


def _frame(
    kind: str, event_id: str, path: str, thing: Thing | None, with_thing: bool = True
) -> bytes:
    data = b'{"path":' + documents.dumps(path)
    if with_thing:
        state = (
            documents.thing_json(thing.body, thing.ttl, thing.last_updated) if thing else b"null"
        )
        data += b',"thing":' + state
    return f"id: {event_id}\nevent: {kind}\n".encode() + b"data: " + data + b"}\n\n"


def _last_event_id() -> str | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if parse_event_id(raw) is None:
        raise Problem(
            400,
            "bad Last-Event-ID",
            "Last-Event-ID must be an event id this server sent (like 1700000000000-0)",
        )
    return raw


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
    try:
        opening = _opening(current.hub.store, subscription, resume)
    except BaseException:
        current.hub.unsubscribe(subscription)
        raise
    return Response(
        _events(current, subscription, opening),
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
    return _Opening([_frame("put", position, subscription.path, thing)], position, None)


def _catch_up(store: Store, subscription: Subscription, after: str) -> tuple[list[bytes], str]:
    """The frames a watcher missed after `after`, from the stream; a reset if they're gone."""
    frames: list[bytes] = []
    while True:
        backlog = store.feed_since(after, BATCH)
        if backlog.reset:
            thing = None if subscription.folder else store.get(subscription.path)
            frames.append(
                _frame("reset", backlog.position, subscription.path, thing, not subscription.folder)
            )
            return frames, backlog.position
        for event in backlog.events:
            if subscription.matches(event.path):
                frames.append(_frame(event.kind, event.id, event.path, event.thing))
        after = backlog.position
        if backlog.complete:
            return frames, after


def _events(current: Live, subscription: Subscription, opening: _Opening) -> Iterator[bytes]:
    hub, store = current.hub, current.hub.store
    metrics.WATCHES.inc()
    try:
        # Sent at once so the client knows the stream is open and subscribed.
        yield b": watching /" + subscription.path.encode("utf-8") + b"\n\n"
        yield from opening.frames
        position = opening.position
        if opening.resume is not None:
            frames, position = _catch_up(store, subscription, position)
            yield from frames
        seen = parse_event_id(position) or (0, 0)
        quiet_since = time.monotonic()
        while not hub.closed:
            wait = current.keepalive - (time.monotonic() - quiet_since)
            try:
                items = [subscription.queue.get(timeout=max(wait, 0.0))]
            except queue.Empty:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
                continue
            # Take whatever else is queued as well: a burst of events costs this thread one
            # wake-up and the client one write, not one per event.
            while len(items) < BATCH:
                try:
                    items.append(subscription.queue.get_nowait())
                except queue.Empty:
                    break
            out: list[bytes] = []
            for item in items:
                if item is _CLOSE:
                    yield b"".join(out)
                    return
                if item is _RESYNC or subscription.lagging:
                    subscription.lagging = False
                    frames, position = _catch_up(store, subscription, position)
                    seen = parse_event_id(position) or seen
                    out += frames
                    if item is _RESYNC:
                        continue
                assert isinstance(item, Delivery)
                if not subscription.matches(item.event.path):
                    continue  # outside the key's prefix
                if item.order <= seen:
                    continue  # already sent (from the opening read or a catch-up)
                seen, position = item.order, item.event.id
                out.append(item.frame)
            if out:
                yield b"".join(out)
                quiet_since = time.monotonic()
                # Under a stream of events, wake at most every MIN_INTERVAL: what arrives
                # meanwhile waits in the queue (no thread woken) and goes out in one write.
                # With hundreds of watchers this keeps the process's wake-ups bounded, so
                # ordinary requests stay prompt; an event after a quiet spell goes out at once.
                time.sleep(MIN_INTERVAL)
    except StorageUnavailable as error:
        # The client reconnects with the last id it got, and misses nothing.
        log.warning("watch of %s ended: %s", subscription.path, error)
    finally:
        metrics.WATCHES.dec()
        hub.unsubscribe(subscription)

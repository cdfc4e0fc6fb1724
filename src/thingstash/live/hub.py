"""Watching: the change feed as Server-Sent Events, and expiries turned into feed events.

Per serving process there is one feed reader (a thread doing XREAD BLOCK on the feed stream)
that appends each event once to a shared log per watched path, from which each watcher takes
what is past its cursor; so a thousand open streams cost one Redis connection, not a thousand,
and an event costs one append per watched path, not one hand-off per watcher. A watcher that
falls too far behind (its cursor trimmed away) or resumes with `Last-Event-ID` reads what it
missed from the stream itself, and gets a `reset` when that is no longer retained.

Per process there is also an expiry reaper: every REAP_EVERY_S it takes the things whose
lifetime ended from the store's expiry schedule, in bounded batches, and reaps them (gone from
Redis and from their folders, an `expire` event each), so expiries reach listings and watchers
within about a second whatever the store's size. Every process reaps; the scripts are
idempotent, and a thing's folder index entry is the guard that makes exactly one `expire` event.

The expiry listener (keyspace notifications, `expired` events) stays as the backstop for
things the schedule does not hold: written before the schedule existed, or, on a cluster, by a
write interrupted between the thing and its schedule entry. Redis expires those at its own
pace; each process hears it and records it with the same guard.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Flask, Response, current_app, request

from thingstash import documents
from thingstash.paths import Path
from thingstash.store.single import (
    Event,
    StorageUnavailable,
    Store,
    Thing,
    parse_event_id,
)
from thingstash.web import auth, metrics
from thingstash.web.errors import Problem

log = logging.getLogger(__name__)

_LIVE = "thingstash.live"
LOG_SIZE = 1000  # deliveries a group keeps for its slowest watcher before it must catch up
TRIM_EVERY = 64
BLOCK_MS = 1000
BATCH = 1000
MIN_INTERVAL = 0.1  # seconds between two writes to one stream, when events keep coming
RETRY_S = 0.5  # how often a stream tries the store again while it is away
REAP_EVERY_S = 0.5  # how often each process reaps what the expiry schedule says is due
# The last thing a stream sends when its key was revoked (or an open store closed): a comment,
# which clients ignore; the stream then ends, and a reconnect meets the 401.
REVOKED = b": access revoked\n\n"


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as handed to watchers: its id as a comparable pair, and its SSE frame."""

    event: Event
    order: tuple[int, int]
    frame: bytes


class Group:
    """The watchers of one path share one log of deliveries: the reader appends each event
    once, and each watcher takes the slice past its own cursor. Per event that is one append
    and one wake-up call, however many watch; per watcher, a slice and a join."""

    def __init__(self, path: str, folder: bool) -> None:
        self.path = path
        self.folder = folder
        self.cond = threading.Condition()
        self.log: list[Delivery] = []
        self.base = 0  # the absolute index of log[0]
        self.epoch = 0  # bumped when every watcher must catch up from the stream
        self.closed = False
        self.members: set[Subscription] = set()

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def append(self, delivery: Delivery) -> None:
        with self.cond:
            self.log.append(delivery)
            if len(self.log) % TRIM_EVERY == 0 or len(self.log) > LOG_SIZE:
                # Drop what every member has taken; past LOG_SIZE drop anyway: the watchers
                # that lag that far catch up from the stream (their cursor < base says so).
                taken = min((m.cursor for m in self.members), default=self.end) - self.base
                drop = max(taken, len(self.log) - LOG_SIZE)
                if drop > 0:
                    del self.log[:drop]
                    self.base += drop
            self.cond.notify_all()

    def wake(self, resync: bool = False, close: bool = False) -> None:
        with self.cond:
            self.epoch += resync
            self.closed = self.closed or close
            self.cond.notify_all()


@dataclass(eq=False)
class Subscription:
    """One watcher: a thing's path, or a folder's (matching any depth below it)."""

    group: Group
    cursor: int = 0  # the absolute index, in the group's log, of the next delivery to take
    epoch: int = 0
    prefix: str = ""  # the API key's prefix: a watch above it shows only what lies under it

    @property
    def path(self) -> str:
        return self.group.path

    @property
    def folder(self) -> bool:
        return self.group.folder

    def matches(self, path: str) -> bool:
        if not path.startswith(self.prefix):
            return False
        return path.startswith(self.path) if self.folder else path == self.path

    def take(self, timeout: float) -> tuple[list[Delivery], bool, bool] | None:
        """Wait up to `timeout` for deliveries: (deliveries, must catch up first, closed), or
        None when nothing came."""
        group = self.group
        with group.cond:
            if self.cursor == group.end and group.epoch == self.epoch and not group.closed:
                group.cond.wait(timeout)
            if group.closed:
                return [], False, True
            lagging = self.cursor < group.base or group.epoch != self.epoch
            if self.cursor == group.end and not lagging:
                return None
            taken = group.log[max(self.cursor - group.base, 0) :]
            self.cursor, self.epoch = group.end, group.epoch
            return taken, lagging, False


_UNKNOWN = object()
ORDER_MEMORY = 10_000  # paths whose latest event is remembered (about the feed's retention)


def _state(event: Event) -> str | None:
    """What an event says the thing is now: its version, or None (deleted, expired)."""
    return event.thing.version if event.thing is not None else None


class Ordering:
    """Drops the events that would show a watcher an older state of a thing last.

    On a cluster each write appends its event after the write, as a separate step, so two
    processes writing one thing at once can append their events in the other order than their
    writes. The thing's own key is the one place where its writes are ordered, so each batch
    of events is checked against it: an event whose state is the thing's current one is
    delivered; one that is not (superseded by a later write) is delivered only while the
    event of the current state has not been read yet (then it is an intermediate change of
    writes in order, and the current state's event is still to come), and dropped once it
    has (then it arrived out of order). Either way a watcher's last event for a thing shows
    its current state. Deletes and expiries count, with no state (None). Single Redis appends
    in the write's own script, so nothing is checked there.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.latest: dict[str, str | None] = {}  # path -> state of its latest event kept

    def keep(self, events: list[Event], watched: list[bool] | None = None) -> list[bool]:
        """For each event (in feed order), whether to deliver it. Events not `watched` (by
        anyone here) are only remembered: they are never delivered, and cost no read."""
        watched = watched or [True] * len(events)
        things = {e.path for e, w in zip(events, watched, strict=True) if w and e.kind != "reset"}
        current = self.store.versions(things) if things else {}
        kept = []
        for event, wanted in zip(events, watched, strict=True):
            if event.kind == "reset":
                kept.append(wanted)
                continue
            state = _state(event)
            if not wanted:
                self._remember(event.path, state)
                kept.append(False)
                continue
            now = current[event.path]
            keep = state == now or self.latest.get(event.path, _UNKNOWN) != now
            if keep:
                self._remember(event.path, state)
            kept.append(keep)
        return kept

    def _remember(self, path: str, state: str | None) -> None:
        self.latest.pop(path, None)  # re-inserted last: the oldest are dropped first
        self.latest[path] = state
        if len(self.latest) > ORDER_MEMORY:
            del self.latest[next(iter(self.latest))]


class Hub:
    """The process's one feed reader and the watchers it serves."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._things: dict[str, Group] = {}
        self._folders: dict[str, Group] = {}
        self._thread: threading.Thread | None = None
        self._after = "0-0"
        self._ordering = None if store.feed_in_order else Ordering(store)
        self.closed = False

    @property
    def watchers(self) -> int:
        with self._lock:
            return sum(len(g.members) for t in (self._things, self._folders) for g in t.values())

    def subscribe(self, path: str, folder: bool) -> Subscription:
        """Register a watcher. From this moment on it is handed every event the reader reads,
        and the reader reads from a position no later than now: nothing can fall between."""
        with self._lock:
            if self.closed:
                raise StorageUnavailable("the server is shutting down")
            if self._thread is None or not self._thread.is_alive():
                self.store.check_feed_node()  # what a later failover is told apart from
                self._after = self.store.feed_position()
                self._thread = threading.Thread(target=self._run, name="feed-reader", daemon=True)
                self._thread.start()
            table = self._folders if folder else self._things
            group = table.get(path)
            if group is None:
                group = table[path] = Group(path, folder)
            with group.cond:
                subscription = Subscription(group, group.end, group.epoch)
                group.members.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        group = subscription.group
        with self._lock:
            with group.cond:
                group.members.discard(subscription)
                empty = not group.members
            table = self._folders if group.folder else self._things
            if empty and table.get(group.path) is group:
                del table[group.path]

    def _groups(self) -> list[Group]:
        with self._lock:
            return [*self._things.values(), *self._folders.values()]

    def close(self) -> None:
        with self._lock:
            self.closed = True
        for group in self._groups():
            group.wake(close=True)

    def _run(self) -> None:
        troubled = False
        while not self.closed:
            with self._lock:
                if not self._things and not self._folders:
                    # Nobody watching: stop reading; the next watcher starts a new reader.
                    self._thread = None
                    return
            try:
                if troubled:
                    # Back after an error: if the feed's node failed over meanwhile, this
                    # appends the marker that resets watchers (events may have been lost).
                    self.store.check_feed_node()
                    troubled = False
                events = self.store.read_feed(self._after, BLOCK_MS, BATCH)
                # A failure here reads the batch again: watchers skip what they already have.
                self._dispatch(events)
            except Exception as error:  # noqa: BLE001 - the reader must outlive any error
                if self.closed:
                    return
                log.warning("change feed unreadable, watchers will catch up: %s", error)
                for group in self._groups():
                    group.wake(resync=True)
                troubled = True
                time.sleep(0.5)
                continue
            if events:
                self._after = events[-1].id

    def _targets(self, path: str) -> list[Group]:
        with self._lock:
            targets = [self._things[path]] if path in self._things else []
            # The folders holding the path, at every depth, the root ("") included.
            cut = len(path)
            while cut > 0:
                cut = path.rfind("/", 0, cut)
                group = self._folders.get(path[: cut + 1])
                if group is not None:
                    targets.append(group)
                if cut < 0:
                    break
        return targets

    def _dispatch(self, events: list[Event]) -> None:
        routed = [(event, self._targets(event.path)) for event in events]
        if self._ordering is not None:
            watched = [bool(targets) or event.kind == "reset" for event, targets in routed]
            keep = self._ordering.keep(events, watched)
            routed = [item for item, kept in zip(routed, keep, strict=True) if kept]
        for event, targets in routed:
            if event.kind == "reset":
                # The feed's node failed over: every watcher catches up from the stream,
                # which answers a reset to anyone whose position is before this marker.
                for group in self._groups():
                    group.wake(resync=True)
                continue
            # Framed once here, not once per watcher.
            delivery = Delivery(
                event,
                parse_event_id(event.id) or (0, 0),
                _frame(event.kind, event.id, event.path, event.thing),
            )
            for group in targets:
                group.append(delivery)


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
                "Redis keyspace notifications are off and CONFIG SET is not allowed: things "
                "the expiry schedule does not hold (written before it existed) leave listings "
                "only when listed, and watchers hear of them only then. Set "
                "notify-keyspace-events to include 'Ex' on the Redis server."
            )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.store.listen_expired(self._record, lambda: self._stop, self._wake_channel)
        except Exception:  # noqa: BLE001 - a dying listener must say so, not vanish
            if not self._stop:
                log.exception("expiry listener failed")

    def _record(self, paths: list[str]) -> None:
        try:
            self.store.record_expiries(paths)
        except StorageUnavailable as error:
            log.warning("could not record the expiry of %d things: %s", len(paths), error)

    def close(self, wait: bool = True) -> None:
        self._stop = True
        if self._thread.is_alive():
            self.store.wake(self._wake_channel)
            if wait:
                self._thread.join(2)


class ExpiryReaper:
    """Reaps, every REAP_EVERY_S, what the store's expiry schedule says is due."""

    def __init__(self, store: Store, every: float = REAP_EVERY_S) -> None:
        self.store = store
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="expiry-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # Processes started together would reap in step, each reading the same batch. (Not
        # the shared `random` state: a thread must not draw from it under a test's feet.)
        self._stop.wait(random.SystemRandom().uniform(0, self.every))
        troubled = False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                more = True
                while more and not self._stop.is_set():  # a burst: batch after batch
                    _, more = self.store.reap()
                troubled = False
            except Exception as error:  # noqa: BLE001 - the reaper must outlive any error
                if not troubled:  # said once per outage, not twice a second
                    log.warning("could not reap expired things, will retry: %s", error)
                troubled = True
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def close(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._thread.is_alive():
            self._thread.join(2)


class Live:
    """The process's live parts: the feed reader, the expiry reaper and listener."""

    def __init__(self, store: Store, keepalive: float) -> None:
        self.hub = Hub(store)
        self.reaper = ExpiryReaper(store)
        self.expiry = ExpiryListener(store)
        self.keepalive = keepalive

    def health(self) -> dict[str, object]:
        """For /_health: open watch streams in this process, and whether expiries are heard
        (False when Redis's keyspace notifications are off and could not be turned on)."""
        return {"watchers": self.hub.watchers, "expiry_events": self.expiry.enabled}

    def close(self) -> None:
        self.hub.close()
        self.reaper.close()
        self.expiry.close()

    def stop(self) -> None:
        """Like close, without waiting: safe in a signal handler."""
        self.hub.close()
        self.reaper.close(wait=False)
        self.expiry.close(wait=False)


def init_app(app: Flask, store: Store, keepalive: float = 15.0) -> Live:
    live = Live(store, keepalive)
    live.reaper.start()
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
    allowed = auth.still_allowed()
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
    return _Opening([_frame("put", position, subscription.path, thing)], position, None)


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
                _frame("reset", backlog.position, subscription.path, thing, not subscription.folder)
            )
            return frames, backlog.position
        matched = [event for event in backlog.events if subscription.matches(event.path)]
        if ordering is not None and matched:
            keep = ordering.keep(matched)
            matched = [event for event, kept in zip(matched, keep, strict=True) if kept]
        for event in matched:
            frames.append(_frame(event.kind, event.id, event.path, event.thing))
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

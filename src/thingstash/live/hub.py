"""The process's feed reader: one thread doing XREAD BLOCK (through the store) on the change
feed, appending each event once to a shared log per watched path, from which each watcher takes
what is past its cursor; so a thousand open streams cost one connection to the store, not a
thousand, and an event costs one append per watched path, not one hand-off per watcher. A
watcher that falls too far behind (its cursor trimmed away) reads what it missed from the feed
itself (web.watch), and gets a `reset` when that is no longer retained.

No Flask here: web.watch turns subscriptions into Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

from thingstash.core import documents
from thingstash.core.model import Event, StorageUnavailable, Thing, parse_event_id
from thingstash.core.store import Store, Things
from thingstash.live.waiting import Bell

log = logging.getLogger(__name__)

LOG_SIZE = 1000  # deliveries a group keeps for its slowest watcher before it must catch up
TRIM_EVERY = 64
BLOCK_MS = 1000
BATCH = 1000


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as handed to watchers: its id as a comparable pair, and its SSE frame."""

    event: Event
    order: tuple[int, int]
    frame: bytes


class Group:
    """The watchers of one path share one log of deliveries: the reader appends each event
    once, and each watcher takes the slice past its own cursor. Per event that is one append
    and one wake-up call, however many watch; per watcher, a slice and a join.

    A group watches a thing (its path), a folder (any depth below it), or a tree: the thing at
    its path, everything below it, and the things above it (`tree`, the path without a trailing
    slash, "" for the whole store): a Firebase location, whose value those make up."""

    def __init__(self, path: str, folder: bool, tree: bool = False) -> None:
        self.path = path
        self.folder = folder
        self.tree = tree
        self.cond = threading.Condition()
        self.log: list[Delivery] = []
        self.base = 0  # the absolute index of log[0]
        self.epoch = 0  # bumped when every watcher must catch up from the stream
        self.closed = False
        self.members: set[Subscription] = set()
        self.bells: dict[asyncio.AbstractEventLoop, Bell] = {}  # its watchers on event loops

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
            bells = list(self.bells.values()) if self.bells else ()
        for bell in bells:
            bell.ring()

    def wake(self, resync: bool = False, close: bool = False) -> None:
        with self.cond:
            self.epoch += resync
            self.closed = self.closed or close
            self.cond.notify_all()
            bells = list(self.bells.values())
        for bell in bells:
            bell.ring()

    def bell(self, loop: asyncio.AbstractEventLoop) -> Bell:
        with self.cond:
            bell = self.bells.get(loop)
            if bell is None:
                bell = self.bells[loop] = Bell(loop)
            return bell


# What a watcher takes: (deliveries, must catch up from the feed first, closed).
Taken = tuple[list[Delivery], bool, bool]


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

    @property
    def tree(self) -> bool:
        return self.group.tree

    def matches(self, path: str) -> bool:
        if not path.startswith(self.prefix):
            return False
        if self.tree:
            return in_tree(self.path, path)
        return path.startswith(self.path) if self.folder else path == self.path

    def take(self, timeout: float) -> Taken | None:
        """Wait up to `timeout` for deliveries: (deliveries, must catch up first, closed), or
        None when nothing came."""
        group = self.group
        with group.cond:
            if self.cursor == group.end and group.epoch == self.epoch and not group.closed:
                group.cond.wait(timeout)
            return self._taken()

    def take_now(self) -> Taken | None:
        """What a take would answer at once, without waiting."""
        with self.group.cond:
            return self._taken()

    def ready(self) -> bool:
        """Whether a take would answer at once."""
        group = self.group
        with group.cond:
            return group.closed or self.cursor != group.end or group.epoch != self.epoch

    def _taken(self) -> Taken | None:
        group = self.group
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

    def __init__(self, store: Things) -> None:
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
        self._trees: dict[str, Group] = {}
        # For each tree group, each path strictly above it: where a thing's event reaches it.
        self._trees_below: dict[str, set[Group]] = {}
        self._thread: threading.Thread | None = None
        self._after = "0-0"
        self._ordering = None if store.feed_in_order else Ordering(store)
        self.closed = False

    @property
    def watchers(self) -> int:
        with self._lock:
            return sum(len(g.members) for t in self._tables() for g in t.values())

    def _tables(self) -> tuple[dict[str, Group], ...]:
        return self._things, self._folders, self._trees

    def _table(self, group: Group) -> dict[str, Group]:
        return self._trees if group.tree else self._folders if group.folder else self._things

    def subscribe(self, path: str, folder: bool, tree: bool = False) -> Subscription:
        """Register a watcher. From this moment on it is handed every event the reader reads,
        and the reader reads from a position no later than now: nothing can fall between.
        With `tree`, `path` (no trailing slash; "" the whole store) is watched as a tree: the
        thing there, everything below, and the things above (see Group)."""
        with self._lock:
            if self.closed:
                raise StorageUnavailable("the server is shutting down")
            if self._thread is None or not self._thread.is_alive():
                self.store.check_feed_node()  # what a later failover is told apart from
                self._after = self.store.feed_position()
                self._thread = threading.Thread(target=self._run, name="feed-reader", daemon=True)
                self._thread.start()
            table = self._trees if tree else self._folders if folder else self._things
            group = table.get(path)
            if group is None:
                group = table[path] = Group(path, folder and not tree, tree)
                if tree:
                    for above in tree_ancestors(path):
                        self._trees_below.setdefault(above, set()).add(group)
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
            table = self._table(group)
            if empty and table.get(group.path) is group:
                del table[group.path]
                if group.tree:
                    for above in tree_ancestors(group.path):
                        below = self._trees_below.get(above)
                        if below is not None:
                            below.discard(group)
                            if not below:
                                del self._trees_below[above]

    def _groups(self) -> list[Group]:
        with self._lock:
            return [group for table in self._tables() for group in table.values()]

    def close(self) -> None:
        with self._lock:
            self.closed = True
        for group in self._groups():
            group.wake(close=True)

    def _run(self) -> None:
        troubled = False
        while not self.closed:
            with self._lock:
                if not any(self._tables()):
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
            if self._trees:
                # Trees at or above the path (its own path and each one above, "" last), then
                # trees below it (a thing above a watched location).
                cut = len(path)
                while True:
                    group = self._trees.get(path[:cut])
                    if group is not None:
                        targets.append(group)
                    if cut == 0:
                        break
                    cut = max(path.rfind("/", 0, cut), 0)
                targets.extend(self._trees_below.get(path, ()))
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
                frame(event.kind, event.id, event.path, event.thing),
            )
            for group in targets:
                group.append(delivery)


def frame(
    kind: str, event_id: str, path: str, thing: Thing | None, with_thing: bool = True
) -> bytes:
    data = b'{"path":' + documents.dumps(path)
    if with_thing:
        state = (
            documents.thing_json(thing.body, thing.ttl, thing.last_updated) if thing else b"null"
        )
        data += b',"thing":' + state
    return f"id: {event_id}\nevent: {kind}\n".encode() + b"data: " + data + b"}\n\n"


def tree_ancestors(path: str) -> list[str]:
    """The paths strictly above a tree's path, nearest first: "a/b/c" gives "a/b", "a"."""
    above = []
    cut = path.rfind("/")
    while cut > 0:
        above.append(path[:cut])
        cut = path.rfind("/", 0, cut)
    return above


def in_tree(tree: str, path: str) -> bool:
    """Whether a thing's event at `path` reaches a tree watched at `tree` (see Group)."""
    return tree == "" or path == tree or path.startswith(tree + "/") or tree.startswith(path + "/")

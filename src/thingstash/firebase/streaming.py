"""Reads (streams): Firebase streams as pure functions: which changes of things a stream of a
location shows, as which `put` events, and the Server-Sent Event frames (docs/firebase.md,
"Streams").

A stream listens at a location L (a tuple of keys, `()` the root). A change of the thing at P
(its write, delete or expiry in the change feed) is shown as
- `put` at "/" + the rest of P when P is at or below L, with the value there now;
- `put` at "/" with the value of L now, when P is strictly above L (L lies inside P);
- nothing otherwise.
The value is read again when the event is sent, not taken from the feed: a thing's value is its
data overlaid with the things below it, so only a read shows it whole, and a stream that sends
the state as it is now is right after any burst, whatever order the feed put it in.
(The stream itself sends less for writes into a thing at or above L: firebase/streamreads.py.)

Pure: stdlib and the core only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from thingstash.core import documents
from thingstash.firebase.mapping import Location

# Firebase's own interval between keep-alive events.
KEEPALIVE_S = 30.0
KEEPALIVE_FRAME = b"event: keep-alive\ndata: null\n\n"


def cancel_frame(reason: str) -> bytes:
    """A `cancel` event: the stream ends after it; `reason` says why (Firebase's text)."""
    return b"event: cancel\ndata: " + documents.dumps(reason) + b"\n\n"


# Sent when the stream's key is revoked or no longer covers the location; the stream then ends.
CANCEL_FRAME = cancel_frame("Permission denied")


def location_of(path: str) -> Location:
    """A thing's path ("a/b/c") as a location."""
    return tuple(path.split("/")) if path else ()


def event_location(listened: Location, changed: Location) -> Location | None:
    """Where, relative to the listened location, a change of the thing at `changed` is shown:
    `changed` less `listened` when it is at or below it, `()` when it is above it (the whole
    value changes), None when the change does not touch the listened value."""
    depth = len(listened)
    if changed[:depth] == listened:
        return changed[depth:]
    if listened[: len(changed)] == changed:
        return ()
    return None


def puts_for(listened: Location, changes: Iterable[tuple[str, str]]) -> list[tuple[Location, str]]:
    """The `put` events to send for changes `(event id, thing path)` in feed order: each as
    (location relative to `listened`, the id it carries). Each location once, at its last
    change; a location under one shown later is left out (that one's value holds it). Each put
    carries the id of the last change it shows, so the ids increase, and a client resuming
    from one misses nothing that was shown after it."""
    last: dict[Location, str] = {}
    for event_id, path in changes:
        shown = event_location(listened, location_of(path))
        if shown is not None:
            last.pop(shown, None)  # re-inserted last: the order of last changes
            last[shown] = event_id
    kept: list[tuple[Location, str]] = []
    later: set[Location] = set()
    for shown, event_id in reversed(last.items()):
        if not any(shown[:depth] in later for depth in range(len(shown))):
            kept.append((shown, event_id))
        later.add(shown)
    kept.reverse()
    return kept


def event_path(relative: Location) -> str:
    """A relative location as the `path` of an event: "/" and its keys."""
    return "/" + "/".join(relative)


def put_frame(relative: Sequence[str], data: bytes, event_id: str) -> bytes:
    """A `put` event: `data` is the JSON of the value there (b"null" when there is none)."""
    payload = b'{"path":' + documents.dumps(event_path(tuple(relative))) + b',"data":' + data + b"}"
    return b"event: put\nid: " + event_id.encode("ascii") + b"\ndata: " + payload + b"\n\n"


# At most this many places are sent for one change of the thing at or above a stream's
# location; past it the location's whole value is sent instead.
MAX_MEMBER_PUTS = 100


def member_changes(
    old: Any, new: Any, limit: int = MAX_MEMBER_PUTS
) -> list[tuple[Location, Any]] | None:
    """What changed between two states of an object, as (place relative to it, value now,
    None where it is gone), in key order: the deepest places whose values differ, going into
    members that are objects on both sides. None when either state is neither an object nor
    None (nothing), or when more than `limit` places changed: the caller sends it whole."""
    if not isinstance(old, dict | None) or not isinstance(new, dict | None):
        return None
    changes: list[tuple[Location, Any]] = []

    def compare(before: dict[str, Any], after: dict[str, Any], at: Location) -> bool:
        for key in sorted(before.keys() | after.keys()):
            was, now = before.get(key), after.get(key)
            if was == now:
                continue
            if isinstance(was, dict) and isinstance(now, dict):
                if not compare(was, now, (*at, key)):
                    return False
                continue
            changes.append(((*at, key), now))
            if len(changes) > limit:
                return False
        return True

    return changes if compare(old or {}, new or {}, ()) else None

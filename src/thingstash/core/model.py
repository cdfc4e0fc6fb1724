"""The shared vocabulary of thingstash: what a thing, a page, a change and a key are, and the
errors a store raises. The protocol every store keeps is `Store`, in core/store.py.

Core: stdlib and orjson only. The stores (thingstash.store) implement `Store` on Redis; HTTP
code (thingstash.web) maps the errors to problems.
"""

from __future__ import annotations

import binascii
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import getrandbits

import orjson

VERSION_LENGTH = 16


class StorageUnavailable(Exception):
    """Redis cannot be reached or cannot serve right now; the request may be retried."""


class StoreFull(Exception):
    """Redis refused a write because it is out of memory (its `maxmemory`); nothing was written."""


class PreconditionFailed(Exception):
    """A conditional write found another version; `current` is it (None when nothing exists)."""

    def __init__(self, current: str | None) -> None:
        super().__init__(current)
        self.current = current


class GuardChanged(Exception):
    """What a write's check read (its Guards) changed before the write could land: nothing was
    written; the caller checks again on what is stored now."""


class PartlyWritten(Exception):
    """`Store.write_together` on a Redis Cluster, which writes thing by thing: the change at
    index `done` found another version (`current`) after the changes before it were written.
    Those stay written; the caller computes the rest again from what is stored now. (One Redis
    writes all or nothing, and raises PreconditionFailed instead.)"""

    def __init__(self, done: int, current: str | None) -> None:
        super().__init__(done, current)
        self.done = done
        self.current = current


class TooLarge(Exception):
    """A write would store a thing of `size` bytes of JSON, over the store's limit of `limit`
    (THINGSTASH_MAX_BODY, checked on every write whatever made the JSON: a body, a merge, an
    increment); nothing was written."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(path, size, limit)
        self.path = path
        self.size = size
        self.limit = limit

    @property
    def detail(self) -> str:
        return f"the thing would be {self.size} bytes, over the limit of {self.limit}"


def check_size(path: str, body: bytes, limit: int) -> None:
    """Raise TooLarge when `body`, the JSON a write would store at `path`, is over `limit`."""
    if len(body) > limit:
        raise TooLarge(path, len(body), limit)


class ThingMissing(Exception):
    """The thing an operation needs, at `path`, does not exist."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class TooMuchContention(Exception):
    """A compare-and-set update of the thing at `path` kept losing to other writers."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def new_version(now_ms: int | None = None) -> str:
    """16 URL-safe characters: 6 bytes of time in ms, then 6 random bytes.

    The random bytes tell apart the versions of one millisecond; they guard nothing (anyone who
    reads a thing sees its version), so Python's own generator makes them (seeded by the OS,
    and again in each forked worker). os.urandom would make a getrandom() system call, which
    lets go of the GIL: under load another request's thread takes it, a thread switch on every
    write (bench/run.py: ~4% of PUT's req/s)."""
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    raw = now_ms.to_bytes(6, "big") + getrandbits(48).to_bytes(6, "big")
    # binascii directly: base64's wrappers cost several calls on every request.
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).decode("ascii")


def version_time_ms(version: str) -> int:
    return int.from_bytes(binascii.a2b_base64(version[:8].translate(_FROM_URLSAFE)), "big")


def version_times_s(prefixes: Sequence[bytes]) -> list[int]:
    """version_time_ms(v) // 1000 of many versions, each given by its first 8 characters (its
    time), in one go: a listing page's, ten times faster than one by one. 8 base64 characters
    are 6 bytes and decode alone; 4 more before each ("AAAA", 3 zero bytes) make 9, which
    ">xQ" reads as a zero byte and a 64-bit number."""
    if not prefixes:
        return []
    raw = binascii.a2b_base64((b"AAAA" + b"AAAA".join(prefixes)).translate(_FROM_URLSAFE_BYTES))
    return [ms // 1000 for ms in struct.unpack(">" + "xQ" * len(prefixes), raw)]


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")
_FROM_URLSAFE_BYTES = bytes.maketrans(b"-_", b"+/")


@dataclass(frozen=True, slots=True)
class Thing:
    """A stored thing: its version, its JSON object as bytes, and the ms of life it has left."""

    version: str
    body: bytes
    ttl_ms: int

    @property
    def last_updated(self) -> int:
        return version_time_ms(self.version) // 1000

    @property
    def ttl(self) -> int:
        """Seconds left, rounded up, so a thing just written shows the lifetime it was given."""
        return max(0, -(-self.ttl_ms // 1000))

    @classmethod
    def from_payload(cls, payload: bytes, ttl_ms: int) -> Thing:
        return cls(payload[:VERSION_LENGTH].decode("ascii"), payload[VERSION_LENGTH:], ttl_ms)


@dataclass(frozen=True, slots=True)
class Conditions:
    """Preconditions of a write, already parsed from HTTP: None (no condition), "*", or tags."""

    if_match: str | tuple[str, ...] | None = None
    if_none_match: str | tuple[str, ...] | None = None

    def if_match_holds(self, version: str | None) -> bool:
        """If-Match: something exists and, unless `*`, has one of the tags."""
        if self.if_match is None:
            return True
        return version is not None and (self.if_match == "*" or version in self.if_match)

    def if_none_match_holds(self, version: str | None) -> bool:
        """If-None-Match: nothing exists, or (unless `*`) it has none of the tags."""
        if self.if_none_match is None or version is None:
            return True
        return self.if_none_match != "*" and version not in self.if_none_match

    def holds_for(self, version: str | None) -> bool:
        return self.if_match_holds(version) and self.if_none_match_holds(version)


NO_CONDITIONS = Conditions()


@dataclass(frozen=True, slots=True)
class WriteResult:
    created: bool
    version: str
    ttl_ms: int
    event_id: str | None

    @property
    def last_updated(self) -> int:
        return version_time_ms(self.version) // 1000


@dataclass(frozen=True, slots=True)
class ThingWrite:
    """One thing's part of `Store.write_together`: `body` (a serialised JSON object) stored whole
    with a lifetime of `ttl_seconds` and logged as `event` ("put" or "patch"), or, with `body`
    None, the thing deleted (nothing to delete is no error). `conditions` are checked against
    the thing's version as the whole is written: `Conditions(if_match=(v,))` for "still the
    version v I computed this from", `Conditions(if_none_match="*")` for "still absent"."""

    path: str
    body: bytes | None
    ttl_seconds: int = 0
    conditions: Conditions = NO_CONDITIONS
    event: str = "put"


@dataclass(frozen=True, slots=True)
class Listing:
    """One folder listing a check read: `Store.list_names`' answer for (folder, after, limit)."""

    folder: str
    after: str | None
    limit: int
    names: tuple[str, ...]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Guards:
    """What a write's check read (the rules' data), to be unchanged as the write lands: the
    versions of things (None: absent) and folder listings. `Store.write_together` checks them
    in the step that writes (one Redis: under the same WATCH) and raises GuardChanged when one
    differs."""

    versions: tuple[tuple[str, str | None], ...] = ()
    listings: tuple[Listing, ...] = ()
    # A judged write made outside the judged writes' turn (Store.writing_turn): on one Redis it
    # waits, in the same WATCH, while another write holds the turn (so none lands between the
    # steps of a write of many steps).
    outside_turn: bool = False

    def __bool__(self) -> bool:
        return bool(self.versions or self.listings or self.outside_turn)


NO_GUARDS = Guards()
OUTSIDE_TURN = Guards(outside_turn=True)  # a judged write that read nothing


@dataclass(frozen=True, slots=True)
class ListedThing:
    """A thing as a listing shows it: Thing.ttl, Thing.last_updated, and its JSON when the page
    was read with values (else empty)."""

    ttl: int
    last_updated: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a folder: a thing (as listed) or a sub-folder (`thing` None)."""

    name: str
    thing: ListedThing | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a folder's listing: its things and its sub-folders, each in name order,
    with what a listing shows of each thing.

    In columns, not an object per entry: a page has up to 1,000 entries, and an object for
    each costs more CPU than the rest of the request (bench/hotpath.py)."""

    names: list[str]  # the things'
    ttls: list[int]  # each thing's Thing.ttl (seconds left, rounded up)
    last_updated: list[int]  # each thing's Thing.last_updated (unix seconds)
    bodies: list[bytes] | None  # each thing's JSON, when the page was read with values
    folders: list[str]  # the sub-folders' names, each ending in "/"
    next_cursor: str | None
    position: str = "0-0"  # the change feed's position, read no later than the entries

    @property
    def entries(self) -> list[Entry]:
        """The page entry by entry, in name order (Redis's: by UTF-8 bytes)."""
        bodies = self.bodies if self.bodies is not None else [b""] * len(self.names)
        things = [
            Entry(name, ListedThing(ttl, last_updated, body))
            for name, ttl, last_updated, body in zip(
                self.names, self.ttls, self.last_updated, bodies, strict=True
            )
        ]
        folders = [Entry(name, None) for name in self.folders]
        return sorted([*things, *folders], key=lambda entry: entry.name.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Event:
    """One change from the feed: `kind` is put, patch, delete or expire; `thing` the state
    written (None for delete and expire). `id` is the stream id, increasing with every change."""

    id: str
    kind: str
    path: str
    thing: Thing | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """The feed after a position: its events, or `reset` when some of them are no longer
    retained (or the position was never issued). `position` is where the backlog ends."""

    events: list[Event]
    reset: bool
    position: str
    complete: bool = True  # False when more events follow than were asked for


def parse_event_id(text: str) -> tuple[int, int] | None:
    """A stream id "ms-seq" as a pair that orders like the ids do, or None if malformed."""
    ms, dash, seq = text.partition("-")
    if not (dash and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()):
        return None
    if len(ms) > 20 or len(seq) > 20 or int(ms) >= 2**64 or int(seq) >= 2**64:
        return None
    return int(ms), int(seq)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: its id and the sha256 (hex) of the key, never the key."""

    id: str
    digest: str
    scope: str
    prefix: str
    created: int
    last_used: int | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"h": self.digest, "s": self.scope, "p": self.prefix, "c": self.created}
        )

    @classmethod
    def from_json(cls, key_id: str, raw: bytes, last_used: bytes | None = None) -> KeyRecord:
        data = orjson.loads(raw)
        return cls(
            key_id,
            data["h"],
            data["s"],
            data["p"],
            data["c"],
            int(last_used) if last_used else None,
        )


# Called with the error each time the store's backend fails under a store method (metrics count
# them); the stores themselves stay free of metrics and HTTP.
UNAVAILABLE_HOOKS: list[Callable[[Exception], None]] = []

"""The only module that talks to Redis: key layout, Lua scripts, and storage errors.

Layout (every key starts with the configurable namespace `ns`, default "ts"):

- `ns:t:{path}`: one string per thing, `version (16 chars) + JSON`, with the thing's lifetime as
  the key's own expiry. One key per thing keeps memory close to plain strings and makes every
  single-thing operation touch one Redis Cluster hash slot (the braces are the hash tag).
- `ns:f:{folder}`: a sorted set per folder, all scores 0, members the names directly inside it
  ("c" for a thing, "b/" for a sub-folder), so a listing page is a ZRANGE BYLEX, whatever the
  size of the store.
- `ns:x`: the expiry schedule, a sorted set of every thing's path scored by when its lifetime
  ends (unix ms), kept by the same scripts that write and delete things. Each service process
  reaps what is due every half second (watch.ExpiryReaper), so an expired thing leaves listings
  and reaches watchers as an `expire` event within about a second, whatever the store's size:
  Redis's own expiry finds keys only at its pace (a few hundred a second among many long-lived
  ones). On a Redis Cluster it is split in shards (ClusterStore).
- `ns:feed`: the change feed, a stream of `put`, `patch`, `delete` and `expire` events, trimmed
  to about the retention asked for.
- `ns:k`: API keys, a hash from key id to its record (JSON: sha256 of the key, scope, prefix,
  created); `ns:k:used` a hash from key id to when it was last used (unix seconds). The key
  itself is never stored. A handful of keys per store, so one hash each is enough.
  `ns:k:closed`: set when a key is first created (or any is revoked) and never expires: a store
  that has had a key stays closed after its last key is revoked, until `thingstash keys
  reopen` deletes it.
- `ns:rl:...`: the rate limiter's counters (written by the `limits` library, through the
  storage URI and prefix that `limiter_storage()` gives it).

Writes are one Lua script each: the precondition check, the write, the folder indexes and the
feed entry happen atomically in one round trip. The version is made here, not in Redis: the
time in ms and random bits, so an ETag never repeats even when a thing is deleted and made again.

Updates that depend on the stored JSON (merge patches, increments) are merged in Python and
written with a compare-and-set on the version (optimistic concurrency, retried on conflict):
Lua's cjson would lose number precision, so user JSON is never parsed inside Redis.
"""

from __future__ import annotations

import binascii
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import wraps
from importlib import resources
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterError,
    ConnectionError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TimeoutError,
    TryAgainError,
)
from redis.retry import Retry

from thingstash.config import MAX_PAGE_VALUE_BYTES

VERSION_LENGTH = 16
PUT_MANY_CHUNK = 500  # things per put_many.lua call (per pipelined step on a cluster)
REAP_BATCH = 500  # schedule entries per reap.lua call (per shard on a cluster)
# Reaped only this long after the schedule says: the score is taken before the write reaches
# Redis, so the key's own end is a round trip later (one found alive is due again next turn).
REAP_GRACE_MS = 20
EXPIRED_BATCH = 500  # expiry notifications handled in one batch (one round trip on one Redis)

# How long Redis may stay silent before a request gives up on it with a 503: a frozen Redis
# (stopped, not closed) must not hold requests for long, each keeping a place meanwhile. The
# timeout is per read from the socket, so a big reply that keeps flowing is never cut; and every
# command the service sends is short: a script writes at most one body (THINGSTASH_MAX_BODY,
# put_many in chunks of PUT_MANY_CHUNK things, a few ms), nothing walks a whole store in one
# call. 2 s is far above those, and with one attempt it answers within the 3 s a client should
# wait for a 503.
REPLY_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
# XREAD BLOCK waits at most this long, so that a quiet feed is never taken for a frozen Redis.
FEED_BLOCK_MAX_MS = int(REPLY_TIMEOUT_S * 1000) - 1000
# The rate limiter lets a request through when Redis doesn't answer (ratelimit.py): it may use
# only a little of the budget, the store's own call then answers the 503.
LIMITER_TIMEOUT_S = 0.5
_CAS_ATTEMPTS = 100

P = ParamSpec("P")
R = TypeVar("R")

# Errors that mean "Redis cannot serve this right now", answered 503 + Retry-After. The cluster
# ones arrive during a failover (no primary for a slot yet, slots moving, cluster down) after
# the cluster client has used up its own retries and topology refreshes.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    ClusterError,  # ClusterDownError, MasterDownError, "TTL exhausted"
    TryAgainError,
    AskError,  # MovedError too: redirections left over when the retries ran out
    RedisClusterException,  # SlotNotCoveredError, no reachable node
)


class StorageUnavailable(Exception):
    """Redis cannot be reached or cannot serve right now; the request may be retried."""


class PreconditionFailed(Exception):
    """A conditional write found another version; `current` is it (None when nothing exists)."""

    def __init__(self, current: str | None) -> None:
        super().__init__(current)
        self.current = current


class ThingMissing(Exception):
    """The thing an operation needs does not exist."""


class TooMuchContention(Exception):
    """A compare-and-set update kept losing to other writers."""


# Called with the error each time Redis fails under a store method (metrics count them); storage
# itself stays free of metrics and HTTP.
UNAVAILABLE_HOOKS: list[Callable[[Exception], None]] = []


def _unavailable_on_redis_errors(func: Callable[P, R]) -> Callable[P, R]:
    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UNAVAILABLE_ERRORS as error:
            for hook in UNAVAILABLE_HOOKS:
                hook(error)
            raise StorageUnavailable(str(error)) from error

    return wrapper


def new_version(now_ms: int | None = None) -> str:
    """16 URL-safe characters: 6 bytes of time in ms, then 6 random bytes."""
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    raw = now_ms.to_bytes(6, "big") + os.urandom(6)
    # binascii directly: base64's wrappers cost several calls on every request.
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).decode("ascii")


def version_time_ms(version: str) -> int:
    return int.from_bytes(binascii.a2b_base64(version[:8].translate(_FROM_URLSAFE)), "big")


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")


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


def _encode_condition(condition: str | tuple[str, ...] | None) -> str:
    if condition is None:
        return ""
    if condition == "*":
        return "*"
    # Only tags shaped like our versions can ever match; the rest are dropped, and a list left
    # empty becomes "," which matches nothing (so an If-Match of only foreign tags fails).
    tags = [t for t in condition if len(t) == VERSION_LENGTH and "," not in t]
    return "," + ",".join(tags) + ","


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
class Entry:
    """One name in a folder: a thing (with its state) or a sub-folder (`thing` None)."""

    name: str
    thing: Thing | None


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    next_cursor: str | None
    position: str = "0-0"  # the change feed's position, read no later than the entries


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


def _id(text: str) -> tuple[int, int]:
    return parse_event_id(text) or (0, 0)


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    payload = fields.get(b"d")
    thing = Thing.from_payload(payload, int(fields.get(b"t", b"0"))) if payload else None
    return Event(entry_id.decode(), fields[b"e"].decode(), fields[b"p"].decode("utf-8"), thing)


def backlog_from(
    wanted: tuple[int, int], after: str, state: list | None, entries: list, count: int
) -> Backlog:
    """A Backlog from the feed's state (feed_state.lua) and XRANGE from `after` inclusive
    (up to count + 1 entries). A reset when events after `after` may be missing:
    - the feed is gone (flushed) or `after` is later than anything it ever held;
    - it was trimmed past `after`;
    - `after` is within what the feed holds but is not there: an entry is never removed from
      the middle of the stream, so it was lost (a failover of the feed's node to a replica
      that never got it, a restart without it) or never issued;
    - a `reset` marker follows it: written when the feed's node failed over (events appended
      just before may be lost even though `after` was kept; ClusterStore.check_feed_node).
    """
    if state is None:  # no feed at all: nothing ever happened (or the store was flushed)
        return Backlog([], wanted != (0, 0), "0-0")
    last, first, added, length = state
    last = last.decode()
    if wanted > _id(last):
        return Backlog([], True, last)
    trimmed = added < 0 or added > length
    if trimmed and wanted < _id(first.decode()):
        return Backlog([], True, last)
    if wanted != (0, 0):
        if not entries or _id(entries[0][0].decode()) != wanted:
            return Backlog([], True, last)
        entries = entries[1:]
    entries = entries[:count]
    events = [_event(entry_id, fields) for entry_id, fields in entries]
    if any(event.kind == "reset" for event in events):
        return Backlog([], True, last)
    position = events[-1].id if events else after
    return Backlog(events, False, position, len(events) < count)


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


def _load_script(name: str) -> str:
    return resources.files("thingstash.store").joinpath("scripts", name).read_text("utf-8")


def ancestry(path: str) -> Iterator[tuple[str, str]]:
    """(folder, name in it) from the parent up to the root: "a/b/c" gives
    ("a/b/", "c"), ("a/", "b/"), ("", "a/"). A folder path ("a/b/") starts at ("a/", "b/")."""
    rest = path[:-1] if path.endswith("/") else path
    name = path[len(rest[: rest.rfind("/") + 1]) :]
    while rest:
        cut = rest.rfind("/")
        folder = rest[: cut + 1]
        yield folder, name
        rest = folder[:-1]
        name = rest[rest.rfind("/") + 1 :] + "/" if rest else ""


def connect(url: str) -> redis.Redis:
    """A client for `url` that retries briefly on connection errors, then lets them surface.

    A URL naming a node of a Redis Cluster gives a RedisCluster client of the whole cluster
    (it speaks the same commands; keys are routed to their slot's node).
    """
    client = redis.Redis.from_url(
        url,
        socket_timeout=REPLY_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        # A dropped connection (Redis restarted) is retried on a new one at once. A timeout is
        # not: a Redis that did not answer for REPLY_TIMEOUT_S will not answer the next attempt
        # either, and a script that timed out may have run, so sending it again could repeat it.
        retry=Retry(
            ExponentialBackoff(cap=0.1, base=0.01), retries=2, supported_errors=(ConnectionError,)
        ),
        health_check_interval=30,
    )
    if not is_cluster(client):
        return client
    client.close()
    return connect_cluster(url)


def is_cluster(client: redis.Redis) -> bool:
    """Whether the server is a node of a Redis Cluster (CLUSTER INFO answers only there).

    When the server cannot be reached at all, it is taken for a single Redis: requests answer
    503 until it is back, and a restart detects a cluster once one of its nodes answers.
    """
    try:
        info = client.execute_command("CLUSTER INFO")
    except ResponseError:
        return False  # "cluster support disabled"
    except (ConnectionError, TimeoutError, OSError):
        return False
    if isinstance(info, dict):  # redis-py parses the reply into a dict
        return "cluster_state" in info
    return b"cluster_state:" in info if isinstance(info, bytes) else "cluster_state:" in info


def connect_cluster(url: str) -> RedisCluster:
    """A client of the whole cluster `url` belongs to. During a failover it retries (refreshing
    its map of slots) for about two seconds, then lets the error surface as a 503."""
    # A cluster has only database 0: drop a "/0" path rather than have it refused.
    parts = urlsplit(url)
    return RedisCluster.from_url(
        urlunsplit((parts.scheme, parts.netloc, "", parts.query, "")),
        # The cluster client retries a timeout too (redis-py's choice: it may mean a failover),
        # so a frozen node answers 503 only after its retries, unless the cluster fails it over.
        socket_timeout=REPLY_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=6),
        health_check_interval=30,
    )


def limiter_options(prefix: str) -> dict[str, Any]:
    """The `limits` library's storage options: its keys under `ns:rl`, and timeouts (it opens
    its own connection, without any by default, and would wait for a frozen Redis for ever)."""
    return {
        "key_prefix": f"{prefix}:rl",
        "socket_timeout": LIMITER_TIMEOUT_S,
        "socket_connect_timeout": LIMITER_TIMEOUT_S,
    }


class Store:
    """Things in Redis. Methods raise the storage errors above, never HTTP ones."""

    # Each write appends its event in the same script: the feed has one thing's events in the
    # order of its writes. (Not so on a cluster: ClusterStore.)
    feed_in_order = True

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "ts",
        feed_retention: int = 10_000,
        url: str | None = None,
    ):
        self.client = client
        self.url = url
        self.prefix = prefix
        self.feed_retention = str(feed_retention)
        self.feed_key = f"{prefix}:feed"
        self._get = client.register_script(_load_script("get.lua"))
        self._get_many = client.register_script(_load_script("get_many.lua"))
        self._put = client.register_script(_load_script("put.lua"))
        self._put_many = client.register_script(_load_script("put_many.lua"))
        self._delete = client.register_script(_load_script("delete.lua"))
        self._position = client.register_script(_load_script("position.lua"))
        self._feed_state = client.register_script(_load_script("feed_state.lua"))
        self._expire = client.register_script(_load_script("expire.lua"))
        self._purge = client.register_script(_load_script("purge.lua"))
        self._prune = client.register_script(_load_script("prune.lua"))
        self._reap = client.register_script(_load_script("reap.lua"))

    # -- keys ---------------------------------------------------------------------------------

    def thing_key(self, path: str) -> str:
        return f"{self.prefix}:t:{{{path}}}"

    def folder_key(self, folder: str) -> str:
        return f"{self.prefix}:f:{{{folder}}}"

    def schedule_key(self, path: str) -> str:
        """The expiry schedule (the shard holding `path`'s entry, on a cluster)."""
        return f"{self.prefix}:x"

    def _indexed_keys(self, path: str) -> tuple[list[str], list[str]]:
        """KEYS and the index names for a write script: thing, feed, expiry schedule, then the
        folder indexes."""
        keys = [self.thing_key(path), self.feed_key, self.schedule_key(path)]
        names = []
        for folder, name in ancestry(path):
            keys.append(self.folder_key(folder))
            names.append(name)
        return keys, names

    # -- things -------------------------------------------------------------------------------

    @_unavailable_on_redis_errors
    def get(self, path: str) -> Thing | None:
        found = self._get(keys=[self.thing_key(path)])
        if found is None:
            return None
        payload, ttl_ms = found
        return Thing.from_payload(payload, ttl_ms)

    @_unavailable_on_redis_errors
    def put(
        self,
        path: str,
        body: bytes,
        ttl_seconds: int,
        conditions: Conditions = NO_CONDITIONS,
        event: str = "put",
        version: str | None = None,
    ) -> WriteResult:
        """Store `body` (a serialised JSON object) at `path`, replacing any thing there whole."""
        now_ms = time.time_ns() // 1_000_000
        version = version or new_version(now_ms)
        ttl_ms = ttl_seconds * 1000
        keys, names = self._indexed_keys(path)
        args = self._put_args(
            conditions, version.encode("ascii") + body, ttl_ms, event, path, now_ms + ttl_ms
        )
        status, detail = self._put(keys=keys, args=[*args, *names])
        if status == 0:
            raise PreconditionFailed(detail.decode("ascii") if detail else None)
        return WriteResult(status == 1, version, ttl_ms, detail.decode() if detail else None)

    @_unavailable_on_redis_errors
    def put_many(
        self, things: Sequence[tuple[str, bytes, int]], chunk: int = PUT_MANY_CHUNK
    ) -> list[WriteResult]:
        """Store many things, each `(path, body, ttl seconds)` exactly as put() stores one
        (version, lifetime, folder indexes, a `put` event), in order.

        A chunk of `chunk` things is one put_many.lua call (one round trip, atomic); the whole
        is not: a failure part way leaves the earlier chunks written (writing them again is
        harmless). On a Redis Cluster, ClusterStore writes a chunk in put()'s steps."""
        results: list[WriteResult] = []
        for start in range(0, len(things), chunk):
            results.extend(self._put_chunk(things[start : start + chunk]))
        return results

    def _put_chunk(self, things: Sequence[tuple[str, bytes, int]]) -> list[WriteResult]:
        """One put_many.lua call: the things, then each folder index once with all its new
        names (siblings share their ancestors, so most of put.lua's ZADDs would repeat)."""
        keys = [self.feed_key, self.schedule_key("")]
        args: list[str | bytes | int] = [len(things), self.feed_retention]
        written = []
        folders: dict[str, dict[str, None]] = {}  # index -> names, ordered and without repeats
        for path, body, ttl_seconds in things:
            now_ms = time.time_ns() // 1_000_000
            version = new_version(now_ms)
            ttl_ms = ttl_seconds * 1000
            keys.append(self.thing_key(path))
            args += (version.encode("ascii") + body, ttl_ms, path, now_ms + ttl_ms)
            written.append((version, ttl_ms))
            for folder, name in ancestry(path):
                names = folders.setdefault(folder, {})
                if name in names:
                    break  # and so is everything above it
                names[name] = None
        for folder, names in folders.items():
            keys.append(self.folder_key(folder))
            args += (len(names), *names)
        reply = self._put_many(keys=keys, args=args)
        return [
            WriteResult(reply[2 * i] == 1, version, ttl_ms, reply[2 * i + 1].decode())
            for i, (version, ttl_ms) in enumerate(written)
        ]

    def _put_args(
        self,
        conditions: Conditions,
        payload: bytes,
        ttl_ms: int,
        event: str,
        path: str,
        expires_at_ms: int,
    ) -> list[str | bytes | int]:
        """put.lua's ARGV before the index names (see its header)."""
        return [
            _encode_condition(conditions.if_match),
            _encode_condition(conditions.if_none_match),
            payload,
            ttl_ms,
            event,
            path,
            self.feed_retention,
            expires_at_ms,
        ]

    @_unavailable_on_redis_errors
    def delete(self, path: str, conditions: Conditions = NO_CONDITIONS) -> str | None:
        """Delete the thing at `path`; return the feed event id. Raises ThingMissing."""
        keys, names = self._indexed_keys(path)
        reply = self._delete(
            keys=keys,
            args=[_encode_condition(conditions.if_match), path, self.feed_retention, *names],
        )
        if reply[0] == -1:
            raise ThingMissing(path)
        if reply[0] == 0:
            raise PreconditionFailed(reply[1].decode("ascii") if reply[1] else None)
        return reply[1].decode() if reply[1] else None

    def update(
        self,
        path: str,
        change: Callable[[Thing | None], tuple[bytes, int]],
        conditions: Conditions = NO_CONDITIONS,
        event: str = "patch",
    ) -> tuple[WriteResult, bytes]:
        """Read-modify-write: `change(current)` returns (new body, ttl seconds) and may raise.

        The write succeeds only if the thing still has the version that was read (or is still
        absent); otherwise it is read again and `change` runs again. The caller's own
        preconditions are checked against each version read, so they hold for the one written.
        """
        for attempt in range(_CAS_ATTEMPTS):
            current = self.get(path)
            version = current.version if current else None
            if not conditions.holds_for(version):
                raise PreconditionFailed(version)
            body, ttl_seconds = change(current)
            expected = Conditions(if_match=(version,)) if version else Conditions(if_none_match="*")
            try:
                return self.put(path, body, ttl_seconds, expected, event), body
            except PreconditionFailed:
                # Another writer got in between: back off a little, randomly, to spread retries.
                time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
        raise TooMuchContention(path)

    # -- folders ------------------------------------------------------------------------------

    @_unavailable_on_redis_errors
    def list_folder(
        self,
        folder: str,
        after: str | None,
        limit: int,
        values: bool = False,
        max_value_bytes: int = MAX_PAGE_VALUE_BYTES,
    ) -> Page:
        """Up to `limit` entries directly in `folder`, by name, after the name `after`.

        Each thing's JSON is read only with `values` (otherwise its `body` is empty), and then
        only while the page's JSON stays within `max_value_bytes`: past it the page ends early,
        with a cursor, so one page of big things cannot take a worker's (or Redis's) memory.
        The first thing is always read, whatever its size.

        Two round trips whatever the store's size: the feed position and a ZRANGE BYLEX of the
        folder's index (position first, so a watch from it misses nothing the page lacks), then
        the things named. An indexed thing that is gone has expired without its notification
        being handled yet (the server was down, say): it is left out, recorded as expired
        (which repairs the index), and the page is read once more to fill its place.
        """
        index = self.folder_key(folder)
        start = b"(" + after.encode("utf-8") if after else b"-"
        position = None
        for _ in range(2):
            pipe = self.client.pipeline(transaction=False)
            self._position(keys=[self.feed_key], client=pipe)
            pipe.zrange(index, start, b"+", bylex=True, offset=0, num=limit + 1)
            page_position, names = pipe.execute()
            position = position or page_position.decode()
            more = len(names) > limit
            names = names[:limit]
            things = [n for n in names if not n.endswith(b"/")]
            found: dict[bytes, Thing | None] = {}
            if things:
                # One script call for the page: a pipeline of a call per thing costs ten times
                # the CPU in the client (and a SCRIPT EXISTS round trip).
                reply = self._get_many(
                    keys=[self.thing_key(folder + n.decode()) for n in things],
                    args=[b"values" if values else b"versions", max_value_bytes],
                )
                read = len(reply) // 2
                if read < len(things):  # the byte budget ends the page before things[read]
                    names, more = names[: names.index(things[read])], True
                    things = things[:read]
                for i, name in enumerate(things):
                    payload, ttl_ms = reply[2 * i], reply[2 * i + 1]
                    found[name] = Thing.from_payload(payload, ttl_ms) if payload else None
            gone = [name for name in things if found[name] is None]
            if not gone:
                break
            for name in gone:
                self.record_expiry(folder + name.decode())
        entries = [
            Entry(name.decode(), None if name.endswith(b"/") else found[name])
            for name in names
            if name.endswith(b"/") or found[name] is not None
        ]
        return Page(entries, names[-1].decode() if more else None, position or "0-0")

    @_unavailable_on_redis_errors
    def delete_tree(self, folder: str, batch: int = 500) -> int:
        """Delete every thing below `folder` (at any depth); return how many were deleted.

        Walks the folder indexes depth first, a bounded batch of names per script call, never
        the keyspace. Each thing deleted gets a `delete` event; folders left empty are dropped
        from their parents. Things written meanwhile may survive: there is no global lock.
        """
        deleted = 0
        stack: list[tuple[str, bytes]] = [(folder, b"-")]
        while stack:
            current, start = stack.pop()
            names = self.client.zrange(
                self.folder_key(current), start, b"+", bylex=True, offset=0, num=batch
            )
            if not names:
                self._prune_folder(current)
                continue
            things = [n.decode() for n in names if not n.endswith(b"/")]
            if things:
                deleted += self._purge(
                    keys=[
                        self.folder_key(current),
                        self.feed_key,
                        self.schedule_key(current),
                        *(self.thing_key(current + name) for name in things),
                    ],
                    args=[current, self.feed_retention, *things],
                )
            # Come back for the rest of this folder after its sub-folders in this batch.
            stack.append((current, b"(" + names[-1]))
            stack.extend((current + n.decode(), b"-") for n in reversed(names) if n.endswith(b"/"))
        return deleted

    def _prune_folder(self, folder: str) -> None:
        if not folder:
            return
        keys = [self.folder_key(folder)]
        names = []
        for parent, name in ancestry(folder):
            keys.append(self.folder_key(parent))
            names.append(name)
        self._prune(keys=keys, args=names)

    # -- change feed --------------------------------------------------------------------------

    @_unavailable_on_redis_errors
    def feed_position(self) -> str:
        """The id of the last change ever logged ("0-0" before the first)."""
        return self._position(keys=[self.feed_key]).decode()

    @_unavailable_on_redis_errors
    def position_and_get(self, path: str) -> tuple[str, Thing | None]:
        """The feed position, then the thing: a watch that starts from this state and this
        position sees every later change (and perhaps one it already has, never a gap)."""
        pipe = self.client.pipeline(transaction=False)
        self._position(keys=[self.feed_key], client=pipe)
        self._get(keys=[self.thing_key(path)], client=pipe)
        position, found = pipe.execute()
        return position.decode(), Thing.from_payload(*found) if found is not None else None

    @_unavailable_on_redis_errors
    def feed_since(self, after: str, count: int = 1000) -> Backlog:
        """Up to `count` events after the id `after`, or a reset when the feed no longer holds
        all of them (trimmed past the retention), `after` was never issued (a later id, or a
        feed that has since been emptied), or the feed may have lost events since (see
        backlog_from)."""
        wanted = parse_event_id(after)
        if wanted is None:
            raise ValueError(f"not a feed position: {after!r}")
        pipe = self.client.pipeline(transaction=False)
        self._feed_state(keys=[self.feed_key], client=pipe)
        # From `after` itself: that it is still there is part of the answer.
        pipe.xrange(self.feed_key, after, "+", count=count + 1)
        state, entries = pipe.execute()
        return backlog_from(wanted, after, state, entries, count)

    def check_feed_node(self) -> None:
        """On a cluster: notice a failover of the feed's node (see ClusterStore); a single
        Redis has nothing to notice."""

    @_unavailable_on_redis_errors
    def read_feed(self, after: str, block_ms: int, count: int = 1000) -> list[Event]:
        """Events after `after`, waiting up to `block_ms` for the first one (XREAD BLOCK)."""
        block_ms = min(block_ms, FEED_BLOCK_MAX_MS)
        reply = self.client.xread({self.feed_key: after}, count=count, block=block_ms)
        if not reply:
            return []
        return [_event(entry_id, fields) for entry_id, fields in reply[0][1]]

    @_unavailable_on_redis_errors
    def versions(self, paths: Iterable[str]) -> dict[str, str | None]:
        """The current version of each thing (None when it does not exist), one batch: what
        watchers check a cluster's events against (watch.Ordering)."""
        paths = list(paths)
        if not paths:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            pipe.getrange(self.thing_key(path), 0, VERSION_LENGTH - 1)
        return {
            path: raw.decode("ascii") if raw else None
            for path, raw in zip(paths, pipe.execute(), strict=True)
        }

    # -- expiry -------------------------------------------------------------------------------

    @_unavailable_on_redis_errors
    def record_expiry(self, path: str) -> str | None:
        """Log an `expire` event for a thing gone by expiry and drop it from the indexes; None
        when there is nothing to do (already recorded by another process, or written again)."""
        keys, names = self._indexed_keys(path)
        reply = self._expire(keys=keys, args=[path, self.feed_retention, *names])
        return reply.decode() if reply else None

    @_unavailable_on_redis_errors
    def record_expiries(self, paths: Sequence[str]) -> int:
        """record_expiry for many things, one pipelined batch; how many events were logged."""
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            keys, names = self._indexed_keys(path)
            self._expire(keys=keys, args=[path, self.feed_retention, *names], client=pipe)
        return sum(1 for reply in pipe.execute() if reply)

    @_unavailable_on_redis_errors
    def reap(self, now_ms: int | None = None, batch: int = REAP_BATCH) -> tuple[int, bool]:
        """Reap up to `batch` things whose lifetime ended by `now_ms` (by default now, less
        REAP_GRACE_MS), in one atomic script: each gone from Redis (its memory freed), from its
        folder indexes (empty folders pruned) and logged as an `expire` event, once however many
        processes reap at the same time. A thing written again since it was due is left alone.
        Returns (expire events logged, whether more may be due)."""
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000 - REAP_GRACE_MS
        schedule = self.schedule_key("")
        due = self.client.zrangebyscore(schedule, "-inf", now_ms, start=0, num=batch)
        if not due:
            return 0, False
        keys = [schedule, self.feed_key]
        args: list[str | bytes | int] = [now_ms, self.feed_retention]
        for raw in due:
            path = raw.decode("utf-8")
            keys.append(self.thing_key(path))
            args += (path, 0)
            depth_at = len(args) - 1
            for folder, name in ancestry(path):
                keys.append(self.folder_key(folder))
                args.append(name)
            args[depth_at] = len(args) - depth_at - 1
        return int(self._reap(keys=keys, args=args)), len(due) == batch

    def enable_expiry_notifications(self) -> bool:
        """Make sure Redis publishes expiry events ("Ex"); turn them on when allowed.
        False when they are off and cannot be turned on (CONFIG refused, e.g. on a managed
        Redis): expiries then reach listings lazily, and watchers only through them."""
        try:
            flags = self.client.config_get("notify-keyspace-events").get(
                "notify-keyspace-events", ""
            )
            if isinstance(flags, bytes):
                flags = flags.decode()
            if "E" in flags and ("x" in flags or "A" in flags):
                return True
            wanted = "".join(sorted(set(flags) | {"E", "x"}))
            self.client.config_set("notify-keyspace-events", wanted)
            return True
        except redis.RedisError:
            return False

    def expiry_channel(self) -> str:
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return f"__keyevent@{db}__:expired"

    def path_of_thing_key(self, key: bytes) -> str | None:
        """The path of a thing key of this namespace, None for any other key."""
        head = f"{self.prefix}:t:{{".encode()
        if not key.startswith(head) or not key.endswith(b"}"):
            return None
        try:
            return key[len(head) : -1].decode("utf-8")
        except UnicodeDecodeError:
            return None

    def expired_paths(
        self, pubsub: redis.client.PubSub, wait: float, wake_channel: str
    ) -> list[str]:
        """The paths of the things expired in the notifications waiting on `pubsub` (up to
        EXPIRED_BATCH, waiting up to `wait` for the first): they come in bursts, and each
        process hears every one (the reaper's too), so they are handled a batch at a time."""
        paths: list[str] = []
        message = pubsub.get_message(timeout=wait)
        while message is not None and len(paths) < EXPIRED_BATCH:
            if message["channel"] != wake_channel.encode():
                path = self.path_of_thing_key(message["data"])
                if path is not None:
                    paths.append(path)
            message = pubsub.get_message(timeout=0)
        return paths

    def listen_expired(
        self,
        handle: Callable[[list[str]], None],
        stopped: Callable[[], bool],
        wake_channel: str,
    ) -> None:
        """Call `handle(paths)` with the things of this namespace that expire, a batch at a
        time, until `stopped()`; a message on `wake_channel` makes it look at `stopped()` at
        once. Reconnects by itself when Redis goes away."""
        while not stopped():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.expiry_channel(), wake_channel)
                while not stopped():
                    paths = self.expired_paths(pubsub, 5.0, wake_channel)
                    if paths:
                        handle(paths)
            except (ConnectionError, TimeoutError, BusyLoadingError, OSError, StorageUnavailable):
                if not stopped():
                    time.sleep(0.5)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass

    def wake(self, channel: str) -> None:
        try:
            self.client.publish(channel, b"")
        except redis.RedisError:
            pass

    # -- API keys -----------------------------------------------------------------------------

    @property
    def keys_key(self) -> str:
        return f"{self.prefix}:k"

    @property
    def keys_used_key(self) -> str:
        return f"{self.prefix}:k:used"

    @property
    def closed_key(self) -> str:
        return f"{self.prefix}:k:closed"

    @_unavailable_on_redis_errors
    def key_count(self) -> int:
        return int(self.client.hlen(self.keys_key))

    @_unavailable_on_redis_errors
    def is_closed(self) -> bool:
        """Whether requests need a key: a key exists, or one did (the marker). One EXISTS:
        stores from before the marker count as closed by their keys."""
        return int(self.client.exists(self.keys_key, self.closed_key)) > 0

    @_unavailable_on_redis_errors
    def reopen(self) -> bool:
        """Open a store that has no key left (the operator's deliberate act); False while
        keys exist."""
        if self.key_count() > 0:
            return False
        self.client.delete(self.closed_key)
        return True

    @_unavailable_on_redis_errors
    def add_key(self, record: KeyRecord) -> bool:
        """Store a new key's record; False if its id is taken (the caller draws another).
        The marker is set first: a store is never seen with a key and without it."""
        self.client.set(self.closed_key, b"1")
        return bool(self.client.hsetnx(self.keys_key, record.id, record.to_json()))

    @_unavailable_on_redis_errors
    def get_key(self, key_id: str) -> KeyRecord | None:
        raw = self.client.hget(self.keys_key, key_id)
        return KeyRecord.from_json(key_id, raw) if raw is not None else None

    @_unavailable_on_redis_errors
    def list_keys(self) -> list[KeyRecord]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys_key)
        pipe.hgetall(self.keys_used_key)
        records, used = pipe.execute()
        return sorted(
            (KeyRecord.from_json(k.decode(), v, used.get(k)) for k, v in records.items()),
            key=lambda record: (record.created, record.id),
        )

    @_unavailable_on_redis_errors
    def revoke_key(self, key_id: str) -> bool:
        if not self.client.hexists(self.keys_key, key_id):
            return False
        # Keys made before the marker existed: set it before the last key can go.
        self.client.set(self.closed_key, b"1")
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.keys_key, key_id)
        pipe.hdel(self.keys_used_key, key_id)
        removed, _ = pipe.execute()
        return bool(removed)

    @_unavailable_on_redis_errors
    def touch_key(self, key_id: str, when: int) -> None:
        self.client.hset(self.keys_used_key, key_id, when)

    # -- service ------------------------------------------------------------------------------

    @_unavailable_on_redis_errors
    def approximate_things(self) -> int:
        """Keys with an expiry in this database (INFO keyspace): every thing has one, and the
        indexes, feed and API keys have none, so this counts things without a scan. Rate-limit
        counters and other users of a shared database add to it."""
        if isinstance(self.client, RedisCluster):
            replies = self.client.info("keyspace", target_nodes=RedisCluster.PRIMARIES)
            return sum(int(r.get("db0", {}).get("expires", 0)) for r in replies.values())
        info = self.client.info("keyspace")
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return int(info.get(f"db{db}", {}).get("expires", 0))

    def limiter_storage(self) -> tuple[str, dict[str, Any]] | None:
        """The storage URI and options for the `limits` library (under flask-limiter), which
        opens its own connection: the same server as ours, its keys under `ns:rl`. None when
        this store was not opened from a URL."""
        if self.url is None:
            return None
        uri = self.url
        if isinstance(self.client, RedisCluster):
            uri = "redis+cluster://" + uri.split("://", 1)[1]
        elif uri.startswith("unix://"):
            uri = "redis+unix://" + uri[len("unix://") :]
        return uri, limiter_options(self.prefix)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (*UNAVAILABLE_ERRORS, OSError):
            return False

    def close(self) -> None:
        self.client.close()


def open_store(url: str, prefix: str = "ts", feed_retention: int = 10_000) -> Store:
    client = connect(url)
    if isinstance(client, RedisCluster):
        from thingstash.store.cluster import ClusterStore

        return ClusterStore(client, prefix, feed_retention, url)
    return Store(client, prefix, feed_retention, url)

"""What both Redis stores share: timeouts, connecting (one Redis or a cluster), the Lua
scripts, the mapping of Redis errors to StorageUnavailable, condition encoding, reading the feed,
the folder ancestry of a path. Only thingstash.store imports redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps
from importlib import resources
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterError,
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TimeoutError,
    TryAgainError,
)
from redis.retry import Retry

from thingstash.core.model import (
    UNAVAILABLE_HOOKS,
    VERSION_LENGTH,
    Backlog,
    Event,
    StorageUnavailable,
    StoreFull,
    Thing,
    parse_event_id,
)
from thingstash.store.lean import LeanRedis

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
# Those, and the socket's own errors: what a probe of a node may meet.
UNAVAILABLE_OR_OS_ERRORS: tuple[type[Exception], ...] = (*UNAVAILABLE_ERRORS, OSError)


def unavailable_on_redis_errors(func: Callable[P, R]) -> Callable[P, R]:
    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UNAVAILABLE_ERRORS as error:
            for hook in UNAVAILABLE_HOOKS:
                hook(error)
            raise StorageUnavailable(str(error)) from error
        except OutOfMemoryError as error:
            # A script's first write is refused as a whole (Redis checks memory before it runs),
            # so nothing was written: the client is told so, and why.
            raise StoreFull(str(error)) from error

    return wrapper


def encode_condition(condition: str | tuple[str, ...] | None) -> str:
    if condition is None:
        return ""
    if condition == "*":
        return "*"
    # Only tags shaped like our versions can ever match; the rest are dropped, and a list left
    # empty becomes "," which matches nothing (so an If-Match of only foreign tags fails).
    tags = [t for t in condition if len(t) == VERSION_LENGTH and "," not in t]
    return "," + ",".join(tags) + ","


def _id(text: str) -> tuple[int, int]:
    return parse_event_id(text) or (0, 0)


def event_from_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    payload = fields.get(b"d")
    thing = Thing.from_payload(payload, int(fields.get(b"t", b"0"))) if payload else None
    return Event(entry_id.decode(), fields[b"e"].decode(), fields[b"p"].decode("utf-8"), thing)


def backlog_from(
    wanted: tuple[int, int],
    after: str,
    state: list[Any] | None,
    entries: list[Any] | None,
    count: int,
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
    entries = entries or []  # (XRANGE gives a list; typed as possibly None)
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
    events = [event_from_entry(entry_id, fields) for entry_id, fields in entries]
    if any(event.kind == "reset" for event in events):
        return Backlog([], True, last)
    position = events[-1].id if events else after
    return Backlog(events, False, position, len(events) < count)


def load_script(name: str) -> str:
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


def connect(url: str) -> redis.Redis | RedisCluster:
    """A client for `url` that retries briefly on connection errors, then lets them surface.

    A URL naming a node of a Redis Cluster gives a RedisCluster client of the whole cluster
    (it speaks the same commands; keys are routed to their slot's node).
    """
    # Its commands go over a per-thread connection, without the pool checkout and the retry
    # wrapper of every call (lean.py); pipelines and pub/sub keep the pool.
    client = LeanRedis.from_url(
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


def limiter_options(key_prefix: str) -> dict[str, Any]:
    """The `limits` library's storage options: its keys under `key_prefix` (`ns:rl`,
    Layout.limiter_prefix), and timeouts (it opens its own connection, without any by default,
    and would wait for a frozen Redis for ever)."""
    return {
        "key_prefix": key_prefix,
        "socket_timeout": LIMITER_TIMEOUT_S,
        "socket_connect_timeout": LIMITER_TIMEOUT_S,
    }


def events_of_xread(reply: Any, feed_key: str) -> list[Event]:
    """The events in an XREAD reply for the one stream `feed_key`: a list of (stream, entries)
    pairs, or a dict by stream name (as redis-py gives it for RESP3, and for a cluster)."""
    if not reply:
        return []
    entries = reply[feed_key.encode()] if isinstance(reply, dict) else reply[0][1]
    return [event_from_entry(entry_id, fields) for entry_id, fields in entries]


def ensure_expiry_notifications(connection: redis.Redis) -> None:
    """Make sure this server publishes expiry events ("Ex"), turning them on if need be;
    raises redis.RedisError when they are off and CONFIG is refused (a managed Redis)."""
    reply = connection.config_get("notify-keyspace-events").get("notify-keyspace-events")
    flags = reply.decode() if isinstance(reply, bytes) else reply or ""
    if "E" in flags and ("x" in flags or "A" in flags):
        return
    connection.config_set("notify-keyspace-events", "".join(sorted(set(flags) | {"E", "x"})))


# Our clients never decode responses (decode_responses is off): Redis's strings arrive as bytes.
# redis-py types its replies for both settings; these state which one ours are, in one place.


def byte_strings(reply: object) -> list[bytes]:
    """A reply that is a list of strings (ZRANGE, ZRANGEBYSCORE without scores)."""
    return cast(list[bytes], reply)


def byte_string(reply: object) -> bytes | None:
    """A reply that is one string, or nil (GET, HGET)."""
    return cast(bytes | None, reply)
